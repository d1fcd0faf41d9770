/*
 * Lua binding of the cloudfetch core: `require "cloudfetch.core"`.
 * Turns the C engine, parsers and file helpers into Lua values; argument
 * checks live here, policy (options, errors, retries) in lua/cloudfetch.
 *
 * State lives in a session userdata that is an upvalue of every function
 * (no globals).  A transfer keeps its session alive through a user value.
 */
#include "cloudfetch.h"

#include <curl/curl.h>
#include <errno.h>
#include <lauxlib.h>
#include <lua.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <time.h>

#define CF_VERSION "0.1.0"
#define SESSION_MT "cloudfetch.session"
#define TRANSFER_MT "cloudfetch.transfer"
#define TMPFILE_MT "cloudfetch.tmpfile"

typedef struct { cf_session *s; } lsession;
typedef struct { cf_transfer *t; int closed; } ltransfer;

/* ---- helpers ------------------------------------------------------------ */

/* Operational failure: nil (or false), kind, message. */
static int push_failure(lua_State *L, int use_false, const char *kind, const char *message)
{
    if (use_false)
        lua_pushboolean(L, 0);
    else
        lua_pushnil(L);
    lua_pushstring(L, kind);
    lua_pushstring(L, message);
    return 3;
}

static int push_transfer_failure(lua_State *L, cf_transfer *t, int use_false)
{
    const char *msg;
    cf_kind k = cf_transfer_failed(t, &msg);
    return push_failure(L, use_false, cf_kind_name(k), msg);
}

static const char *opt_string_field(lua_State *L, int idx, const char *name)
{
    const char *s = NULL;
    if (lua_getfield(L, idx, name) != LUA_TNIL)
        s = luaL_checkstring(L, -1); /* stays valid: the request table holds it */
    lua_pop(L, 1);
    return s;
}

static double opt_number_field(lua_State *L, int idx, const char *name, double def)
{
    double v = def;
    if (lua_getfield(L, idx, name) != LUA_TNIL)
        v = luaL_checknumber(L, -1);
    lua_pop(L, 1);
    return v;
}

static int opt_bool_field(lua_State *L, int idx, const char *name, int def)
{
    int v = def;
    if (lua_getfield(L, idx, name) != LUA_TNIL)
        v = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

static unsigned hash_mask_of(lua_State *L, int idx)
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

/* ---- session ------------------------------------------------------------ */

static int session_gc(lua_State *L)
{
    lsession *ls = luaL_checkudata(L, 1, SESSION_MT);
    cf_session_free(ls->s);
    ls->s = NULL;
    return 0;
}

/* ---- transfer ----------------------------------------------------------- */

static cf_transfer *check_transfer(lua_State *L, int idx)
{
    ltransfer *lt = luaL_checkudata(L, idx, TRANSFER_MT);
    if (!lt->t)
        luaL_error(L, "attempt to use a freed transfer");
    return lt->t;
}

static cf_transfer *check_open_transfer(lua_State *L, int idx)
{
    ltransfer *lt = luaL_checkudata(L, idx, TRANSFER_MT);
    if (!lt->t || lt->closed)
        luaL_error(L, "attempt to use a closed download");
    return lt->t;
}

/* Reads a request table (see l_open) at idx into req; strings stay owned
 * by the table, which must stay on the stack while req is used. */
static void read_request(lua_State *L, int idx, cf_request *req)
{
    luaL_checktype(L, idx, LUA_TTABLE);
    memset(req, 0, sizeof *req);
    req->url = opt_string_field(L, idx, "url");
    luaL_argcheck(L, req->url != NULL, idx, "url missing");
    req->method = opt_string_field(L, idx, "method");
    if (lua_getfield(L, idx, "body") != LUA_TNIL)
        req->body = luaL_checklstring(L, -1, &req->body_len);
    lua_pop(L, 1);
    req->range_first = (int64_t)opt_number_field(L, idx, "range_first", -1);
    req->range_last = (int64_t)opt_number_field(L, idx, "range_last", -1);
    req->connect_timeout_ms = (long)(opt_number_field(L, idx, "connect_timeout", 0) * 1000);
    req->timeout_ms = (long)(opt_number_field(L, idx, "timeout", 0) * 1000);
    req->stall_timeout_ms = (long)(opt_number_field(L, idx, "stall_timeout", 0) * 1000);
    req->buffer_size = (size_t)opt_number_field(L, idx, "buffer_size", 1 << 20);
    req->verify_tls = opt_bool_field(L, idx, "verify_tls", 1);
    req->ca_file = opt_string_field(L, idx, "ca_file");
    req->ca_path = opt_string_field(L, idx, "ca_path");
    req->proxy = opt_string_field(L, idx, "proxy");
    req->user_agent = opt_string_field(L, idx, "user_agent");
    req->follow_redirects = opt_bool_field(L, idx, "follow_redirects", 0);
    req->max_redirects = (long)opt_number_field(L, idx, "max_redirects", 5);
    lua_getfield(L, idx, "hash");
    req->hash_mask = hash_mask_of(L, lua_gettop(L));
    lua_pop(L, 1);

    /* The header strings stay referenced by the request table meanwhile;
     * the pointer array is a userdata left on the stack. */
    lua_getfield(L, idx, "headers");
    int hidx = lua_gettop(L);
    if (!lua_isnil(L, hidx)) {
        luaL_checktype(L, hidx, LUA_TTABLE);
        lua_Integer n = luaL_len(L, hidx);
        const char **list = lua_newuserdatauv(L, sizeof(char *) * (size_t)(n + 1), 0);
        for (lua_Integer i = 1; i <= n; i++) {
            lua_geti(L, hidx, i);
            list[i - 1] = luaL_checkstring(L, -1);
            lua_pop(L, 1);
        }
        list[n] = NULL;
        req->headers = list;
    }
}

/* core.open(request) -> transfer | nil, kind, message
 * request: { url, method, headers = {"Name: value", ...}, body, range_first,
 * range_last, connect_timeout, timeout, stall_timeout (seconds),
 * buffer_size, verify_tls, ca_file, ca_path, proxy, user_agent,
 * follow_redirects, max_redirects, hash = {"sha1", ...} } */
static int l_open(lua_State *L)
{
    lsession *ls = lua_touserdata(L, lua_upvalueindex(1));
    cf_request req;
    read_request(L, 1, &req);

    ltransfer *lt = lua_newuserdatauv(L, sizeof *lt, 1);
    lt->t = NULL;
    lt->closed = 0;
    luaL_setmetatable(L, TRANSFER_MT);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_setiuservalue(L, -2, 1); /* the session outlives its transfers */
    lt->t = cf_transfer_open(ls->s, &req);
    if (!lt->t)
        return luaL_error(L, "out of memory");
    if (cf_transfer_failed(lt->t, NULL)) {
        int n = push_transfer_failure(L, lt->t, 0);
        cf_transfer_free(lt->t);
        lt->t = NULL;
        return n;
    }
    return 1;
}

static int t_status(lua_State *L)
{
    lua_pushinteger(L, cf_transfer_headers(check_transfer(L, 1))->status);
    return 1;
}

static int t_url(lua_State *L)
{
    const char *url = cf_transfer_url(check_transfer(L, 1));
    if (url)
        lua_pushstring(L, url);
    else
        lua_pushnil(L);
    return 1;
}

/* t:headers() -> { ["lower-case-name"] = "v1, v2" } */
static int t_headers(lua_State *L)
{
    const cf_headers *h = cf_transfer_headers(check_transfer(L, 1));
    lua_createtable(L, 0, (int)h->n);
    luaL_Buffer b;
    for (size_t i = 0; i < h->n; i++) {
        luaL_buffinit(L, &b);
        for (const char *p = h->items[i].name; *p; p++)
            luaL_addchar(&b, (*p >= 'A' && *p <= 'Z') ? (char)(*p + 32) : *p);
        luaL_pushresult(&b);                   /* name */
        lua_pushvalue(L, -1);
        if (lua_rawget(L, -3) == LUA_TNIL) {   /* first occurrence */
            lua_pop(L, 1);
            lua_pushstring(L, h->items[i].value);
        } else {                               /* repeats joined with ", " */
            lua_pushstring(L, ", ");
            lua_pushstring(L, h->items[i].value);
            lua_concat(L, 3);
        }
        lua_rawset(L, -3);
    }
    return 1;
}

static int t_add_hash(lua_State *L)
{
    cf_transfer *t = check_open_transfer(L, 1);
    unsigned mask = hash_mask_of(L, 2);
    lua_pushboolean(L, cf_transfer_add_hash(t, mask) == 0);
    return 1;
}

/* t:read(max) -> string | nil at the end | false, kind, message */
static int t_read(lua_State *L)
{
    cf_transfer *t = check_open_transfer(L, 1);
    lua_Integer max = luaL_optinteger(L, 2, 64 * 1024);
    luaL_argcheck(L, max > 0, 2, "chunk size must be positive");
    const char *data;
    long n = cf_transfer_peek(t, &data);
    if (n < 0)
        return push_transfer_failure(L, t, 1);
    if (n == 0) {
        lua_pushnil(L);
        return 1;
    }
    size_t k = (size_t)n < (size_t)max ? (size_t)n : (size_t)max;
    lua_pushlstring(L, data, k);
    cf_transfer_consume(t, k);
    return 1;
}

/* t:pump(tmpfile [, on_data]) -> bytes | nil, kind, message
 * Streams the rest of the body into the temporary file with no Lua string
 * in between; on_data(received) runs between pulls, outside libcurl. */
static int t_pump(lua_State *L)
{
    cf_transfer *t = check_open_transfer(L, 1);
    cf_tmpfile *f = luaL_checkudata(L, 2, TMPFILE_MT);
    int has_fn = !lua_isnoneornil(L, 3);
    if (has_fn)
        luaL_checktype(L, 3, LUA_TFUNCTION);
    if (f->fd < 0)
        return luaL_error(L, "attempt to use a closed temporary file");
    char err[CF_ERRLEN];
    for (;;) {
        const char *data;
        long n = cf_transfer_peek(t, &data);
        if (n == 0)
            break;
        if (n < 0)
            return push_transfer_failure(L, t, 0);
        if (cf_tmpfile_write(f, data, (size_t)n, err, sizeof err) != 0)
            return push_failure(L, 0, "io", err);
        cf_transfer_consume(t, (size_t)n);
        if (has_fn) {
            lua_pushvalue(L, 3);
            lua_pushinteger(L, (lua_Integer)cf_transfer_received(t));
            lua_call(L, 1, 0);
        }
    }
    lua_pushinteger(L, (lua_Integer)cf_transfer_received(t));
    return 1;
}

/* t:resume(request) -> true | nil, kind, message (see cf_transfer_resume) */
static int t_resume(lua_State *L)
{
    cf_transfer *t = check_open_transfer(L, 1);
    cf_request req;
    read_request(L, 2, &req);
    if (cf_transfer_resume(t, &req) != 0)
        return push_transfer_failure(L, t, 0);
    lua_pushboolean(L, 1);
    return 1;
}

/* t:prefeed_file(path, n) -> true | nil, "io", message
 * Hashes and counts the first n bytes of a part file from an earlier run. */
static int t_prefeed_file(lua_State *L)
{
    cf_transfer *t = check_open_transfer(L, 1);
    const char *path = luaL_checkstring(L, 2);
    lua_Integer n = luaL_checkinteger(L, 3);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return push_failure(L, 0, "io", strerror(errno));
    char buf[64 * 1024];
    while (n > 0) {
        ssize_t r = read(fd, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            close(fd);
            return push_failure(L, 0, "io", r < 0 ? strerror(errno) : "part file is shorter than expected");
        }
        cf_transfer_prefeed(t, buf, (size_t)r);
        n -= r;
    }
    close(fd);
    lua_pushboolean(L, 1);
    return 1;
}

static int t_accepted(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)cf_transfer_accepted(check_transfer(L, 1)));
    return 1;
}

static int t_received(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)cf_transfer_received(check_transfer(L, 1)));
    return 1;
}

/* t:digest(alg) -> hex, or nil when that digest is not being computed */
static int t_digest(lua_State *L)
{
    cf_transfer *t = check_transfer(L, 1);
    int alg = cf_digest_alg(luaL_checkstring(L, 2));
    const cf_digests *d = cf_transfer_digests(t);
    char hex[CF_HEX_MAX];
    if (!alg || !d || !(cf_digests_mask(d) & (unsigned)alg) || cf_digests_hex(d, alg, hex) != 0) {
        lua_pushnil(L);
        return 1;
    }
    lua_pushstring(L, hex);
    return 1;
}

/* t:failure() -> kind, message of the transfer's failure, or nothing */
static int t_failure(lua_State *L)
{
    const char *msg;
    cf_kind kind = cf_transfer_failed(check_transfer(L, 1), &msg);
    if (!kind)
        return 0;
    lua_pushstring(L, cf_kind_name(kind));
    lua_pushstring(L, msg);
    return 2;
}

static int t_close(lua_State *L)
{
    ltransfer *lt = luaL_checkudata(L, 1, TRANSFER_MT);
    if (lt->t && !lt->closed)
        cf_transfer_close(lt->t);
    lt->closed = 1;
    return 0;
}

static int t_gc(lua_State *L)
{
    ltransfer *lt = luaL_checkudata(L, 1, TRANSFER_MT);
    cf_transfer_free(lt->t);
    lt->t = NULL;
    lt->closed = 1;
    return 0;
}

/* ---- temporary files ---------------------------------------------------- */

/* core.tempfile(target) -> tmpfile | nil, "io", message */
static int l_tempfile(lua_State *L)
{
    const char *target = luaL_checkstring(L, 1);
    cf_tmpfile *f = lua_newuserdatauv(L, sizeof *f, 0);
    f->fd = -1;
    f->path = NULL;
    luaL_setmetatable(L, TMPFILE_MT);
    char err[CF_ERRLEN];
    if (cf_tmpfile_create(f, target, err, sizeof err) != 0)
        return push_failure(L, 0, "io", err);
    return 1;
}

/* core.part_file(path, append) -> tmpfile | nil, "io", message */
static int l_part_file(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    int append = lua_toboolean(L, 2);
    cf_tmpfile *f = lua_newuserdatauv(L, sizeof *f, 0);
    f->fd = -1;
    f->path = NULL;
    luaL_setmetatable(L, TMPFILE_MT);
    char err[CF_ERRLEN];
    if (cf_tmpfile_open_part(f, path, append, err, sizeof err) != 0)
        return push_failure(L, 0, "io", err);
    return 1;
}

#define ENTITY_XATTR "user.cloudfetch.entity"

/* tmp:set_tag(s): remembers which entity a part file holds (an extended
 * attribute; where the file system has none, the part cannot be continued). */
static int tmp_set_tag(lua_State *L)
{
    cf_tmpfile *f = luaL_checkudata(L, 1, TMPFILE_MT);
    size_t len;
    const char *tag = luaL_checklstring(L, 2, &len);
    lua_pushboolean(L, f->fd >= 0 && fsetxattr(f->fd, ENTITY_XATTR, tag, len, 0) == 0);
    return 1;
}

/* core.file_tag(path) -> string | nil */
static int l_file_tag(lua_State *L)
{
    char buf[1024];
    ssize_t n = getxattr(luaL_checkstring(L, 1), ENTITY_XATTR, buf, sizeof buf);
    if (n < 0)
        return 0;
    lua_pushlstring(L, buf, (size_t)n);
    return 1;
}

static int tmp_keep(lua_State *L)
{
    cf_tmpfile_keep(luaL_checkudata(L, 1, TMPFILE_MT));
    return 0;
}

/* core.hash_file(path, {algs}) -> { alg = hex, ... } | nil, "io", message */
static int l_hash_file(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    unsigned mask = hash_mask_of(L, 2);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return push_failure(L, 0, "io", strerror(errno));
    cf_digests *d = cf_digests_new(mask);
    char buf[256 * 1024];
    ssize_t r = 0;
    while (d && (r = read(fd, buf, sizeof buf)) != 0) {
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 || cf_digests_update(d, buf, (size_t)r) != 0)
            break;
    }
    int saved = errno;
    close(fd);
    if (!d || r != 0) {
        cf_digests_free(d);
        return push_failure(L, 0, "io", d ? strerror(saved) : "out of memory");
    }
    lua_newtable(L);
    for (int alg = CF_SHA1; alg <= CF_MD5; alg <<= 1) {
        char hex[CF_HEX_MAX];
        if ((mask & (unsigned)alg) && cf_digests_hex(d, alg, hex) == 0) {
            lua_pushstring(L, hex);
            lua_setfield(L, -2, cf_digest_name(alg));
        }
    }
    cf_digests_free(d);
    return 1;
}

/* core.pump_parts(tmpfile, parts [, on_data]) -> i | i, kind, message
 * parts: array of { t = transfer, first = offset, last = offset }; each
 * transfer's body is written at first + received until last.  Drives them
 * all (one multi handle) and returns as soon as part i is complete, or
 * failed.  on_data(n) runs after every write, outside libcurl. */
#define MAX_PARTS 64

static int push_part_failure(lua_State *L, const char *kind, const char *message)
{
    lua_pushstring(L, kind);
    lua_pushstring(L, message);
    return 3; /* with the part's index pushed before */
}

static int l_pump_parts(lua_State *L)
{
    cf_tmpfile *f = luaL_checkudata(L, 1, TMPFILE_MT);
    luaL_checktype(L, 2, LUA_TTABLE);
    int has_fn = !lua_isnoneornil(L, 3);
    if (f->fd < 0)
        return luaL_error(L, "attempt to use a closed temporary file");
    lua_Integer n = luaL_len(L, 2);
    luaL_argcheck(L, n >= 1 && n <= MAX_PARTS, 2, "1 to 64 parts");
    cf_transfer *ts[MAX_PARTS];
    int64_t first[MAX_PARTS], last[MAX_PARTS];
    for (lua_Integer i = 0; i < n; i++) {
        lua_geti(L, 2, i + 1);
        luaL_checktype(L, -1, LUA_TTABLE);
        lua_getfield(L, -1, "t");
        ts[i] = check_open_transfer(L, -1); /* kept alive by the parts table */
        lua_getfield(L, -2, "first");
        first[i] = (int64_t)luaL_checkinteger(L, -1);
        lua_getfield(L, -3, "last");
        last[i] = (int64_t)luaL_checkinteger(L, -1);
        lua_pop(L, 4);
    }
    char err[CF_ERRLEN];
    for (;;) {
        int progressed = 0;
        for (lua_Integer i = 0; i < n; i++) {
            const char *data;
            long got = cf_transfer_peek_nowait(ts[i], &data);
            if (got == CF_AGAIN)
                continue;
            lua_pushinteger(L, i + 1);
            if (got < 0) {
                const char *msg;
                cf_kind kind = cf_transfer_failed(ts[i], &msg);
                return push_part_failure(L, cf_kind_name(kind), msg);
            }
            int64_t pos = first[i] + cf_transfer_received(ts[i]);
            if (got == 0) {
                if (pos > last[i])
                    return 1;
                return push_part_failure(L, "network", "the part ended before its last byte");
            }
            size_t k = (size_t)got;
            if ((int64_t)k > last[i] - pos + 1)
                k = (size_t)(last[i] - pos + 1);
            if (cf_tmpfile_pwrite(f, data, k, pos, err, sizeof err) != 0)
                return push_part_failure(L, "io", err);
            cf_transfer_consume(ts[i], k);
            if (has_fn) {
                lua_pushvalue(L, 3);
                lua_pushinteger(L, (lua_Integer)k);
                lua_call(L, 1, 0);
            }
            if (pos + (int64_t)k > last[i])
                return 1;
            lua_pop(L, 1);
            progressed = 1;
        }
        if (!progressed && cf_transfers_wait(ts, (size_t)n) != 0)
            return luaL_error(L, "cloudfetch: waiting for the network failed");
    }
}

static int tmp_path(lua_State *L)
{
    cf_tmpfile *f = luaL_checkudata(L, 1, TMPFILE_MT);
    if (f->path)
        lua_pushstring(L, f->path);
    else
        lua_pushnil(L);
    return 1;
}

/* tmp:commit(target, overwrite) -> true | nil, "io", message, code */
static int tmp_commit(lua_State *L)
{
    cf_tmpfile *f = luaL_checkudata(L, 1, TMPFILE_MT);
    const char *target = luaL_checkstring(L, 2);
    int overwrite = lua_toboolean(L, 3);
    if (!f->path)
        return luaL_error(L, "attempt to use a closed temporary file");
    char err[CF_ERRLEN];
    cf_kind k = cf_tmpfile_commit(f, target, overwrite, err, sizeof err);
    if (k == CF_OK) {
        lua_pushboolean(L, 1);
        return 1;
    }
    push_failure(L, 0, "io", err);
    lua_pushstring(L, k == CF_EEXISTS ? "exists" : "write_failed");
    return 4;
}

static int tmp_discard(lua_State *L)
{
    cf_tmpfile_discard(luaL_checkudata(L, 1, TMPFILE_MT));
    return 0;
}

/* ---- parsers and utilities ---------------------------------------------- */

static int push_owned_string(lua_State *L, char *s)
{
    if (!s) {
        lua_pushnil(L);
        return 1;
    }
    lua_pushstring(L, s);
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

/* -> first, last, total (nil when unknown); first/last nil for "*\/total" */
static int l_parse_content_range(lua_State *L)
{
    int64_t first, last, total;
    if (cf_parse_content_range(luaL_checkstring(L, 1), &first, &last, &total) != 0)
        return 0;
    if (first < 0)
        lua_pushnil(L);
    else
        lua_pushinteger(L, (lua_Integer)first);
    if (last < 0)
        lua_pushnil(L);
    else
        lua_pushinteger(L, (lua_Integer)last);
    if (total < 0)
        lua_pushnil(L);
    else
        lua_pushinteger(L, (lua_Integer)total);
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
    const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &len);
    luaL_argcheck(L, len < (size_t)1 << 28, 1, "string too long");
    luaL_Buffer b;
    unsigned char *out = (unsigned char *)luaL_buffinitsize(L, &b, 4 * ((len + 2) / 3) + 1);
    int n = EVP_EncodeBlock(out, s, (int)len);
    luaL_pushresultsize(&b, (size_t)n);
    return 1;
}

static int l_sleep(lua_State *L)
{
    double s = luaL_checknumber(L, 1);
    if (s <= 0)
        return 0;
    struct timespec ts = { (time_t)s, (long)((s - floor(s)) * 1e9) };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
    return 0;
}

/* core.stat(path) -> "file" | "directory" | "other", size | nil (does not exist) */
static int l_stat(lua_State *L)
{
    struct stat st;
    if (stat(luaL_checkstring(L, 1), &st) != 0) {
        lua_pushnil(L);
        return 1;
    }
    lua_pushstring(L, S_ISREG(st.st_mode) ? "file" : S_ISDIR(st.st_mode) ? "directory" : "other");
    lua_pushinteger(L, (lua_Integer)st.st_size);
    return 2;
}

static int l_now(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
    return 1;
}

/* ---- module ------------------------------------------------------------- */

static void new_class(lua_State *L, const char *name, const luaL_Reg *methods, lua_CFunction gc,
                      lua_CFunction close)
{
    luaL_newmetatable(L, name);
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, close);
    lua_setfield(L, -2, "__close");
    lua_pop(L, 1);
}

int luaopen_cloudfetch_core(lua_State *L);
int luaopen_cloudfetch_core(lua_State *L)
{
    static const luaL_Reg transfer_methods[] = {
        {"status", t_status},   {"url", t_url},           {"headers", t_headers},
        {"add_hash", t_add_hash}, {"read", t_read},       {"pump", t_pump},
        {"received", t_received}, {"digest", t_digest},   {"failure", t_failure},
        {"close", t_close},     {"resume", t_resume},     {"accepted", t_accepted},
        {"prefeed_file", t_prefeed_file},
        {NULL, NULL}};
    static const luaL_Reg tmpfile_methods[] = {
        {"path", tmp_path}, {"commit", tmp_commit}, {"discard", tmp_discard},
        {"keep", tmp_keep}, {"set_tag", tmp_set_tag}, {NULL, NULL}};
    static const luaL_Reg functions[] = {
        {"open", l_open},
        {"tempfile", l_tempfile},
        {"part_file", l_part_file},
        {"file_tag", l_file_tag},
        {"hash_file", l_hash_file},
        {"pump_parts", l_pump_parts},
        {"disposition_filename", l_disposition_filename},
        {"sanitize_filename", l_sanitize_filename},
        {"parse_content_range", l_parse_content_range},
        {"parse_content_length", l_parse_content_length},
        {"parse_retry_after", l_parse_retry_after},
        {"digest", l_digest},
        {"base64", l_base64},
        {"sleep", l_sleep},
        {"now", l_now},
        {"stat", l_stat},
        {NULL, NULL}};

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return luaL_error(L, "cloudfetch: libcurl initialisation failed");

    new_class(L, TRANSFER_MT, transfer_methods, t_gc, t_gc);
    new_class(L, TMPFILE_MT, tmpfile_methods, tmp_discard, tmp_discard);
    luaL_newmetatable(L, SESSION_MT);
    lua_pushcfunction(L, session_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);

    lua_newtable(L);
    lsession *ls = lua_newuserdatauv(L, sizeof *ls, 0);
    ls->s = NULL;
    luaL_setmetatable(L, SESSION_MT);
    ls->s = cf_session_new();
    if (!ls->s)
        return luaL_error(L, "cloudfetch: cannot create a libcurl session");
    luaL_setfuncs(L, functions, 1);
    lua_pushstring(L, CF_VERSION);
    lua_setfield(L, -2, "version");
    curl_version_info_data *info = curl_version_info(CURLVERSION_NOW);
    lua_pushstring(L, info->version);
    lua_setfield(L, -2, "curl_version");
    return 1;
}
