#!/bin/sh
# Installs the Debian packages `make test-asan` and `make cppcheck` need on top
# of scripts/deps.sh (kept apart so `make test` does not install them): clang
# with its sanitizer runtimes (libclang-rt-dev: ASan, UBSan, LSan),
# llvm-symbolizer (package llvm) for file:line in the reports, and cppcheck.  Does nothing when they are all there; sudo only when not root.
set -eu
pkgs="clang libclang-rt-dev llvm liblua5.4-dev cppcheck"
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "deps-asan: installing$missing"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# shellcheck disable=SC2086
$sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
