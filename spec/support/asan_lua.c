/*
 * A stand-in for the lua5.4 command, built with the sanitizers for
 * `make test-asan` (mk/asan.mk puts it at build/asan/bin/lua5.4).
 *
 * Why: /usr/bin/lua5.4 is not instrumented, so it can load an ASan-built
 * cloudfetch/core.so only with libasan in LD_PRELOAD, and a preload is
 * inherited by every helper the specs start (curl, python3, sha1sum,
 * openssl, ...), which it slows down or breaks (curl deadlocks).  This
 * program is linked with -fsanitize=address,undefined itself: the runtime
 * comes first in it, and the processes it starts get no preload.  It is put
 * first in PATH, so the specs' own `lua5.4 bin/cloudfetch ...` subprocesses
 * run under it too.
 *
 * Command line as lua5.4's: [-e stat] [-l [g=]mod] [-v] [-E] [-W] [--]
 * [script | - [args]]; `arg` and the script's `...` are set the same way,
 * LUA_INIT_5_4 / LUA_INIT are honoured, errors print "lua5.4: message" with
 * a traceback and exit 1.  No interactive mode (-i): without a script,
 * stdin is run.
 *
 * CLOUDFETCH_ASAN_CPATH, when set, is put in front of package.cpath, so a
 * subprocess whose LUA_CPATH names the plain ./?.so still loads the
 * instrumented module.
 */
#include <fcntl.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static const char *progname = "lua5.4";

/* Also a global so that LeakSanitizer, which runs when a script ends with
 * os.exit() and the state is not closed, finds the Lua heap reachable. */
static lua_State *volatile the_state;

/* LeakSanitizer's check at exit needs descriptors of its own (it reads
 * /proc/self/task to stop the threads).  A script that ends with every
 * descriptor in use (a spec exhausting `ulimit -n` on purpose) would make it
 * fail, or hang when there are threads.  A few are held from the start, at the
 * top of a small range, close-on-exec, and given back just before the check:
 * atexit handlers run in reverse order, and the sanitizer registered its own
 * before main. */
#define RESERVED_FDS 4
static int reserved_fds[RESERVED_FDS] = {-1, -1, -1, -1};

static void release_fds(void)
{
    for (int i = 0; i < RESERVED_FDS; i++)
        if (reserved_fds[i] >= 0) {
            close(reserved_fds[i]);
            reserved_fds[i] = -1;
        }
}

static void reserve_fds(void)
{
    struct rlimit rl;
    int from = 0;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur <= 65536 &&
        rl.rlim_cur > 4 * RESERVED_FDS)
        from = (int)rl.rlim_cur - RESERVED_FDS;
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    for (int i = 0; i < RESERVED_FDS; i++)
        reserved_fds[i] = fcntl(fd, F_DUPFD_CLOEXEC, from);
    close(fd);
    atexit(release_fds);
}

static int msghandler(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (msg == NULL) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
            return 1;
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

static int report(lua_State *L, int status)
{
    if (status != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        fprintf(stderr, "%s: %s\n", progname, msg != NULL ? msg : "(error object is not a string)");
        fflush(stderr);
        lua_pop(L, 1);
    }
    return status;
}

/* Calls the function under its `narg` arguments with the traceback handler. */
static int docall(lua_State *L, int narg, int nres)
{
    int base = lua_gettop(L) - narg;
    lua_pushcfunction(L, msghandler);
    lua_insert(L, base);
    int status = lua_pcall(L, narg, nres, base);
    lua_remove(L, base);
    return status;
}

static int dochunk(lua_State *L, int status)
{
    if (status == LUA_OK)
        status = docall(L, 0, 0);
    return report(L, status);
}

static int dostring(lua_State *L, const char *s, const char *name)
{
    return dochunk(L, luaL_loadbuffer(L, s, strlen(s), name));
}

/* -l mod or -l g=mod: global g (or mod) = require(mod). */
static int dolibrary(lua_State *L, const char *spec)
{
    const char *eq = strchr(spec, '=');
    const char *mod = eq != NULL ? eq + 1 : spec;
    lua_getglobal(L, "require");
    lua_pushstring(L, mod);
    int status = docall(L, 1, 1);
    if (status == LUA_OK) {
        if (eq != NULL)
            lua_pushlstring(L, spec, (size_t)(eq - spec));
        else
            lua_pushstring(L, mod);
        lua_insert(L, -2);
        lua_setglobal(L, lua_tostring(L, -2));
        lua_pop(L, 1);
    }
    return report(L, status);
}

static int handle_init(lua_State *L)
{
    const char *name = "=LUA_INIT_5_4";
    const char *init = getenv(name + 1);
    if (init == NULL) {
        name = "=LUA_INIT";
        init = getenv(name + 1);
    }
    if (init == NULL)
        return LUA_OK;
    if (init[0] == '@')
        return dochunk(L, luaL_loadfile(L, init + 1));
    return dostring(L, init, name);
}

/* arg[0] is the script (or the program when there is none), arguments
 * before it negative, after it positive. */
static void createargtable(lua_State *L, char **argv, int argc, int script)
{
    if (script == argc)
        script = 0;
    lua_createtable(L, argc - script - 1 > 0 ? argc - script - 1 : 0, script + 1);
    for (int i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i - script);
    }
    lua_setglobal(L, "arg");
}

static void usage(const char *badoption)
{
    if (badoption[1] == 'e' || badoption[1] == 'l')
        fprintf(stderr, "%s: '%s' needs argument\n", progname, badoption);
    else
        fprintf(stderr, "%s: unrecognized option '%s'\n", progname, badoption);
    fprintf(stderr,
            "usage: %s [options] [script [args]]\n"
            "Available options are:\n"
            "  -e stat   execute string 'stat'\n"
            "  -l mod    require library 'mod' into global 'mod'\n"
            "  -l g=mod  require library 'mod' into global 'g'\n"
            "  -v        show version information\n"
            "  -E        ignore environment variables\n"
            "  -W        turn warnings on\n"
            "  --        stop handling options\n"
            "  -         stop handling options and execute stdin\n",
            progname);
    fflush(stderr);
}

struct opts {
    int script;      /* index of the script in argv, argc if none */
    int version;
    int noenv;
    int warnings;
    int has_e;       /* -e given: no stdin script when there is no script */
};

/* Returns 0 and fills `o`, or -1 after printing the usage. */
static int collectargs(char **argv, int argc, struct opts *o)
{
    memset(o, 0, sizeof *o);
    o->script = argc;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-') {
            o->script = i;
            return 0;
        }
        switch (a[1]) {
        case '\0': /* "-": stdin */
            o->script = i;
            return 0;
        case '-':
            if (a[2] != '\0') {
                usage(a);
                return -1;
            }
            o->script = i + 1 < argc ? i + 1 : argc;
            return 0;
        case 'E':
        case 'W':
        case 'v':
            if (a[2] != '\0') {
                usage(a);
                return -1;
            }
            if (a[1] == 'E')
                o->noenv = 1;
            else if (a[1] == 'W')
                o->warnings = 1;
            else
                o->version = 1;
            break;
        case 'e':
        case 'l':
            if (a[1] == 'e')
                o->has_e = 1;
            if (a[2] == '\0') {
                if (i + 1 >= argc || argv[i + 1][0] == '-') {
                    usage(a);
                    return -1;
                }
                i++;
            }
            break;
        default:
            usage(a);
            return -1;
        }
    }
    return 0;
}

/* Runs -e and -l in order. */
static int runargs(lua_State *L, char **argv, int upto)
{
    for (int i = 1; i < upto; i++) {
        const char *a = argv[i];
        if (a[0] != '-' || (a[1] != 'e' && a[1] != 'l'))
            continue;
        const char *extra = a[2] != '\0' ? a + 2 : argv[++i];
        int status = a[1] == 'e' ? dostring(L, extra, "=(command line)") : dolibrary(L, extra);
        if (status != LUA_OK)
            return status;
    }
    return LUA_OK;
}

static int handle_script(lua_State *L, char **argv, int argc, int script)
{
    const char *fname = argv[script];
    if (strcmp(fname, "-") == 0 && strcmp(argv[script - 1], "--") != 0)
        fname = NULL; /* stdin */
    int status = luaL_loadfile(L, fname);
    if (status == LUA_OK) {
        int n = argc - script - 1;
        luaL_checkstack(L, n + 3, "too many arguments to script");
        for (int i = script + 1; i < argc; i++)
            lua_pushstring(L, argv[i]);
        status = docall(L, n, LUA_MULTRET);
    }
    return report(L, status);
}

static void prepend_cpath(lua_State *L)
{
    const char *extra = getenv("CLOUDFETCH_ASAN_CPATH");
    if (extra == NULL || extra[0] == '\0')
        return;
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "cpath");
    lua_pushfstring(L, "%s;%s", extra, lua_tostring(L, -1));
    lua_setfield(L, -3, "cpath");
    lua_pop(L, 2);
}

/* Everything that may raise runs in here, under lua_pcall. */
static int pmain(lua_State *L)
{
    int argc = (int)lua_tointeger(L, 1);
    char **argv = (char **)lua_touserdata(L, 2);
    struct opts o;
    if (collectargs(argv, argc, &o) != 0)
        return 0;
    luaL_checkversion(L);
    if (o.noenv) {
        lua_pushboolean(L, 1);
        lua_setfield(L, LUA_REGISTRYINDEX, "LUA_NOENV");
    }
    luaL_openlibs(L);
    prepend_cpath(L);
    createargtable(L, argv, argc, o.script);
    lua_gc(L, LUA_GCRESTART);
    lua_gc(L, LUA_GCGEN, 0, 0);
    if (o.version) {
        fprintf(stdout, "%s\n", LUA_COPYRIGHT);
        fflush(stdout);
    }
    if (o.warnings)
        lua_warning(L, "@on", 0);
    if (!o.noenv && handle_init(L) != LUA_OK)
        return 0;
    if (runargs(L, argv, o.script) != LUA_OK)
        return 0;
    if (o.script < argc && handle_script(L, argv, argc, o.script) != LUA_OK)
        return 0;
    if (o.script == argc && !o.version && !o.has_e && dochunk(L, luaL_loadfile(L, NULL)) != LUA_OK)
        return 0; /* no REPL here: a script on stdin, as lua5.4 does when stdin is not a terminal */
    lua_pushboolean(L, 1);
    return 1;
}

int main(int argc, char **argv)
{
    if (argv[0] != NULL && argv[0][0] != '\0')
        progname = argv[0];
    reserve_fds();
    lua_State *L = luaL_newstate();
    if (L == NULL) {
        fprintf(stderr, "%s: cannot create state: not enough memory\n", progname);
        return EXIT_FAILURE;
    }
    the_state = L;
    lua_gc(L, LUA_GCSTOP);
    lua_pushcfunction(L, pmain);
    lua_pushinteger(L, argc);
    lua_pushlightuserdata(L, argv);
    int status = lua_pcall(L, 2, 1, 0);
    int ok = status == LUA_OK && lua_toboolean(L, -1);
    report(L, status);
    lua_close(L);
    the_state = NULL;
    return ok ? EXIT_SUCCESS : EXIT_FAILURE;
}
