# shellcheck shell=sh
# The environment of a sanitizer run (`make test-asan`), for sh or bash, run
# from the top of the checkout after `make build-asan`:
#   . scripts/asan-env.sh && lua5.4 /usr/bin/busted spec/cli_spec.lua; ls build/asan/log
# scripts/run-tests.sh sources it when ASAN=1.
#
# - build/asan/bin (the sanitized lua5.4, spec/support/asan_lua.c) first in
#   PATH: busted and every `lua5.4 ...` a spec starts run under it.  No
#   LD_PRELOAD, so curl, python3, openssl... start clean.
# - CLOUDFETCH_ASAN_CPATH: that lua5.4 puts it in front of package.cpath, so
#   a subprocess given LUA_CPATH="./?.so;;" loads the instrumented module too.
# - halt_on_error, exitcode 86: the first report ends that process (UBSan has
#   no recovery either: -fno-sanitize-recover=all).  log_path: every report of
#   every process lands in build/asan/log/report.PID, also when a spec
#   swallows the process's stderr; the directory is emptied here.
# - detect_leaks (LeakSanitizer at each exit), detect_stack_use_after_return,
#   strict_string_checks (C string functions must get terminated strings).
#   Nothing is suppressed.
asan_dir=$PWD/build/asan
rm -rf "$asan_dir/log" && mkdir -p "$asan_dir/log"
asan_common="halt_on_error=1:exitcode=86:print_stacktrace=1:log_path=$asan_dir/log/report"
export ASAN_OPTIONS="$asan_common:detect_leaks=1:detect_stack_use_after_return=1:strict_string_checks=1"
export UBSAN_OPTIONS="$asan_common"
export CLOUDFETCH_ASAN_CPATH="$asan_dir/?.so"
export LUA_PATH="./lua/?.lua;./lua/?/init.lua;./spec/?.lua;;"
export LUA_CPATH="$asan_dir/?.so;;"
export PATH="$asan_dir/bin:$PATH"
unset asan_common
