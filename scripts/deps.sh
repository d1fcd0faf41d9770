#!/bin/sh
# Installs the Debian packages cloudfetch needs to build, test, demo and
# benchmark; does nothing when they are all there.  Uses sudo only when not root.
set -eu
exec sh "$(dirname "$0")/install-missing.sh" deps \
  gcc make pkg-config lua5.4 liblua5.4-dev libcurl4-openssl-dev libssl-dev lua-cjson \
  lua-argparse lua-busted lua-check lua-luv python3 python3-b2sdk backblaze-b2 rclone \
  nginx-light aria2 openssl curl ca-certificates valgrind time luarocks lua-ldoc \
  lua-discount
