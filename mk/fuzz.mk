# make fuzz: the libFuzzer targets (spec/c/fuzz_*.c) over every parser that
# sees untrusted bytes, each run for FUZZ_SECONDS from the seed corpus in
# spec/fuzz/<target>/, then the Lua decoders' fuzz loop
# (spec/fuzz/lua_decoders.lua) for as long.  clang and libFuzzer come from
# scripts/deps-fuzz.sh, so `make test` never needs them.
#
#   make fuzz                       60 s per target (the CI setting)
#   make fuzz FUZZ_SECONDS=600      longer, locally
#   make fuzz FUZZ_TARGETS="fuzz_transfer" FUZZ_SECONDS=300
#   build/fuzz/fuzz_transfer build/fuzz/fuzz_transfer-crash-...   (replays a crash)
#
# Working corpora live in build/fuzz/corpus-<target> (seeded by copying
# spec/fuzz/<target>/, so the committed seeds never change); the inputs that
# broke something in build/fuzz/<target>-crash-* (or -leak-, -timeout-, -oom-).

FUZZ_SECONDS ?= 60
FUZZ_CC      ?= clang
FUZZ_TARGETS ?= fuzz_parsers fuzz_digests fuzz_transfer fuzz_files
FUZZ_LUA     ?= 1
FUZZ_SAN      = -fsanitize=address,undefined -fno-sanitize-recover=all
# The fuzzed bodies are small (fuzz_transfer: up to 128 KiB), so the
# hasher takes bodies from 4 KiB and is handed 1 KiB at a time: the
# threaded path runs in many pieces, not once at the end.
FUZZ_HASHER   = -DCF_HASH_THREAD_MIN=4096 -DCF_HAND_OVER=1024
FUZZ_CFLAGS   = -g -O1 -fno-omit-frame-pointer $(FUZZ_SAN) $(WARN) -D_GNU_SOURCE $(FUZZ_HASHER) $(DEP_CFLAGS)
FUZZ_OBJ      = $(patsubst src/%.c,build/fuzz/obj/%.o,$(CORE_SRC))

.PHONY: fuzz fuzz-deps fuzz-build

fuzz: deps fuzz-deps
	@$(MAKE) --no-print-directory build fuzz-build
	@FUZZ_SECONDS='$(FUZZ_SECONDS)' FUZZ_LUA='$(FUZZ_LUA)' LUA='$(LUA)' sh spec/fuzz/run.sh $(FUZZ_TARGETS)

fuzz-deps:
	@sh scripts/deps-fuzz.sh

fuzz-build: $(addprefix build/fuzz/,$(FUZZ_TARGETS))

# The core, instrumented for coverage and the sanitizers (no libFuzzer main).
build/fuzz/obj/%.o: src/%.c $(HDRS)
	@mkdir -p build/fuzz/obj
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

build/fuzz/fuzz_%: spec/c/fuzz_%.c $(FUZZ_OBJ) $(HDRS)
	@mkdir -p build/fuzz
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_OBJ) $(DEP_LIBS)

.SECONDARY: $(FUZZ_OBJ)
