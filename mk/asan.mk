# make test-asan: the C tests and the whole busted suite with AddressSanitizer,
# UndefinedBehaviorSanitizer and LeakSanitizer; any report fails the run.
# make cppcheck: static analysis of src/ (Debian's cppcheck); any finding fails.
#
# Everything instrumented goes to build/asan/, never next to the plain
# cloudfetch/core.so.  lua5.4 is not instrumented, so instead of preloading
# libasan into it (a preload every curl/python3/openssl the specs start would
# inherit), build/asan/bin/lua5.4 is a small sanitized Lua interpreter
# (spec/support/asan_lua.c); scripts/asan-env.sh puts it first in PATH.

# clang, not gcc: with gcc 12, ASan and UBSan are two runtimes and UBSan's
# reports ignore log_path, so one from a subprocess whose stderr a spec
# swallows would go unseen.  clang has one runtime for both; it is linked
# statically into the executables (build/asan/bin/lua5.4, the C tests), and
# the module takes it from there.
ASAN_CC     ?= clang
ASAN_DIR     = build/asan
# float-cast-overflow: numbers from Lua reach integer fields (clang's
# "undefined" has it already; gcc's would not).  No recovery: the first report
# ends the process.
ASAN_SAN     = -fsanitize=address,undefined,float-cast-overflow -fno-sanitize-recover=all
ASAN_CFLAGS  = -O1 -g -fno-omit-frame-pointer $(ASAN_SAN) $(WARN) -fPIC -D_GNU_SOURCE
ASAN_MODULE  = $(ASAN_DIR)/cloudfetch/core.so
ASAN_CTEST   = $(ASAN_DIR)/test_core $(ASAN_DIR)/test_engine
ASAN_LUA     = $(ASAN_DIR)/bin/lua$(LUA_VERSION)

.PHONY: deps-asan build-asan test-asan cppcheck

deps-asan:
	@sh scripts/deps-asan.sh

build-asan: $(ASAN_MODULE) $(ASAN_CTEST) $(ASAN_LUA)

$(ASAN_MODULE): $(CORE_SRC) $(BIND_SRC) $(HDRS) mk/asan.mk
	@mkdir -p $(@D)
	$(ASAN_CC) $(ASAN_CFLAGS) $(DEP_CFLAGS) -shared -o $@ $(CORE_SRC) $(BIND_SRC) $(DEP_LIBS)

$(ASAN_DIR)/test_%: spec/c/test_%.c $(CORE_SRC) $(HDRS) mk/asan.mk
	@mkdir -p $(@D)
	$(ASAN_CC) $(ASAN_CFLAGS) $(DEP_CFLAGS) -o $@ $< $(CORE_SRC) $(DEP_LIBS)

$(ASAN_LUA): spec/support/asan_lua.c mk/asan.mk
	@mkdir -p $(@D)
	$(ASAN_CC) $(ASAN_CFLAGS) $(shell $(PKG_CONFIG) --cflags lua$(LUA_VERSION)) -o $@ $< \
	  $(shell $(PKG_CONFIG) --libs lua$(LUA_VERSION))

test-asan: deps deps-asan
	@$(MAKE) --no-print-directory build-asan
	@ASAN=1 sh scripts/run-tests.sh

# cppcheck: warning, style, performance and portability checks, with what
# cppcheck knows of glibc/POSIX, libcurl, OpenSSL and the Lua C API.  System
# headers are not parsed (missingIncludeSystem): only the project's code is.
# readdirCalled is off: it recommends readdir_r, which glibc deprecated
# (2.24) because readdir is safe on a DIR stream no other thread uses.  A false
# positive in src/ gets an inline "cppcheck-suppress id ; reason" comment.
CPPCHECK_FLAGS = --enable=warning,style,performance,portability --std=c11 -D_GNU_SOURCE -Isrc \
                 --library=gnu --library=libcurl --library=openssl --library=lua \
                 --inline-suppr --suppress=missingIncludeSystem --suppress=readdirCalled \
                 --error-exitcode=1 --quiet --cppcheck-build-dir=build/cppcheck
cppcheck: deps-asan
	@mkdir -p build/cppcheck
	cppcheck $(CPPCHECK_FLAGS) src
