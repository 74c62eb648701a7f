#!/bin/sh
# allocfail.sh: run scripts/allocfail_run.lua once for every N, with the N-th allocation of the
# C core failing (build/allocfail: the core built with spec/support/failalloc.h, under ASan),
# until N passes the run's last allocation. Each run must end (success or error): a crash, a
# hang (30 s) or a leak (LeakSanitizer) fails the test. STEP=k tries every k-th N only.
set -u
cd "$(dirname "$0")/.."
STEP=${STEP:-1}
tmp=$(mktemp -d)
trap 'kill $spid 2>/dev/null; rm -rf "$tmp"' EXIT INT TERM
build/pixflow-sandbox --port 0 --task-seconds 0.05 --exit-with-parent > "$tmp/sandbox.log" 2>&1 &
spid=$!
url=""
for _ in $(seq 1 50); do
  url=$(sed -n 's/^pixflow sandbox: listening on \(http:[^ ]*\)$/\1/p' "$tmp/sandbox.log")
  [ -n "$url" ] && break
  sleep 0.1
done
[ -n "$url" ] || { echo "allocfail: the sandbox did not start"; exit 1; }
asan=$(gcc -print-file-name=libasan.so)
n=1; runs=0; oks=0; errs=0; bad=0; total=0
run_once() {
  rm -rf "$tmp/run" && mkdir -p "$tmp/run"
  PF_FAIL_AT=$n PF_FAIL_REPORT="$tmp/count" LD_PRELOAD="$asan" \
    ASAN_OPTIONS=detect_leaks=1:exitcode=23:abort_on_error=0 \
    LSAN_OPTIONS=suppressions=spec/support/lsan.supp:print_suppressions=0 \
    LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build/allocfail/?.so;;' \
    timeout 30 lua5.4 scripts/allocfail_run.lua "$url" "$tmp/run" > "$tmp/out" 2>&1
  rc=$?
}
tool=0; vg=0
while :; do
  run_once
  # LeakSanitizer's own stop-the-world tracer sometimes crashes at exit (it says so): that run
  # proves nothing either way, so it is run again, and counted
  if [ $rc -ne 0 ] && grep -q "LeakSanitizer has encountered a fatal error" "$tmp/out"; then
    tool=$((tool + 1))
    run_once
    if [ $rc -ne 0 ] && grep -q "LeakSanitizer has encountered a fatal error" "$tmp/out"; then
      # again: judge this N by valgrind memcheck (the same failing allocation, no ASan)
      rm -rf "$tmp/run" && mkdir -p "$tmp/run"
      PF_FAIL_AT=$n LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build/allocfail-vg/?.so;;' \
        timeout 120 valgrind --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=23 \
        lua5.4 scripts/allocfail_run.lua "$url" "$tmp/run" > "$tmp/out" 2>&1
      rc=$?
      vg=$((vg + 1))
    fi
  fi
  runs=$((runs + 1))
  total=$(cat "$tmp/count" 2>/dev/null || echo 0)
  if [ $rc -ne 0 ]; then
    bad=$((bad + 1))
    echo "allocfail: N=$n ended badly (exit $rc):"; head -40 "$tmp/out"
  elif grep -q "^raised\|^error" "$tmp/out"; then
    errs=$((errs + 1))
  else
    oks=$((oks + 1))
  fi
  [ "$n" -gt "$total" ] && break
  n=$((n + STEP))
done
echo "allocfail: $runs runs, allocation N failed for N = 1..$total step $STEP (the last run failed none): $oks ended in success, $errs with an error, $bad crashed, hung or leaked ($tool runs repeated because LeakSanitizer itself failed, $vg of them judged by valgrind)"
[ $bad -eq 0 ]
