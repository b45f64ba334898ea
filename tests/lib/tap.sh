# TAP helpers for shell tests (https://testanything.org/tap-specification.html).
#
#   . "$EP_ROOT/tests/lib/tap.sh"
#   ok "description"                  -> "ok N - description"
#   not_ok "description"              -> "not ok N - description" (counts as a failure)
#   tap_skip "description" "reason"   -> "ok N - description # SKIP reason"
#   check "description" cmd args...   -> ok if the command succeeds, else not_ok
#   diag "text"                       -> "# text" (shown by tests/run.sh)
#   tap_done                          -> prints the plan "1..N"; status 1 if anything failed
#
# A check that did not run is a tap_skip, never an ok: tests/run.sh counts
# "# SKIP" lines as skipped, not passed. A test that only skips exits 0.
TAP_N=0; TAP_FAILED=0; TAP_SKIPPED=0
ok()       { TAP_N=$((TAP_N + 1)); echo "ok $TAP_N - $*"; }
not_ok()   { TAP_N=$((TAP_N + 1)); TAP_FAILED=$((TAP_FAILED + 1)); echo "not ok $TAP_N - $*"; }
tap_skip() { TAP_N=$((TAP_N + 1)); TAP_SKIPPED=$((TAP_SKIPPED + 1)); echo "ok $TAP_N - $1 # SKIP ${2:-}"; }
diag()     { echo "# $*"; }
check()    { local d=$1; shift; if "$@"; then ok "$d"; else not_ok "$d"; fi; }
tap_done() { echo "1..$TAP_N"; [ "$TAP_FAILED" -eq 0 ]; }
