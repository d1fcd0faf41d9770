#!/bin/sh
# install-missing.sh LABEL PACKAGE...: installs the Debian packages of the
# list that are not installed yet; does nothing when they all are.  Uses sudo
# only when not root.  The scripts/deps*.sh lists call it.
set -eu
label=$1
shift
missing=""
for p in "$@"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "$label: installing$missing"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# shellcheck disable=SC2086
$sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
