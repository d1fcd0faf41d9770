#!/bin/sh
# The Debian packages `make fuzz` needs besides scripts/deps.sh's: clang with
# libFuzzer and the sanitizer runtimes (libclang-rt-dev), and llvm for
# llvm-symbolizer (readable stack traces).  Does nothing when they are there.
set -eu
pkgs="clang libclang-rt-dev llvm"
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "deps-fuzz: installing$missing"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# shellcheck disable=SC2086
$sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
