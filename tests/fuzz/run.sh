#!/usr/bin/env bash
# Runs every libFuzzer target built as $EP_BUILD/fuzz/fuzz_NAME for a bounded
# time, one TAP line each. Each fuzzer works on a scratch copy of
# tests/fuzz/corpus/NAME/ so the repository is never modified; inputs that
# crash are kept under $EP_BUILD/fuzz-artifacts/NAME/ for reproduction
# (run the fuzzer binary with the file as its only argument).
#
#   EP_BUILD=./build  EP_FUZZ_SECONDS=30  tests/fuzz/run.sh [NAME...]
set -u
cd "$(dirname "$0")/../.." || exit 1
# shellcheck source=tests/lib/tap.sh
. tests/lib/tap.sh

EP_BUILD=${EP_BUILD:-./build}
SECS=${EP_FUZZ_SECONDS:-30}
LOGDIR=$EP_BUILD/fuzz-logs
mkdir -p "$LOGDIR"
scratch=$(mktemp -d "${TMPDIR:-/tmp}/ep-fuzz.XXXXXX") || exit 1
trap 'rm -rf "$scratch"' EXIT

bins=()
for bin in "$EP_BUILD"/fuzz/fuzz_*; do
  if [ ! -f "$bin" ] || [ ! -x "$bin" ]; then continue; fi
  if [ $# -gt 0 ]; then
    want=0
    for n in "$@"; do [ "$(basename "$bin")" = "fuzz_${n#fuzz_}" ] && want=1; done
    [ $want -eq 1 ] || continue
  fi
  bins+=("$bin")
done
if [ ${#bins[@]} -eq 0 ]; then
  not_ok "no fuzzers found in $EP_BUILD/fuzz (run: make fuzz)"
  tap_done
  exit 1
fi

for bin in "${bins[@]}"; do
  fname=$(basename "$bin")
  name=${fname#fuzz_}
  work=$scratch/$name
  art=$EP_BUILD/fuzz-artifacts/$name
  log=$LOGDIR/$fname.log
  mkdir -p "$work/corpus" "$art"
  if [ -d "tests/fuzz/corpus/$name" ]; then
    cp -R "tests/fuzz/corpus/$name/." "$work/corpus/"
  else
    diag "$fname: no seed corpus in tests/fuzz/corpus/$name, starting empty"
  fi
  dict=()
  [ -f "tests/fuzz/$name.dict" ] && dict=(-dict="tests/fuzz/$name.dict")

  start=$(date +%s)
  # The outer timeout only guards against a fuzzer that stops honouring its
  # own limits; -timeout catches a single slow input.
  timeout -k 10 $((SECS * 2 + 60)) "$bin" "${dict[@]}" \
    -max_total_time="$SECS" -rss_limit_mb=2048 -timeout=10 \
    -artifact_prefix="$art/" -print_final_stats=1 "$work/corpus" >"$log" 2>&1
  rc=$?
  secs=$(( $(date +%s) - start ))
  runs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -1)

  if [ $rc -eq 0 ]; then
    ok "$fname: ${runs:-?} runs, no crash in $secs s"
  else
    if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then diag "$fname: killed after $secs s (hung)"; fi
    not_ok "$fname crashed (see log)"
    # The sanitizer report is what matters; the progress lines above it are not.
    first=$(grep -n -m1 -E '^==[0-9]+==|runtime error:|^ALARM:|^Deadly|out-of-memory|^MS: ' "$log" | cut -d: -f1)
    sed -n "${first:-1},\$p" "$log" | tail -n 120 | sed 's/^/# /'
    for a in "$art"/*; do [ -f "$a" ] && diag "reproduce: $bin $a"; done
    diag "full log: $log"
  fi
done
tap_done
