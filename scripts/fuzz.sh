#!/bin/sh
# fuzz.sh SECONDS TARGET...: run each built libFuzzer target (build/fuzz/TARGET_fuzz) for SECONDS,
# print its figures, and end with "N passed, N failed" (one per target) for CI's accounting.
# New inputs go to build/fuzz/corpus/TARGET, crashes to build/fuzz/crashes/TARGET, the log of each
# run to build/fuzz/TARGET.log; the seeds in fuzz/corpus/TARGET are read only.
set -u
cd "$(dirname "$0")/.."
seconds=$1
shift
passed=0
failed=0
for t in "$@"; do
  mkdir -p "build/fuzz/corpus/$t" "build/fuzz/crashes/$t"
  seeds=""
  [ -d "fuzz/corpus/$t" ] && seeds="fuzz/corpus/$t"
  dict=""
  [ -f "fuzz/$t.dict" ] && dict="-dict=fuzz/$t.dict"
  echo "fuzz: $t for $seconds s"
  # shellcheck disable=SC2086 # $dict and $seeds are one word or none
  PIXFLOW_ROOT=$(pwd) ASAN_OPTIONS=detect_leaks=1 "build/fuzz/${t}_fuzz" \
    -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="build/fuzz/crashes/$t/" -print_final_stats=1 $dict \
    "build/fuzz/corpus/$t" $seeds > "build/fuzz/$t.log" 2>&1
  rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "build/fuzz/$t.log")
  new=$(sed -n 's/^stat::new_units_added: *//p' "build/fuzz/$t.log")
  rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "build/fuzz/$t.log")
  cov=$(grep -E '^#[0-9]+.*(DONE|pulse|NEW|REDUCE)' "build/fuzz/$t.log" | tail -n 1 |
        sed -n 's/.* cov: \([0-9]*\) ft: \([0-9]*\) corp: \([0-9]*\).*/cov \1, ft \2, corpus \3/p')
  if [ $rc -eq 0 ]; then
    passed=$((passed + 1))
    echo "fuzz: $t ok: ${runs:-?} runs in $seconds s, ${new:-?} new units, ${cov:-no coverage line}, peak rss ${rss:-?} MB"
  else
    failed=$((failed + 1))
    echo "fuzz: $t FAILED (exit $rc): build/fuzz/$t.log says:"
    grep -E 'ERROR|SUMMARY|runtime error|Test unit written|raised' "build/fuzz/$t.log" | head -20
  fi
done
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
