/*
 * Lua binding of the cloudfetch core: `require "cloudfetch.core"`.
 * This file holds the module itself: the session (the event engine, an
 * upvalue of every function, so there are no globals), the shared helpers
 * of lbinding.h, the engine functions for groups and host loops, parsers
 * and small utilities.  Transfers are in ltransfer.c, files in lfile.c.
 * Policy (options, errors, retries, tasks) lives in lua/cloudfetch.
 */
#include "lbinding.h"

#include <curl/curl.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define CF_VERSION "0.2.0"

/* ---- shared helpers (lbinding.h) ------------------------------------------- */

cf_session *lcf_session(lua_State *L)
{
    lsession *ls = lua_touserdata(L, lua_upvalueindex(1));
    if (!ls || !ls->s)
        luaL_error(L, "cloudfetch: the session is closed");
    return ls->s;
}

const char *lcf_user_agent(lua_State *L)
{
    lsession *ls = lua_touserdata(L, lua_upvalueindex(1));
    return ls->user_agent;
}

static const char *code_of(cf_kind k)
{
    switch (k) {
    case CF_EEXISTS: return "exists";
    case CF_ERESOLVE: return "resolve";
    case CF_EREFUSED: return "refused";
    case CF_ENOFILE: return "nofile";
    case CF_ENOMEM: return "nomem";
    default: return NULL;
    }
}

int lcf_push_failure(lua_State *L, cf_kind k, const char *message)
{
    const char *code = code_of(k);
    lua_pushstring(L, cf_kind_name(k));
    lua_pushstring(L, message);
    if (!code)
        return 2;
    lua_pushstring(L, code);
    return 3;
}

int lcf_fail(lua_State *L, cf_kind k, const char *message)
{
    lua_pushnil(L);
    return 1 + lcf_push_failure(L, k, message);
}

int lcf_fail_transfer(lua_State *L, cf_transfer *t)
{
    const char *msg;
    cf_kind k = cf_transfer_failed(t, &msg);
    return lcf_fail(L, k ? k : CF_ENETWORK, k ? msg : "the transfer failed");
}

unsigned lcf_hash_mask(lua_State *L, int idx)
{
    unsigned mask = 0;
    if (lua_isnoneornil(L, idx))
        return 0;
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_Integer n = luaL_len(L, idx);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_geti(L, idx, i);
        const char *name = luaL_checkstring(L, -1);
        int alg = cf_digest_alg(name);
        if (!alg)
            luaL_error(L, "unknown digest '%s' (sha1, sha256 or md5)", name);
        mask |= (unsigned)alg;
        lua_pop(L, 1);
    }
    return mask;
}

void lcf_push_digests(lua_State *L, const cf_digests *d)
{
    lua_newtable(L);
    for (int alg = CF_SHA1; alg <= CF_MD5; alg <<= 1) {
        char hex[CF_HEX_MAX];
        if ((cf_digests_mask(d) & (unsigned)alg) && cf_digests_hex(d, alg, hex) == 0) {
            lua_pushstring(L, hex);
            lua_setfield(L, -2, cf_digest_name(alg));
        }
    }
}

static int object_tostring(lua_State *L)
{
    luaL_getmetafield(L, 1, "__name");
    lua_pushfstring(L, "%s (%p)", lua_tostring(L, -1), lua_touserdata(L, 1));
    return 1;
}

void lcf_class(lua_State *L, int session, const char *name, const luaL_Reg *methods, lua_CFunction gc,
               lua_CFunction close)
{
    luaL_newmetatable(L, name);
    lua_newtable(L);
    lua_pushvalue(L, session);
    luaL_setfuncs(L, methods, 1); /* methods see the session too */
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, close);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, object_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pop(L, 1);
}

cf_transfer *lcf_check_transfer(lua_State *L, int idx)
{
    ltransfer *lt = luaL_checkudata(L, idx, TRANSFER_MT);
    if (!lt->t || lt->closed)
        luaL_error(L, "attempt to use a closed download");
    return lt->t;
}

cf_tmpfile *lcf_check_tmpfile(lua_State *L, int idx)
{
    cf_tmpfile *f = luaL_checkudata(L, idx, TMPFILE_MT);
    if (f->fd < 0)
        luaL_error(L, "attempt to use a closed temporary file");
    return f;
}

void *lcf_new_object(lua_State *L, size_t size, const char *mt, int nuv)
{
    void *p = lua_newuserdatauv(L, size, nuv);
    memset(p, 0, size);
    luaL_setmetatable(L, mt);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_setiuservalue(L, -2, 1);
    return p;
}

/* ---- the engine, for groups and host loops ---------------------------------- */

/* core.run(timeout [, ready]) -> n: waits at most timeout seconds (0: not
 * at all; nil: until something happens) for I/O or a timer and acts on it.
 * With a table `ready`, stores in ready[1..n] the ids of the transfers that
 * had news since the last such call (see cf_session_take_ready). */
static int l_run(lua_State *L)
{
    double timeout = luaL_optnumber(L, 1, -1);
    long ms = timeout < 0 ? -1 : timeout > 1e7 ? (long)1e10 : (long)ceil(timeout * 1000);
    cf_session *s = lcf_session(L);
    if (cf_session_run(s, ms) != 0)
        return luaL_error(L, "cloudfetch: the event engine failed");
    lua_Integer n = 0;
    if (lua_istable(L, 2)) {
        int64_t ids[64];
        size_t k;
        while ((k = cf_session_take_ready(s, ids, 64)) > 0) {
            for (size_t i = 0; i < k; i++) {
                lua_pushinteger(L, (lua_Integer)ids[i]);
                lua_rawseti(L, 2, ++n);
            }
        }
    }
    lua_pushinteger(L, n);
    return 1;
}

static int l_pollfd(lua_State *L)
{
    lua_pushinteger(L, cf_session_fd(lcf_session(L)));
    return 1;
}

/* core.timeout() -> seconds until the engine is due without I/O, or nil */
static int l_timeout(lua_State *L)
{
    long ms = cf_session_timeout(lcf_session(L));
    if (ms < 0)
        return 0;
    lua_pushnumber(L, (lua_Number)ms / 1000);
    return 1;
}

/* ---- parsers and utilities -------------------------------------------------- */

static int push_owned_string(lua_State *L, char *s)
{
    lua_pushstring(L, s); /* nil for NULL */
    free(s);
    return 1;
}

static int l_disposition_filename(lua_State *L)
{
    return push_owned_string(L, cf_disposition_filename(luaL_checkstring(L, 1)));
}

static int l_sanitize_filename(lua_State *L)
{
    size_t len;
    const char *name = luaL_checklstring(L, 1, &len);
    return push_owned_string(L, cf_sanitize_filename(name, len));
}

static void push_int_or_nil(lua_State *L, int64_t v)
{
    if (v < 0)
        lua_pushnil(L);
    else
        lua_pushinteger(L, (lua_Integer)v);
}

/* -> first, last, total (nil when unknown); first/last nil for "*\/total" */
static int l_parse_content_range(lua_State *L)
{
    int64_t first, last, total;
    if (cf_parse_content_range(luaL_checkstring(L, 1), &first, &last, &total) != 0)
        return 0;
    push_int_or_nil(L, first);
    push_int_or_nil(L, last);
    push_int_or_nil(L, total);
    return 3;
}

static int l_parse_content_length(lua_State *L)
{
    int64_t n;
    if (cf_parse_content_length(luaL_checkstring(L, 1), &n) != 0)
        return 0;
    lua_pushinteger(L, (lua_Integer)n);
    return 1;
}

static int l_parse_retry_after(lua_State *L)
{
    const char *v = luaL_checkstring(L, 1);
    time_t now = lua_isnoneornil(L, 2) ? time(NULL) : (time_t)floor(luaL_checknumber(L, 2));
    double seconds;
    if (cf_parse_retry_after(v, now, &seconds) != 0)
        return 0;
    lua_pushnumber(L, seconds);
    return 1;
}

/* core.digest(alg, data) -> lowercase hex (one shot) */
static int l_digest(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    size_t len;
    const char *data = luaL_checklstring(L, 2, &len);
    int alg = cf_digest_alg(name);
    luaL_argcheck(L, alg != 0, 1, "unknown digest (sha1, sha256 or md5)");
    cf_digests *d = cf_digests_new((unsigned)alg);
    char hex[CF_HEX_MAX];
    int ok = d && cf_digests_update(d, data, len) == 0 && cf_digests_hex(d, alg, hex) == 0;
    cf_digests_free(d);
    if (!ok)
        return luaL_error(L, "digest failed");
    lua_pushstring(L, hex);
    return 1;
}

static int l_base64(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    luaL_argcheck(L, len < (size_t)1 << 28, 1, "string too long");
    luaL_Buffer b;
    char *out = luaL_buffinitsize(L, &b, 4 * ((len + 2) / 3) + 1);
    luaL_pushresultsize(&b, cf_base64(s, len, out));
    return 1;
}

static int l_sleep(lua_State *L)
{
    double s = luaL_checknumber(L, 1);
    if (!(s > 0))
        return 0;
    if (s > 1e7)
        s = 1e7;
    struct timespec ts = {(time_t)s, (long)((s - floor(s)) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
    return 0;
}

/* core.stat(path) -> "file" | "directory" | "other", size, mtime | nil (does not exist) */
static int l_stat(lua_State *L)
{
    struct stat st;
    if (stat(luaL_checkstring(L, 1), &st) != 0) {
        lua_pushnil(L);
        return 1;
    }
    lua_pushstring(L, S_ISREG(st.st_mode) ? "file" : S_ISDIR(st.st_mode) ? "directory" : "other");
    lua_pushinteger(L, (lua_Integer)st.st_size);
    lua_pushnumber(L, (lua_Number)st.st_mtim.tv_sec + (lua_Number)st.st_mtim.tv_nsec / 1e9);
    return 3;
}

/* core.bytecmp(a, b) -> -1, 0 or 1 by bytes (Lua's < follows the locale) */
static int l_bytecmp(lua_State *L)
{
    size_t la, lb;
    const char *a = luaL_checklstring(L, 1, &la), *b = luaL_checklstring(L, 2, &lb);
    int c = memcmp(a, b, la < lb ? la : lb);
    if (c == 0)
        c = (la > lb) - (la < lb);
    lua_pushinteger(L, (c > 0) - (c < 0));
    return 1;
}

static int l_now(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
    return 1;
}

/* core.clock() -> monotonic seconds (for deadlines) */
static int l_clock(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
    return 1;
}

/* core.resolve_url(base, ref [, no_userinfo]) -> url, origin | nil, message
 * `ref` (a Location value) resolved against the absolute URL `base`, as
 * libcurl itself resolves redirects (spaces and bytes above 127 are
 * percent-encoded, the path is kept as is); without `ref`, base itself.
 * Only http and https.  `origin` is "scheme://host:port" in lower case, the
 * port filled in; `no_userinfo` drops the user name and password. */
static int l_resolve_url(lua_State *L)
{
    const char *base = luaL_checkstring(L, 1);
    const char *ref = luaL_optstring(L, 2, NULL);
    int no_userinfo = lua_toboolean(L, 3);
    CURLU *u = curl_url();
    if (!u)
        return luaL_error(L, "out of memory");
    char *scheme = NULL, *host = NULL, *port = NULL, *url = NULL;
    const char *problem = NULL;
    CURLUcode rc = curl_url_set(u, CURLUPART_URL, base, CURLU_PATH_AS_IS);
    if (rc == CURLUE_OK && ref)
        rc = curl_url_set(u, CURLUPART_URL, ref, CURLU_PATH_AS_IS | CURLU_URLENCODE | CURLU_ALLOW_SPACE);
    if (rc == CURLUE_OK && no_userinfo) {
        curl_url_set(u, CURLUPART_USER, NULL, 0);
        curl_url_set(u, CURLUPART_PASSWORD, NULL, 0);
        curl_url_set(u, CURLUPART_OPTIONS, NULL, 0);
    }
    if (rc == CURLUE_OK)
        rc = curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
    if (rc == CURLUE_OK)
        rc = curl_url_get(u, CURLUPART_HOST, &host, 0);
    if (rc == CURLUE_OK)
        rc = curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT);
    if (rc == CURLUE_OK)
        rc = curl_url_get(u, CURLUPART_URL, &url, 0);
    if (rc != CURLUE_OK)
        problem = curl_url_strerror(rc);
    else if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)
        problem = "not an http or https URL";
    int n;
    if (problem) {
        lua_pushnil(L);
        lua_pushstring(L, problem);
        n = 2;
    } else {
        for (char *c = host; *c; c++)
            if (*c >= 'A' && *c <= 'Z')
                *c = (char)(*c - 'A' + 'a');
        lua_pushstring(L, url);
        lua_pushfstring(L, "%s://%s:%s", scheme, host, port);
        n = 2;
    }
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(url);
    curl_url_cleanup(u);
    return n;
}

/* ---- module -------------------------------------------------------------------- */

static int session_gc(lua_State *L)
{
    lsession *ls = luaL_checkudata(L, 1, SESSION_MT);
    cf_session_free(ls->s);
    ls->s = NULL;
    return 0;
}

/* libcurl's global initialisation is not safe to run twice at once: Lua
 * states in several threads may load the module together. */
static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc = CURLE_FAILED_INIT;

static void global_init(void)
{
    global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int luaopen_cloudfetch_core(lua_State *L);
int luaopen_cloudfetch_core(lua_State *L)
{
    static const luaL_Reg functions[] = {
        {"run", l_run},
        {"pollfd", l_pollfd},
        {"timeout", l_timeout},
        {"disposition_filename", l_disposition_filename},
        {"sanitize_filename", l_sanitize_filename},
        {"parse_content_range", l_parse_content_range},
        {"parse_content_length", l_parse_content_length},
        {"parse_retry_after", l_parse_retry_after},
        {"digest", l_digest},
        {"base64", l_base64},
        {"sleep", l_sleep},
        {"now", l_now},
        {"clock", l_clock},
        {"stat", l_stat},
        {"bytecmp", l_bytecmp},
        {"resolve_url", l_resolve_url},
        {NULL, NULL},
    };

    pthread_once(&global_once, global_init);
    if (global_rc != CURLE_OK)
        return luaL_error(L, "cloudfetch: libcurl initialisation failed");

    luaL_newmetatable(L, SESSION_MT);
    lua_pushcfunction(L, session_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);

    lua_newtable(L);
    int module = lua_gettop(L);
    lsession *ls = lua_newuserdatauv(L, sizeof *ls, 0);
    ls->s = NULL;
    luaL_setmetatable(L, SESSION_MT);
    ls->s = cf_session_new();
    if (!ls->s)
        return luaL_error(L, "cloudfetch: cannot create the event engine");
    curl_version_info_data *info = curl_version_info(CURLVERSION_NOW);
    snprintf(ls->user_agent, sizeof ls->user_agent, "cloudfetch/%s libcurl/%s", CF_VERSION, info->version);
    /* Classes and functions all get the session as upvalue 1. */
    int session = lua_gettop(L);
    lcf_open_transfer(L, session);
    lcf_open_files(L, session);
    const luaL_Reg *lists[] = {functions, lcf_transfer_functions, lcf_file_functions};
    for (size_t i = 0; i < sizeof lists / sizeof *lists; i++) {
        lua_pushvalue(L, module);
        lua_pushvalue(L, session);
        luaL_setfuncs(L, lists[i], 1);
        lua_pop(L, 1);
    }
    lua_pop(L, 1); /* the session: the functions hold it */
    lua_pushstring(L, CF_VERSION);
    lua_setfield(L, -2, "version");
    lua_pushstring(L, info->version);
    lua_setfield(L, -2, "curl_version");
    return 1;
}
