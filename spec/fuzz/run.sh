#!/bin/sh
# Runs each libFuzzer target named on the command line for FUZZ_SECONDS
# from its working corpus (build/fuzz/corpus-<target>, seeded from
# spec/fuzz/<target>/), then the Lua decoders' loop (unless FUZZ_LUA=0).
# Called by `make fuzz` (mk/fuzz.mk) after the targets are built.  Fails
# when any target found a crash, a leak, a timeout or a broken invariant,
# and prints the input that reproduces it (build/fuzz/<target>-crash-*,
# -leak-*, -timeout-*, -oom-*).
set -u
seconds=${FUZZ_SECONDS:-60}
lua=${LUA:-lua5.4}
dir=build/fuzz
status=0
summary=""

# Per target: the largest input worth trying (bytes).
max_len() {
  case $1 in
    fuzz_transfer) echo 8192 ;;
    fuzz_files) echo 2048 ;;
    fuzz_digests) echo 65536 ;;
    *) echo 4096 ;;
  esac
}

if command -v llvm-symbolizer >/dev/null 2>&1; then
  ASAN_SYMBOLIZER_PATH=$(command -v llvm-symbolizer)
  export ASAN_SYMBOLIZER_PATH
fi
UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export UBSAN_OPTIONS

for target in "$@"; do
  corpus=$dir/corpus-$target
  log=$dir/$target.log
  mkdir -p "$corpus"
  [ -d "spec/fuzz/$target" ] && cp spec/fuzz/"$target"/* "$corpus"/ 2>/dev/null
  rm -f "$dir/$target"-crash-* "$dir/$target"-leak-* "$dir/$target"-timeout-* "$dir/$target"-oom-*
  echo "fuzz: $target for ${seconds} s (corpus $corpus, log $log)"
  "$dir/$target" -max_total_time="$seconds" -max_len="$(max_len "$target")" -timeout=30 -rss_limit_mb=2560 \
    -print_final_stats=1 -artifact_prefix="$dir/$target-" "$corpus" >"$log" 2>&1
  rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  cov=$(sed -n 's/^#[0-9]*[[:space:]]*DONE[[:space:]]*cov: \([0-9]*\).*/\1/p' "$log" | tail -n 1)
  if [ "$rc" -ne 0 ]; then
    status=1
    repro=$(ls -t "$dir/$target"-crash-* "$dir/$target"-leak-* "$dir/$target"-timeout-* "$dir/$target"-oom-* \
      2>/dev/null | head -n 1)
    echo "fuzz: $target FAILED (exit $rc) after ${execs:-?} runs; the end of $log:" >&2
    grep -v '^#[0-9]' "$log" | tail -n 40 >&2
    if [ -n "$repro" ]; then
      # The input itself too: a CI log outlives the clone it ran in.
      echo "fuzz: reproduce with: $dir/$target $repro" >&2
      echo "fuzz: the input, base64 (base64 -d > input):" >&2
      head -c 16384 "$repro" | base64 >&2
    fi
    why=$(grep -m 1 -E 'invariant broken|ERROR: |runtime error|deadly signal' "$log")
    summary="$summary
  $target: FAILED${repro:+ (reproducer $repro)}${why:+
    $why}"
  else
    summary="$summary
  $target: ${execs:-?} runs, coverage ${cov:-?}, corpus $(ls "$corpus" | wc -l) inputs"
  fi
done

if [ "${FUZZ_LUA:-1}" != 0 ]; then
  echo "fuzz: lua_decoders for ${seconds} s"
  out=$(LUA_PATH="./lua/?.lua;./lua/?/init.lua;./spec/?.lua;;" LUA_CPATH="./?.so;;" FUZZ_SECONDS="$seconds" \
    "$lua" spec/fuzz/lua_decoders.lua 2>&1)
  rc=$?
  printf '%s\n' "$out" | tail -n 30
  if [ "$rc" -ne 0 ]; then
    status=1
    summary="$summary
  lua_decoders: FAILED (see above: rerun with the FUZZ_SEED it printed)"
  else
    summary="$summary
  lua_decoders: $(printf '%s\n' "$out" | sed -n 's/^lua_decoders: //p' | tail -n 1)"
  fi
fi

echo "fuzz summary:$summary"
exit $status
