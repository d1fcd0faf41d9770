# make bench (issue 12): cloudfetch's verified download speed against every
# peer in one run on a local nginx — 1 GiB streamed and saved (curl, aria2c,
# the seed's Python code, LuaSocket, lua-curl), peak RSS at 100 MiB and
# 1 GiB, bench-concurrency and bench-mirror in reduced form, a profile of the
# verified chunks() path — printed and written to
# bench/results/<date>-<machine>.md.  About 5-10 minutes on 2 cores.
#   make bench BENCH_QUICK=1    small sizes, one round, bench/out/results-quick.md
# Other knobs (environment): see the head of bench/bench.lua.
.PHONY: bench

bench: deps
	@sh scripts/deps-bench.sh
	@$(MAKE) --no-print-directory build
	@LUA_PATH="./lua/?.lua;./lua/?/init.lua;./spec/?.lua;./?.lua;;" LUA_CPATH="./?.so;;" $(LUA) bench/bench.lua
