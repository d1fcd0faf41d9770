# cloudfetch — build, test, demo and benchmark.  `make demo` and `make test`
# install missing Debian packages first (scripts/deps.sh).

LUA_VERSION     ?= 5.4
LUA             ?= lua$(LUA_VERSION)
PYTHON          ?= /usr/bin/python3
PKG_CONFIG      ?= pkg-config
PREFIX          ?= /usr/local
LUA_CMODULE_DIR ?= $(PREFIX)/lib/lua/$(LUA_VERSION)
LUA_MODULE_DIR  ?= $(PREFIX)/share/lua/$(LUA_VERSION)

CC      ?= cc
CFLAGS  ?= -O2 -g
WARN     = -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -std=c11
# Recursively expanded, so pkg-config runs after `deps` installed the -dev packages.
DEP_CFLAGS = $(shell $(PKG_CONFIG) --cflags lua$(LUA_VERSION) libcurl openssl)
DEP_LIBS   = $(shell $(PKG_CONFIG) --libs libcurl openssl) -lpthread
ALL_CFLAGS = $(CFLAGS) $(WARN) -fPIC -D_GNU_SOURCE $(DEP_CFLAGS)

CORE_SRC = src/headers.c src/disposition.c src/digest.c src/base64.c src/session.c src/transfer.c \
           src/files.c src/commit.c src/ranged.c src/hasher.c
BIND_SRC = src/lcore.c src/ltransfer.c src/lfile.c
HDRS     = $(wildcard src/*.h)
MODULE   = cloudfetch/core.so
CTEST    = build/test_core build/test_engine

LUA_ENV = LUA_PATH="./lua/?.lua;./lua/?/init.lua;./spec/?.lua;;" LUA_CPATH="./?.so;;"

.PHONY: all deps build test test-valgrind lint docs demo bench-core bench-b2 bench-concurrency bench-mirror clean install

all: build
build: $(MODULE)

deps:
	@sh scripts/deps.sh

$(MODULE): $(CORE_SRC) $(BIND_SRC) $(HDRS)
	@mkdir -p cloudfetch
	$(CC) $(ALL_CFLAGS) -shared -o $@ $(CORE_SRC) $(BIND_SRC) $(DEP_LIBS)

# The core's own C tests, without Lua: parsers and digests; the engine
# (against the loopback test server).
build/test_%: spec/c/test_%.c $(CORE_SRC) $(HDRS)
	@mkdir -p build
	$(CC) $(ALL_CFLAGS) -o $@ $< $(CORE_SRC) $(DEP_LIBS)

lint:
	luacheck --no-color -q lua spec examples bench

# The reference of the public Lua API (config.ld) in build/docs/.  Fails when
# LDoc says anything besides its usual progress lines: every warning
# ("file:line: ...") is an error here.
LDOC_PROGRESS = ^(reading configuration from |found master module|\*\*\*closing section from master module\*\*\*$$|output written to )
docs: deps
	@rm -rf build/docs && mkdir -p build
	@out=$$(ldoc . 2>&1); status=$$?; printf '%s\n' "$$out"; \
	if [ $$status -ne 0 ] || printf '%s\n' "$$out" | grep -Ev '$(LDOC_PROGRESS)' | grep -q .; then \
	  echo "make docs: LDoc reported problems (above)" >&2; exit 1; \
	fi

test: deps
	@$(MAKE) --no-print-directory build $(CTEST)
	@sh scripts/run-tests.sh

test-valgrind: deps
	@$(MAKE) --no-print-directory build $(CTEST)
	@VALGRIND=1 sh scripts/run-tests.sh

demo: deps
	@$(MAKE) --no-print-directory build
	@$(LUA_ENV) $(LUA) examples/demo.lua

bench-core: deps
	@$(MAKE) --no-print-directory build
	@$(LUA_ENV) $(LUA) bench/core.lua

# cloudfetch.b2 against b2sdk, rclone and curl, all on the local emulator.
bench-b2: deps
	@$(MAKE) --no-print-directory build
	@LUA_PATH="./lua/?.lua;./lua/?/init.lua;./spec/?.lua;;" LUA_CPATH="./?.so;;" $(LUA) bench/b2.lua

# Many small files and one big file over N connections, against curl and aria2c.
bench-concurrency: deps
	@$(MAKE) --no-print-directory build
	@LUA_PATH="./lua/?.lua;./lua/?/init.lua;./?.lua;;" LUA_CPATH="./?.so;;" $(LUA) bench/concurrency.lua

# A bucket mirrored from the emulator against b2 sync, b2sdk's Synchronizer and rclone copy.
bench-mirror: deps
	@$(MAKE) --no-print-directory build
	@LUA_PATH="./lua/?.lua;./lua/?/init.lua;./spec/?.lua;;" LUA_CPATH="./?.so;;" $(LUA) bench/mirror.lua

# Further targets (fuzzing, sanitizers, benchmarks) live in mk/*.mk.
include $(sort $(wildcard mk/*.mk))

install: build
	install -d $(DESTDIR)$(LUA_CMODULE_DIR)/cloudfetch $(DESTDIR)$(LUA_MODULE_DIR)/cloudfetch/b2
	install -m 755 $(MODULE) $(DESTDIR)$(LUA_CMODULE_DIR)/cloudfetch/core.so
	install -m 644 lua/cloudfetch/*.lua $(DESTDIR)$(LUA_MODULE_DIR)/cloudfetch/
	install -m 644 lua/cloudfetch/b2/*.lua $(DESTDIR)$(LUA_MODULE_DIR)/cloudfetch/b2/
ifneq ($(wildcard bin/cloudfetch),)
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 755 bin/cloudfetch $(DESTDIR)$(PREFIX)/bin/cloudfetch
endif

clean:
	rm -rf cloudfetch build spec/tmp demo-out bench/out
