#!/usr/bin/env bash
# Runs the test suite and counts what it says (the `make test` contract in
# docs/DESIGN: the last line is "N passed, N failed", here followed on the same
# line by ", N skipped").
#
#   tests/run.sh                 everything
#   tests/run.sh PATTERN...      only tests whose path contains a PATTERN
#
# The tests: C programs in $EP_BUILD/tests/{unit,bpf} and shell scripts in
# tests/{fuzz,e2e,drills,install,pod}. Each prints TAP (tests/lib/tap.sh, tap.h):
#   "ok N - ..."            passed
#   "ok N - ... # SKIP why"  skipped (did not run): counted as skipped, not passed
#   "1..0 # SKIP why"        the whole test skipped
#   "not ok N - ..."        failed (with or without a # SKIP or # TODO directive)
# A test that exits non-zero without a "not ok" line counts as one failure; one
# that exits 0 with no result at all (no ok, not ok or skip) counts as one
# failure; one that exits 0 with only skips is not a failure.
# Logs go to $EP_BUILD/test-logs/. Exit status 0 only if nothing failed.
set -u
cd "$(dirname "$0")/.."
export EP_ROOT=$PWD
export EP_BUILD=${EP_BUILD:-$PWD/build}
LOGDIR=$EP_BUILD/test-logs
mkdir -p "$LOGDIR"

tests=()
for t in "$EP_BUILD"/tests/unit/* "$EP_BUILD"/tests/bpf/*; do
  [ -x "$t" ] && [ -f "$t" ] && tests+=("$t")
done
for t in tests/fuzz/run.sh tests/e2e/*.sh tests/drills/*.sh tests/install/*.sh tests/pod/*.sh; do
  [ -f "$t" ] && tests+=("$t")
done

if [ $# -gt 0 ]; then
  sel=()
  for t in "${tests[@]}"; do
    for p in "$@"; do case "$t" in *"$p"*) sel+=("$t"); break;; esac; done
  done
  tests=("${sel[@]}")
fi

SKIP_RE='^ok( [0-9]+)?( |$).*#[[:space:]]*[Ss][Kk][Ii][Pp]'
passed=0; failed=0; skipped=0; failed_names=()
for t in "${tests[@]}"; do
  name=${t#"$EP_BUILD"/}; name=${name#tests/}
  log="$LOGDIR/$(echo "$name" | tr '/' '_').log"
  start=$(date +%s)
  echo "=== $name"
  case "$t" in
    *.sh) bash "$t" >"$log" 2>&1; rc=$?;;
    *)    "$t" >"$log" 2>&1; rc=$?;;
  esac
  # "ok ... # SKIP" is a skip; "1..0 # SKIP" skips the whole test (one skip).
  s=$(grep -c -E "$SKIP_RE" "$log")
  s=$((s + $(grep -c -E '^1\.\.0([[:space:]]|$).*#[[:space:]]*[Ss][Kk][Ii][Pp]' "$log")))
  p=$(grep -E '^ok( |$)' "$log" | grep -c -v -E "$SKIP_RE")
  f=$(grep -c -E '^not ok( |$)' "$log")
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; echo "not ok - $name exited with status $rc" >>"$log"; fi
  if [ "$rc" -eq 0 ] && [ "$p" -eq 0 ] && [ "$f" -eq 0 ] && [ "$s" -eq 0 ]; then
    f=1; echo "not ok - $name reported no results" >>"$log"
  fi
  passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
  grep -E '^(not ok|ok|1\.\.0|#)' "$log" | grep -E '^not ok|^# |^1\.\.0|'"$SKIP_RE" | sed 's/^/    /' | head -40
  echo "    $p passed, $f failed, $s skipped ($(( $(date +%s) - start ))s) log: $log"
  [ "$f" -gt 0 ] && failed_names+=("$name")
done

echo
[ ${#failed_names[@]} -gt 0 ] && echo "failed: ${failed_names[*]}"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
