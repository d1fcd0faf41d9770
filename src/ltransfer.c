/*
 * Binding of transfers: core.start(request) and the transfer userdata.
 * Nothing here waits, except core.wait, which runs the engine in C until one
 * of the given transfers is ready (the blocking path, outside tasks).
 */
#include "lbinding.h"

#include <string.h>

#define MAX_SECONDS 1e7 /* about four months: more than any timeout means */

static double number_in(lua_State *L, const char *name, double lo, double hi)
{
    double v = luaL_checknumber(L, -1);
    if (!(v >= lo && v <= hi)) /* also NaN: every value that reaches C is in range */
        luaL_error(L, "request field '%s' out of range", name);
    return v;
}

static int64_t position(lua_State *L, const char *name)
{
    lua_Integer v = luaL_checkinteger(L, -1);
    if (v < 0)
        luaL_error(L, "request field '%s' out of range", name);
    return (int64_t)v;
}

static const char **header_list(lua_State *L, int hidx)
{
    luaL_checktype(L, hidx, LUA_TTABLE);
    lua_Integer n = luaL_len(L, hidx);
    /* The pointer array is a userdata left on the stack; the strings stay
     * referenced by the request table. */
    const char **list = lua_newuserdatauv(L, sizeof(char *) * (size_t)(n + 1), 0);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_geti(L, hidx, i);
        list[i - 1] = luaL_checkstring(L, -1);
        lua_pop(L, 1);
    }
    list[n] = NULL;
    return list;
}

/* Reads a request table (see core.start) at idx into req.  One pass over
 * the fields present (the Lua side sends only what differs from the
 * defaults, which are API.md's).  Strings stay owned by the table, which
 * must stay on the stack while req is used; the header pointer array is a
 * userdata left on the stack. */
static void read_request(lua_State *L, int idx, cf_request *req)
{
    luaL_checktype(L, idx, LUA_TTABLE);
    memset(req, 0, sizeof *req);
    req->range_first = req->range_last = -1;
    req->connect_timeout_ms = 30000;
    req->stall_timeout_ms = 60000;
    req->buffer_size = 1 << 20;
    req->verify_tls = 1;
    req->max_redirects = 5;
    req->hash_thread = 1;
    req->user_agent = lcf_user_agent(L);
    const char **headers = NULL;
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "";
        if (strcmp(k, "url") == 0)
            req->url = luaL_checkstring(L, -1);
        else if (strcmp(k, "method") == 0)
            req->method = luaL_checkstring(L, -1);
        else if (strcmp(k, "body") == 0)
            req->body = luaL_checklstring(L, -1, &req->body_len);
        else if (strcmp(k, "range_first") == 0)
            req->range_first = position(L, k);
        else if (strcmp(k, "range_last") == 0)
            req->range_last = position(L, k);
        else if (strcmp(k, "connect_timeout") == 0)
            req->connect_timeout_ms = (long)(number_in(L, k, 0, MAX_SECONDS) * 1000);
        else if (strcmp(k, "timeout") == 0)
            req->timeout_ms = (long)(number_in(L, k, 0, MAX_SECONDS) * 1000);
        else if (strcmp(k, "stall_timeout") == 0)
            req->stall_timeout_ms = (long)(number_in(L, k, 0, MAX_SECONDS) * 1000);
        else if (strcmp(k, "buffer_size") == 0)
            req->buffer_size = (size_t)number_in(L, k, 1, 1 << 30);
        else if (strcmp(k, "verify_tls") == 0)
            req->verify_tls = lua_toboolean(L, -1);
        else if (strcmp(k, "hash_thread") == 0)
            req->hash_thread = lua_toboolean(L, -1);
        else if (strcmp(k, "ca_file") == 0)
            req->ca_file = luaL_checkstring(L, -1);
        else if (strcmp(k, "ca_path") == 0)
            req->ca_path = luaL_checkstring(L, -1);
        else if (strcmp(k, "proxy") == 0)
            req->proxy = luaL_checkstring(L, -1);
        else if (strcmp(k, "user_agent") == 0)
            req->user_agent = luaL_checkstring(L, -1);
        else if (strcmp(k, "follow_redirects") == 0)
            req->follow_redirects = lua_toboolean(L, -1);
        else if (strcmp(k, "max_redirects") == 0)
            req->max_redirects = (long)number_in(L, k, 0, 1000);
        else if (strcmp(k, "hash") == 0)
            req->hash_mask = lcf_hash_mask(L, lua_gettop(L));
        else if (strcmp(k, "headers") == 0) {
            headers = header_list(L, lua_gettop(L));
            lua_insert(L, -3); /* below the key and value: stays on the stack */
        }
        lua_pop(L, 1);
    }
    luaL_argcheck(L, req->url != NULL, idx, "url missing");
    req->headers = headers;
}

/* core.start(request) -> transfer (never waits; t:ready() tells when the
 * headers are in, t:failure() whether it failed)
 * request: { url, method, headers = {"Name: value", ...}, body, range_first,
 * range_last, connect_timeout, timeout, stall_timeout (seconds),
 * buffer_size, verify_tls, ca_file, ca_path, proxy, user_agent,
 * follow_redirects, max_redirects, hash = {"sha1", ...} } */
static int l_start(lua_State *L)
{
    cf_request req;
    read_request(L, 1, &req);
    ltransfer *lt = lcf_new_object(L, sizeof *lt, TRANSFER_MT, 1);
    lt->t = cf_transfer_start(lcf_session(L), &req);
    lt->closed = 0;
    if (!lt->t)
        return luaL_error(L, "out of memory");
    return 1;
}

/* Collects transfers from a transfer or a list of them at idx. */
static size_t gather(lua_State *L, int idx, cf_transfer **ts, size_t max)
{
    if (lua_type(L, idx) != LUA_TTABLE) {
        ts[0] = lcf_check_transfer(L, idx);
        return 1;
    }
    lua_Integer n = luaL_len(L, idx);
    luaL_argcheck(L, n >= 1 && (size_t)n <= max, idx, "1 to 64 transfers");
    for (lua_Integer i = 1; i <= n; i++) {
        lua_geti(L, idx, i);
        ts[i - 1] = lcf_check_transfer(L, -1); /* kept alive by the list */
        lua_pop(L, 1);
    }
    return (size_t)n;
}

/* core.wait(transfer | {transfers} [, timeout]) -> true when one is ready,
 * false when timeout seconds passed first.  Runs the engine in C. */
static int l_wait(lua_State *L)
{
    cf_transfer *ts[64];
    size_t n = gather(L, 1, ts, 64);
    double timeout = luaL_optnumber(L, 2, -1);
    long ms = timeout < 0 ? -1 : timeout > MAX_SECONDS ? (long)(MAX_SECONDS * 1000) : (long)(timeout * 1000);
    int rc = cf_transfers_wait(lcf_session(L), ts, n, ms);
    if (rc < 0)
        return luaL_error(L, "cloudfetch: the event engine failed");
    lua_pushboolean(L, rc);
    return 1;
}

/* A transfer that may be closed: what it received stays readable. */
static cf_transfer *any_transfer(lua_State *L, int idx)
{
    ltransfer *lt = luaL_checkudata(L, idx, TRANSFER_MT);
    if (!lt->t)
        luaL_error(L, "attempt to use a freed transfer");
    return lt->t;
}

static int t_status(lua_State *L)
{
    lua_pushinteger(L, cf_transfer_headers(any_transfer(L, 1))->status);
    return 1;
}

static int t_url(lua_State *L)
{
    const char *url = cf_transfer_url(any_transfer(L, 1));
    lua_pushstring(L, url); /* nil when none */
    return 1;
}

/* t:headers() -> { ["lower-case-name"] = "v1, v2" } */
static int t_headers(lua_State *L)
{
    const cf_headers *h = cf_transfer_headers(any_transfer(L, 1));
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

static int t_id(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)cf_transfer_id(any_transfer(L, 1)));
    return 1;
}

static int t_ready(lua_State *L)
{
    lua_pushboolean(L, cf_transfer_ready(any_transfer(L, 1)));
    return 1;
}

static int t_add_hash(lua_State *L)
{
    cf_transfer *t = lcf_check_transfer(L, 1);
    lua_pushboolean(L, cf_transfer_add_hash(t, lcf_hash_mask(L, 2)) == 0);
    return 1;
}

static int t_drop_hash(lua_State *L)
{
    lua_pushboolean(L, cf_transfer_drop_hash(lcf_check_transfer(L, 1)) == 0);
    return 1;
}

/* t:read(max) -> string | nil at the end | false when nothing is there yet
 * | nil, kind, message, code on failure.  Never waits. */
static int t_read(lua_State *L)
{
    cf_transfer *t = lcf_check_transfer(L, 1);
    lua_Integer max = luaL_optinteger(L, 2, 64 * 1024);
    luaL_argcheck(L, max > 0, 2, "chunk size must be positive");
    const char *data;
    long n = cf_transfer_peek(t, &data);
    if (n == CF_AGAIN) {
        lua_pushboolean(L, 0);
        return 1;
    }
    if (n < 0)
        return lcf_fail_transfer(L, t);
    if (n == 0) {
        lua_pushnil(L);
        return 1;
    }
    size_t k = (size_t)n < (size_t)max ? (size_t)n : (size_t)max;
    lua_pushlstring(L, data, k);
    cf_transfer_consume(t, k);
    return 1;
}

/* t:pump(tmpfile) -> bytes written (> 0) | 0 at the end | false when
 * nothing is there yet | nil, kind, message.  Never waits; no Lua string
 * is made of the bytes. */
static int t_pump(lua_State *L)
{
    cf_transfer *t = lcf_check_transfer(L, 1);
    cf_tmpfile *f = lcf_check_tmpfile(L, 2);
    char err[CF_ERRLEN];
    long n = cf_tmpfile_pump(f, t, err, sizeof err);
    if (n == CF_AGAIN) {
        lua_pushboolean(L, 0);
        return 1;
    }
    if (n == CF_EWRITE)
        return lcf_fail(L, CF_EIO, err);
    if (n < 0)
        return lcf_fail_transfer(L, t);
    lua_pushinteger(L, n);
    return 1;
}

/* t:resume(request) -> true | nil, kind, message (see cf_transfer_resume;
 * ready again once the new headers are in) */
static int t_resume(lua_State *L)
{
    cf_transfer *t = lcf_check_transfer(L, 1);
    cf_request req;
    read_request(L, 2, &req);
    if (cf_transfer_resume(t, &req) != 0)
        return lcf_fail_transfer(L, t);
    lua_pushboolean(L, 1);
    return 1;
}

/* t:prefeed(partfile, n, done, max) -> done', more | nil, "io", message
 * Hashes and counts bytes [done, min(n, done + max)) of a part file from
 * an earlier run; more is true while bytes below n are left. */
static int t_prefeed(lua_State *L)
{
    cf_transfer *t = lcf_check_transfer(L, 1);
    cf_tmpfile *f = lcf_check_tmpfile(L, 2);
    int64_t n = (int64_t)luaL_checkinteger(L, 3);
    int64_t done = (int64_t)luaL_checkinteger(L, 4);
    lua_Integer max = luaL_checkinteger(L, 5);
    luaL_argcheck(L, max > 0, 5, "must be positive");
    char err[CF_ERRLEN];
    int rc = cf_transfer_prefeed_file(t, f->fd, n, &done, (size_t)max, err, sizeof err);
    if (rc < 0)
        return lcf_fail(L, CF_EIO, err);
    lua_pushinteger(L, (lua_Integer)done);
    lua_pushboolean(L, rc > 0);
    return 2;
}

static int t_accepted(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)cf_transfer_accepted(any_transfer(L, 1)));
    return 1;
}

static int t_received(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)cf_transfer_received(any_transfer(L, 1)));
    return 1;
}

/* t:digest(alg) -> hex, or nil when that digest is not being computed */
static int t_digest(lua_State *L)
{
    const cf_digests *d = cf_transfer_digests(any_transfer(L, 1));
    int alg = cf_digest_alg(luaL_checkstring(L, 2));
    char hex[CF_HEX_MAX];
    if (!alg || !d || !(cf_digests_mask(d) & (unsigned)alg) || cf_digests_hex(d, alg, hex) != 0)
        return 0;
    lua_pushstring(L, hex);
    return 1;
}

/* t:failure() -> kind, message, code of the transfer's failure, or nothing */
static int t_failure(lua_State *L)
{
    const char *msg;
    cf_kind k = cf_transfer_failed(any_transfer(L, 1), &msg);
    return k ? lcf_push_failure(L, k, msg) : 0;
}

static int t_close(lua_State *L)
{
    ltransfer *lt = luaL_checkudata(L, 1, TRANSFER_MT);
    if (!lt->closed)
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

const luaL_Reg lcf_transfer_functions[] = {
    {"start", l_start},
    {"wait", l_wait},
    {NULL, NULL},
};

void lcf_open_transfer(lua_State *L, int session)
{
    static const luaL_Reg methods[] = {
        {"status", t_status},     {"url", t_url},         {"headers", t_headers},
        {"ready", t_ready},       {"add_hash", t_add_hash}, {"read", t_read},
        {"id", t_id},             {"drop_hash", t_drop_hash},
        {"pump", t_pump},         {"resume", t_resume},   {"prefeed", t_prefeed},
        {"accepted", t_accepted}, {"received", t_received},
        {"digest", t_digest},     {"failure", t_failure}, {"close", t_close},
        {NULL, NULL},
    };
    lcf_class(L, session, TRANSFER_MT, methods, t_gc, t_close);
}
