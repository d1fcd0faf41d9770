#!/bin/sh
# The Debian packages `make fuzz` needs besides scripts/deps.sh's: clang with
# libFuzzer and the sanitizer runtimes (libclang-rt-dev), and llvm for
# llvm-symbolizer (readable stack traces).
set -eu
exec sh "$(dirname "$0")/install-missing.sh" deps-fuzz \
  clang libclang-rt-dev llvm
