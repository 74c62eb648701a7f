#!/bin/sh
# fresh-debian.sh [DIR]: the README's set-up, tried as a newcomer would on a fresh Debian 12:
# debootstrap a minbase bookworm into DIR (default /tmp/pixflow-fresh-debian; kept, so a second run
# reuses it), add only git, clone this checkout's HEAD into it, and run the README's two set-up
# commands there (`sh scripts/setup.sh demo`, `sh scripts/setup.sh test`), in a chroot.
# Needs root, network access to Debian's archive and about 1 GB; takes several minutes. CI does
# not run it (it needs root and the network); run it by hand before changing the set-up.
set -eu
src=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-/tmp/pixflow-fresh-debian}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
[ "$(id -u)" = 0 ] || { echo "fresh-debian: run it as root (debootstrap and chroot)"; exit 1; }
command -v debootstrap >/dev/null 2>&1 || apt-get install -y debootstrap
if [ ! -f "$dir/etc/debian_version" ]; then
  echo "fresh-debian: debootstrap --variant=minbase bookworm $dir"
  debootstrap --variant=minbase bookworm "$dir" "$mirror"
fi
cp /etc/resolv.conf "$dir/etc/resolv.conf"
mkdir -p "$dir/proc" "$dir/mnt/pixflow-src"
cleanup() {
  umount "$dir/mnt/pixflow-src" 2>/dev/null || true
  umount "$dir/proc" 2>/dev/null || true
}
trap cleanup EXIT INT TERM
mount -t proc proc "$dir/proc"
mount --bind "$src" "$dir/mnt/pixflow-src"
mount -o remount,bind,ro "$dir/mnt/pixflow-src"
# shellcheck disable=SC2016 # expanded inside the chroot
chroot "$dir" /usr/bin/env -i HOME=/root TERM=dumb PATH=/usr/sbin:/usr/bin:/sbin:/bin /bin/sh -c '
  set -e
  echo "fresh-debian: in the chroot: $(cat /etc/debian_version); make: $(command -v make || echo none)"
  export DEBIAN_FRONTEND=noninteractive
  command -v git >/dev/null || { apt-get update -qq && apt-get install -y -qq git >/dev/null; }
  rm -rf /root/pixflow
  git clone -q /mnt/pixflow-src /root/pixflow
  cd /root/pixflow
  echo "fresh-debian: cloned $(git log --oneline -1)"
  echo "fresh-debian: \$ sh scripts/setup.sh demo"
  sh scripts/setup.sh demo
  echo "fresh-debian: \$ sh scripts/setup.sh test"
  sh scripts/setup.sh test
'
