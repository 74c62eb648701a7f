#!/bin/sh
# deps.sh: install the Debian packages pixflow needs, if any is missing.
# As root it uses apt-get, otherwise sudo; without either it prints the line to run and stops.
# Arguments name further packages (make fuzz: clang; make test-valgrind: valgrind).
set -eu
PKGS="lua5.4 liblua5.4-dev libcurl4-openssl-dev libjansson-dev libsqlite3-dev sqlite3 libmicrohttpd-dev lua-cjson \
lua-busted lua-socket luarocks libssl-dev pkg-config make gcc ca-certificates openssl curl $*"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "pixflow: installing missing packages:$missing"
if [ "$(id -u)" = 0 ]; then
  SUDO=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  SUDO="sudo"
else
  echo "pixflow: please install them first:"
  echo "  sudo apt-get install -y$missing"
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq || true
$SUDO apt-get install -y -qq $missing
