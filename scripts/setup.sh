#!/bin/sh
# setup.sh [TARGET...]: the first command on a machine that has only git and a POSIX shell (a
# minimal Debian 12 or Ubuntu has no make): install the Debian packages pixflow needs, make among
# them (scripts/deps.sh: apt-get as root, else sudo; without either it prints the apt-get line to
# run and stops), then run `make TARGET...` in the checkout: `sh scripts/setup.sh demo`,
# `sh scripts/setup.sh test`. With no target it runs `make demo`.
set -eu
cd "$(dirname "$0")/.."
sh scripts/deps.sh
command -v make >/dev/null 2>&1 || { echo "pixflow: make is still missing after installing it"; exit 1; }
[ $# -gt 0 ] || set -- demo
exec make "$@"
