#!/usr/bin/env bash
# Runs the whole suite. Every test prints TAP lines ("ok ..." / "not ok ...");
# a test that exits non-zero without a "not ok" line counts as one failure.
# Ends with "N passed, N failed"; exit status 0 only if nothing failed.
#
#   tests/run.sh                 everything
#   tests/run.sh PATTERN...      only tests whose path contains a PATTERN
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
for t in tests/fuzz/run.sh tests/e2e/*.sh tests/drills/*.sh tests/install/*.sh; do
  [ -f "$t" ] && tests+=("$t")
done
for t in tests/py/test_*.py; do
  [ -f "$t" ] && tests+=("$t")
done

if [ $# -gt 0 ]; then
  sel=()
  for t in "${tests[@]}"; do
    for p in "$@"; do case "$t" in *"$p"*) sel+=("$t"); break;; esac; done
  done
  tests=("${sel[@]}")
fi

passed=0; failed=0; failed_names=()
for t in "${tests[@]}"; do
  name=${t#"$EP_BUILD"/}; name=${name#tests/}
  log="$LOGDIR/$(echo "$name" | tr '/' '_').log"
  start=$(date +%s)
  echo "=== $name"
  case "$t" in
    *.py) /usr/bin/python3 -m pytest -q -p no:cacheprovider "$t" --tb=short -rA >"$log" 2>&1; rc=$?
          # pytest -rA prints "PASSED name" / "FAILED name" summary lines.
          p=$(grep -c '^PASSED ' "$log"); f=$(grep -c -E '^(FAILED|ERROR) ' "$log");;
    *.sh) bash "$t" >"$log" 2>&1; rc=$?
          p=$(grep -c -E '^ok( |$)' "$log"); f=$(grep -c -E '^not ok( |$)' "$log");;
    *)    "$t" >"$log" 2>&1; rc=$?
          p=$(grep -c -E '^ok( |$)' "$log"); f=$(grep -c -E '^not ok( |$)' "$log");;
  esac
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; echo "not ok - $name exited with status $rc" >>"$log"; fi
  if [ "$rc" -eq 0 ] && [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then f=1; echo "not ok - $name reported no results" >>"$log"; fi
  passed=$((passed + p)); failed=$((failed + f))
  grep -E '^(not ok|ok|#)' "$log" | sed 's/^/    /' | grep -E 'not ok|^    # ' | head -40
  echo "    $p passed, $f failed ($(( $(date +%s) - start ))s) log: $log"
  [ "$f" -gt 0 ] && failed_names+=("$name")
done

echo
[ ${#failed_names[@]} -gt 0 ] && echo "failed: ${failed_names[*]}"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
