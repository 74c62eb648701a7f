#!/bin/sh
# demo.sh: start the sandbox, run examples/fusion.lua against it, check the MP4, stop the sandbox.
set -eu
mkdir -p out
rm -f out/demo.mp4
: > out/sandbox.log          # exists before the background redirect opens it: no race with sed
build/pixflow-sandbox --port 0 --task-seconds 6 --exit-with-parent > out/sandbox.log 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT INT TERM
url=""
for _ in $(seq 1 50); do
  url=$(sed -n 's/^pixflow sandbox: listening on \(http:[^ ]*\)$/\1/p' out/sandbox.log)
  [ -n "$url" ] && break
  sleep 0.1
done
[ -n "$url" ] || { echo "demo: the sandbox did not start:"; cat out/sandbox.log; exit 1; }
echo "demo: sandbox at $url (a local emulation of apimart; no credits are spent)"
PIXFLOW_BASE_URL="$url/apimart" APIMART_API_KEY=sandbox-key PIXFLOW_POLL=0.5 \
LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build/?.so;;' \
  lua5.4 examples/fusion.lua out/demo.mp4
magic=$(head -c 8 out/demo.mp4 | tail -c 4)
[ "$magic" = "ftyp" ] || { echo "demo: out/demo.mp4 is not an MP4"; exit 1; }
echo "demo: out/demo.mp4 is an MP4 ($(wc -c < out/demo.mp4) bytes, 'ftyp' at byte 4)"
