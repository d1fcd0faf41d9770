#!/bin/sh
# Installs the Debian packages `make bench` needs besides scripts/deps.sh's:
# the peers it measures and the tools it measures with; does nothing when
# they are all there.  Uses sudo only when not root.
#   python3-requests  the seed's own Python code (run with /usr/bin/python3)
#   lua-socket        LuaSocket's http.request + ltn12 (Lua 5.4)
#   lua-curl, lua5.2  a libcurl binding with a Lua write callback (Debian
#                     builds it for Lua 5.1 and 5.2 only)
#   linux-perf        the profile (valgrind's callgrind when perf cannot run)
#   nginx-light, aria2, curl, time, valgrind, coreutils: also in deps.sh
set -eu
exec sh "$(dirname "$0")/install-missing.sh" deps-bench \
  python3 python3-requests lua5.4 lua-socket lua5.2 lua-curl linux-perf valgrind nginx-light \
  aria2 curl time coreutils
