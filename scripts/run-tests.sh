#!/bin/sh
# Runs every test suite of the project and ends with one line
# "N passed, M failed" over all of them; exits non-zero if anything failed.
#   VALGRIND=1  runs the C test and the busted suite under valgrind memcheck
#               (zero errors and zero definite/indirect leaks required).
#   ASAN=1      runs them built with AddressSanitizer, UndefinedBehaviorSanitizer
#               and LeakSanitizer (`make test-asan` builds build/asan/ first):
#               the busted suite and every `lua5.4` the specs start run under
#               build/asan/bin/lua5.4 (first in PATH), which loads
#               build/asan/cloudfetch/core.so.  No LD_PRELOAD, so curl,
#               python3, openssl... start clean.  Every report, from any
#               process, lands in build/asan/log/ and fails the run
#               (scripts/asan-env.sh has the details).
set -u
cd "$(dirname "$0")/.." || exit 2
LUA=${LUA:-lua5.4}
PYTHON=${PYTHON:-/usr/bin/python3}
export LUA_PATH="./lua/?.lua;./lua/?/init.lua;./spec/?.lua;;"
export LUA_CPATH="./?.so;;"
mkdir -p build
passed=0
failed=0
add() { passed=$((passed + $1)); failed=$((failed + $2)); }

vg=""
ctest=./build   # where the C tests are
out=build       # where the outputs go
full=1  # luacheck and the Python tests too (not in the valgrind or sanitizer runs)
if [ "${ASAN:-}" = 1 ]; then
  asan=$PWD/build/asan
  for f in "$asan/bin/lua5.4" "$asan/cloudfetch/core.so" "$asan/test_core" "$asan/test_engine"; do
    [ -f "$f" ] || { echo "run-tests: $f missing (make build-asan)" >&2; exit 2; }
  done
  # PATH, LUA_CPATH, ASAN_OPTIONS, UBSAN_OPTIONS (every report to build/asan/log/).
  . scripts/asan-env.sh
  LUA=$asan/bin/lua5.4
  ctest=$asan
  out=$asan
  full=0
elif [ "${VALGRIND:-}" = 1 ]; then
  full=0
  vg="valgrind --quiet --error-exitcode=99 --leak-check=full --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect --suppressions=spec/valgrind.supp"
fi

if [ "$full" = 1 ]; then
  echo "== luacheck"
  if luacheck --no-color -q lua spec examples bench; then add 1 0; else add 0 1; fi
fi

for t in core engine; do
  echo "== C test spec/c/test_$t.c"
  $vg "$ctest/test_$t" > "$out/test_$t.out" 2>&1
  rc=$?
  cat "$out/test_$t.out"
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out/test_$t.out" | tail -n 1)
  p=$(echo "$line" | sed -E 's/^([0-9]+) passed.*/\1/'); f=$(echo "$line" | sed -E 's/.* ([0-9]+) failed$/\1/')
  [ -n "$line" ] || { p=0; f=1; }
  [ "$rc" -eq 0 ] || [ "$f" -gt 0 ] || f=1
  add "$p" "$f"
done

echo "== busted (spec/*_spec.lua)"
# shellcheck disable=SC2086
$vg $LUA /usr/bin/busted -o utfTerminal spec > "$out/busted.out" 2>&1
rc=$?
cat "$out/busted.out"
line=$(grep -E '[0-9]+ success(es)? / [0-9]+ failures? / [0-9]+ errors?' "$out/busted.out" | tail -n 1)
if [ -n "$line" ]; then
  p=$(echo "$line" | sed -E 's/^([0-9]+) success.*/\1/')
  f=$(echo "$line" | sed -E 's/.* ([0-9]+) failures? \/ ([0-9]+) errors?.*/\1 \2/' | awk '{print $1 + $2}')
else
  p=0; f=1
fi
[ "$rc" -eq 0 ] || [ "$f" -gt 0 ] || f=1
add "$p" "$f"

if [ -n "${asan:-}" ]; then
  echo "== sanitizer reports (build/asan/log/)"
  reports=0
  for f in "$asan"/log/*; do
    [ -f "$f" ] || continue
    echo "-- $f"
    cat "$f"
    reports=$((reports + 1))
  done
  echo "$reports report(s)"
  if [ "$reports" -eq 0 ]; then add 1 0; else add 0 "$reports"; fi
fi

if [ "$full" = 1 ]; then
  echo "== emulator and conformance tests (spec/emulator/test_*.py)"
  $PYTHON -m unittest discover -s spec/emulator -p 'test_*.py' -v > build/pytest.out 2>&1
  rc=$?
  cat build/pytest.out
  total=$(grep -E '^Ran [0-9]+ tests?' build/pytest.out | sed -E 's/^Ran ([0-9]+).*/\1/')
  bad=$(grep -E '^FAILED \(' build/pytest.out | grep -oE '(failures|errors)=[0-9]+' | cut -d= -f2 | awk '{s += $1} END {print s + 0}')
  total=${total:-0}
  [ "$total" -gt 0 ] || { total=1; bad=1; }
  [ "$rc" -eq 0 ] || [ "$bad" -gt 0 ] || bad=1
  add $((total - bad)) "$bad"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
