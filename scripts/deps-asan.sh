#!/bin/sh
# Installs the Debian packages `make test-asan` and `make cppcheck` need on top
# of scripts/deps.sh (kept apart so `make test` does not install them): clang
# with its sanitizer runtimes (libclang-rt-dev: ASan, UBSan, LSan),
# llvm-symbolizer (package llvm) for file:line in the reports, and cppcheck.
set -eu
exec sh "$(dirname "$0")/install-missing.sh" deps-asan \
  clang libclang-rt-dev llvm liblua5.4-dev cppcheck
