#!/bin/sh
# Installs the Debian packages cloudfetch needs to build, test, demo and
# benchmark; does nothing when they are all there.  Uses sudo only when not root.
set -eu
pkgs="gcc make pkg-config lua5.4 liblua5.4-dev libcurl4-openssl-dev libssl-dev
      lua-cjson lua-argparse lua-busted lua-check lua-luv python3 python3-b2sdk backblaze-b2 rclone nginx-light aria2
      openssl curl ca-certificates valgrind time luarocks lua-ldoc lua-discount"
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "deps: installing$missing"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# shellcheck disable=SC2086
$sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
