/*
 * Private header of the Lua binding (lcore.c, ltransfer.c, lfile.c): the
 * userdata types, their metatable names and the shared argument and
 * failure helpers.  Only the binding includes lua.h.
 *
 * One failure shape everywhere: an operational failure returns
 * nil, kind, message [, code], where kind is a cloudfetch.Error kind and
 * code refines it ("exists" for a target that may not be replaced,
 * "resolve" / "refused" for network failures retried differently).
 */
#ifndef CLOUDFETCH_LBINDING_H
#define CLOUDFETCH_LBINDING_H

#include "cloudfetch.h"

#include <lauxlib.h>
#include <lua.h>

#define SESSION_MT "cloudfetch.session"
#define TRANSFER_MT "cloudfetch.transfer"
#define TMPFILE_MT "cloudfetch.tmpfile"
#define COMMIT_MT "cloudfetch.commit"
#define RANGED_MT "cloudfetch.ranged"
#define FILEHASH_MT "cloudfetch.filehash"

typedef struct lsession {
    cf_session *s;
    char user_agent[96]; /* the default: cloudfetch/VERSION libcurl/VERSION */
} lsession;

typedef struct ltransfer {
    cf_transfer *t;
    int closed;
} ltransfer;

/* The session of the module: upvalue 1 of every binding function. */
cf_session *lcf_session(lua_State *L);
const char *lcf_user_agent(lua_State *L);

/* Pushes kind, message [, code] of a failure of kind k; returns how many. */
int lcf_push_failure(lua_State *L, cf_kind k, const char *message);
/* nil, kind, message [, code] for a failure of kind k. */
int lcf_fail(lua_State *L, cf_kind k, const char *message);
int lcf_fail_transfer(lua_State *L, cf_transfer *t);
unsigned lcf_hash_mask(lua_State *L, int idx);
/* Pushes a table alg -> hex of every digest in d. */
void lcf_push_digests(lua_State *L, const cf_digests *d);
/* Creates a class: methods in __index, __gc, __close, and a __tostring
 * naming it. */
void lcf_class(lua_State *L, int session, const char *name, const luaL_Reg *methods, lua_CFunction gc,
               lua_CFunction close);

cf_transfer *lcf_check_transfer(lua_State *L, int idx);      /* raises when closed */
cf_tmpfile *lcf_check_tmpfile(lua_State *L, int idx);        /* raises when closed */
/* Pushes a userdata of `size` bytes with metatable `mt` and nuv user
 * values, the first of which is the session, so the session outlives it. */
void *lcf_new_object(lua_State *L, size_t size, const char *mt, int nuv);

/* Register the classes; `session` is the stack index of the session. */
void lcf_open_transfer(lua_State *L, int session);
void lcf_open_files(lua_State *L, int session);
extern const luaL_Reg lcf_transfer_functions[];
extern const luaL_Reg lcf_file_functions[];

#endif
