/*
 * Binding of the file side of the core: temporary and part files, commit
 * jobs (finishing a save on a worker thread), ranged files (parallel saves,
 * hashed in order) and step-wise file hashing.
 */
#include "lbinding.h"

#include <errno.h>
#include <string.h>

/* ---- temporary and part files ---------------------------------------------- */

static cf_tmpfile *new_tmpfile(lua_State *L)
{
    cf_tmpfile *f = lcf_new_object(L, sizeof *f, TMPFILE_MT, 1);
    f->fd = -1;
    f->path = NULL;
    return f;
}

/* core.tempfile(target) -> tmpfile | nil, "io" (or "memory"), message
 * The file is `<dir>/.cloudfetch-<name>.<slot>.tmp`, locked while open;
 * stale ones of the same target (their writer died) are removed first. */
static int l_tempfile(lua_State *L)
{
    const char *target = luaL_checkstring(L, 1);
    cf_tmpfile *f = new_tmpfile(L);
    char err[CF_ERRLEN];
    if (cf_tmpfile_create(f, target, err, sizeof err) != 0)
        return lcf_fail(L, errno == ENOMEM ? CF_ENOMEM : CF_EIO, err);
    return 1;
}

/* core.part_file(path, append) -> tmpfile | nil, "io", message */
static int l_part_file(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    int append = lua_toboolean(L, 2);
    cf_tmpfile *f = new_tmpfile(L);
    char err[CF_ERRLEN];
    if (cf_tmpfile_open_part(f, path, append, err, sizeof err) != 0)
        return lcf_fail(L, CF_EIO, err);
    return 1;
}

/* core.file_tag(path) -> string | nil */
static int l_file_tag(lua_State *L)
{
    char buf[1024];
    long n = cf_file_tag(luaL_checkstring(L, 1), buf, sizeof buf);
    if (n < 0)
        return 0;
    lua_pushlstring(L, buf, (size_t)n);
    return 1;
}

/* tmp:set_mtime(seconds) -> true | false: the saved file's modification time */
static int tmp_set_mtime(lua_State *L)
{
    cf_tmpfile *f = lcf_check_tmpfile(L, 1);
    lua_pushboolean(L, cf_tmpfile_set_mtime(f, luaL_checknumber(L, 2)) == 0);
    return 1;
}

/* tmp:set_tag(s) -> true | false: remembers which entity a part file holds
 * (where the file system keeps no extended attributes, it cannot be
 * continued later). */
static int tmp_set_tag(lua_State *L)
{
    cf_tmpfile *f = lcf_check_tmpfile(L, 1);
    size_t len;
    const char *tag = luaL_checklstring(L, 2, &len);
    lua_pushboolean(L, cf_tmpfile_set_tag(f, tag, len) == 0);
    return 1;
}

static int tmp_keep(lua_State *L)
{
    cf_tmpfile_keep(luaL_checkudata(L, 1, TMPFILE_MT));
    return 0;
}

static int tmp_discard(lua_State *L)
{
    cf_tmpfile_discard(luaL_checkudata(L, 1, TMPFILE_MT));
    return 0;
}

/* tmp:commit(target, overwrite, sync) -> true | nil, "io", message, code
 * Here and now (the blocking path). */
static int tmp_commit(lua_State *L)
{
    cf_tmpfile *f = lcf_check_tmpfile(L, 1);
    const char *target = luaL_checkstring(L, 2);
    char err[CF_ERRLEN];
    cf_kind k = cf_tmpfile_commit(f, target, lua_toboolean(L, 3), lua_toboolean(L, 4), err, sizeof err);
    if (k != CF_OK)
        return lcf_fail(L, k, err);
    lua_pushboolean(L, 1);
    return 1;
}

/* tmp:start_commit(target, overwrite, sync) -> commit job; the job takes
 * the file over and finishes it on a worker thread. */
static int tmp_start_commit(lua_State *L)
{
    cf_tmpfile *f = lcf_check_tmpfile(L, 1);
    const char *target = luaL_checkstring(L, 2);
    cf_commit **c = lcf_new_object(L, sizeof *c, COMMIT_MT, 1);
    *c = cf_commit_start(lcf_session(L), f, target, lua_toboolean(L, 3), lua_toboolean(L, 4));
    if (!*c)
        return luaL_error(L, "out of memory");
    return 1;
}

/* ---- commit jobs ----------------------------------------------------------- */

static cf_commit *check_commit(lua_State *L)
{
    cf_commit **c = luaL_checkudata(L, 1, COMMIT_MT);
    if (!*c)
        luaL_error(L, "attempt to use a closed commit job");
    return *c;
}

static int commit_done(lua_State *L)
{
    lua_pushboolean(L, cf_commit_done(check_commit(L)));
    return 1;
}

/* job:result() -> true | nil, "io", message, code */
static int commit_result(lua_State *L)
{
    const char *msg;
    cf_kind k = cf_commit_result(check_commit(L), &msg);
    if (k != CF_OK)
        return lcf_fail(L, k, msg);
    lua_pushboolean(L, 1);
    return 1;
}

static int commit_cancel(lua_State *L)
{
    cf_commit_cancel(check_commit(L));
    return 0;
}

static int commit_gc(lua_State *L)
{
    cf_commit **c = luaL_checkudata(L, 1, COMMIT_MT);
    cf_commit_free(*c);
    *c = NULL;
    return 0;
}

/* ---- ranged files ---------------------------------------------------------- */

static cf_ranged *check_ranged(lua_State *L)
{
    cf_ranged **r = luaL_checkudata(L, 1, RANGED_MT);
    if (!*r)
        luaL_error(L, "attempt to use a closed ranged file");
    return *r;
}

/* core.ranged(tmpfile, total, {algs} [, hash_thread = true]) -> ranged
 * file over tmpfile */
static int l_ranged(lua_State *L)
{
    cf_tmpfile *f = lcf_check_tmpfile(L, 1);
    lua_Integer total = luaL_checkinteger(L, 2);
    unsigned mask = lcf_hash_mask(L, 3);
    int hash_thread = lua_isnoneornil(L, 4) || lua_toboolean(L, 4);
    cf_ranged **r = lcf_new_object(L, sizeof *r, RANGED_MT, 2);
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 2); /* the file outlives the ranged view */
    *r = cf_ranged_new(f, (int64_t)total, mask, hash_thread);
    if (!*r)
        return luaL_error(L, "out of memory");
    return 1;
}

/* r:pump(t, pos, last) -> pos', written | false when nothing is there yet
 * | nil, kind, message (kind "network", code "short": ended before last) */
static int ranged_pump(lua_State *L)
{
    cf_ranged *r = check_ranged(L);
    cf_transfer *t = lcf_check_transfer(L, 2);
    int64_t pos = (int64_t)luaL_checkinteger(L, 3);
    int64_t last = (int64_t)luaL_checkinteger(L, 4);
    char err[CF_ERRLEN];
    long n = cf_ranged_pump(r, t, &pos, last, err, sizeof err);
    if (n == CF_AGAIN) {
        lua_pushboolean(L, 0);
        return 1;
    }
    if (n == CF_EWRITE)
        return lcf_fail(L, CF_EIO, err);
    if (n == CF_ESHORT) {
        lcf_fail(L, CF_ENETWORK, err);
        lua_pushliteral(L, "short");
        return 4;
    }
    if (n < 0)
        return lcf_fail_transfer(L, t);
    lua_pushinteger(L, (lua_Integer)pos);
    lua_pushinteger(L, n);
    return 2;
}

/* r:catch_up(max) -> more | nil, "io", message */
static int ranged_catch_up(lua_State *L)
{
    cf_ranged *r = check_ranged(L);
    lua_Integer max = luaL_checkinteger(L, 2);
    luaL_argcheck(L, max > 0, 2, "must be positive");
    char err[CF_ERRLEN];
    int rc = cf_ranged_catch_up(r, (size_t)max, err, sizeof err);
    if (rc < 0)
        return lcf_fail(L, CF_EIO, err);
    lua_pushboolean(L, rc > 0);
    return 1;
}

/* r:digests() -> { alg = hex } of the hashed prefix */
static int ranged_digests(lua_State *L)
{
    lcf_push_digests(L, cf_ranged_digests(check_ranged(L)));
    return 1;
}

static int ranged_gc(lua_State *L)
{
    cf_ranged **r = luaL_checkudata(L, 1, RANGED_MT);
    cf_ranged_free(*r);
    *r = NULL;
    return 0;
}

/* ---- hashing files in steps ------------------------------------------------ */

/* core.filehash(path, {algs}) -> hasher | nil, "io", message */
static int l_filehash(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    unsigned mask = lcf_hash_mask(L, 2);
    cf_filehash **h = lcf_new_object(L, sizeof *h, FILEHASH_MT, 1);
    char err[CF_ERRLEN];
    *h = cf_filehash_open(path, mask, err, sizeof err);
    if (!*h)
        return lcf_fail(L, CF_EIO, err);
    return 1;
}

static cf_filehash *check_filehash(lua_State *L)
{
    cf_filehash **h = luaL_checkudata(L, 1, FILEHASH_MT);
    if (!*h)
        luaL_error(L, "attempt to use a closed file hasher");
    return *h;
}

/* h:step(max) -> more | nil, "io", message */
static int filehash_step(lua_State *L)
{
    cf_filehash *h = check_filehash(L);
    lua_Integer max = luaL_checkinteger(L, 2);
    luaL_argcheck(L, max > 0, 2, "must be positive");
    char err[CF_ERRLEN];
    int rc = cf_filehash_step(h, (size_t)max, err, sizeof err);
    if (rc < 0)
        return lcf_fail(L, CF_EIO, err);
    lua_pushboolean(L, rc > 0);
    return 1;
}

static int filehash_digests(lua_State *L)
{
    lcf_push_digests(L, cf_filehash_digests(check_filehash(L)));
    return 1;
}

static int filehash_gc(lua_State *L)
{
    cf_filehash **h = luaL_checkudata(L, 1, FILEHASH_MT);
    cf_filehash_free(*h);
    *h = NULL;
    return 0;
}

/* ---- directories ------------------------------------------------------------- */

/* core.mkdirs(base, rel [, follow]) -> true | nil, "io", message */
static int l_mkdirs(lua_State *L)
{
    char err[CF_ERRLEN];
    if (cf_mkdirs(luaL_checkstring(L, 1), luaL_checkstring(L, 2), lua_toboolean(L, 3), err, sizeof err) != 0)
        return lcf_fail(L, CF_EIO, err);
    lua_pushboolean(L, 1);
    return 1;
}

/* core.listdir(path) -> { { name =, kind = "file"|"directory"|"other", size =, mtime = }, ... }
 * sorted as B2 sorts names | nil, "io", message */
static int l_listdir(lua_State *L)
{
    size_t n;
    char err[CF_ERRLEN];
    cf_dirent *e = cf_listdir(luaL_checkstring(L, 1), &n, err, sizeof err);
    if (!e)
        return lcf_fail(L, CF_EIO, err);
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        lua_createtable(L, 0, 4);
        lua_pushstring(L, e[i].name);
        lua_setfield(L, -2, "name");
        lua_pushstring(L, e[i].kind == 'f' ? "file" : e[i].kind == 'd' ? "directory" : "other");
        lua_setfield(L, -2, "kind");
        lua_pushinteger(L, (lua_Integer)e[i].size);
        lua_setfield(L, -2, "size");
        lua_pushnumber(L, e[i].mtime);
        lua_setfield(L, -2, "mtime");
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    cf_dirents_free(e, n);
    return 1;
}

const luaL_Reg lcf_file_functions[] = {
    {"mkdirs", l_mkdirs},
    {"listdir", l_listdir},
    {"tempfile", l_tempfile},
    {"part_file", l_part_file},
    {"file_tag", l_file_tag},
    {"ranged", l_ranged},
    {"filehash", l_filehash},
    {NULL, NULL},
};

void lcf_open_files(lua_State *L, int session)
{
    static const luaL_Reg tmpfile_methods[] = {
        {"commit", tmp_commit}, {"start_commit", tmp_start_commit},
        {"discard", tmp_discard}, {"keep", tmp_keep},     {"set_tag", tmp_set_tag},
        {"set_mtime", tmp_set_mtime},
        {NULL, NULL},
    };
    static const luaL_Reg commit_methods[] = {
        {"done", commit_done}, {"result", commit_result}, {"cancel", commit_cancel}, {NULL, NULL},
    };
    static const luaL_Reg ranged_methods[] = {
        {"pump", ranged_pump},       {"catch_up", ranged_catch_up},
        {"digests", ranged_digests}, {NULL, NULL},
    };
    static const luaL_Reg filehash_methods[] = {
        {"step", filehash_step}, {"digests", filehash_digests}, {NULL, NULL},
    };
    lcf_class(L, session, TMPFILE_MT, tmpfile_methods, tmp_discard, tmp_discard);
    lcf_class(L, session, COMMIT_MT, commit_methods, commit_gc, commit_gc);
    lcf_class(L, session, RANGED_MT, ranged_methods, ranged_gc, ranged_gc);
    lcf_class(L, session, FILEHASH_MT, filehash_methods, filehash_gc, filehash_gc);
}
