#!/usr/bin/env bash
# make bench: every benchmark, one after the other, each printing a table and
# writing build/bench/NAME.json. Not tests: numbers, not pass/fail (a
# benchmark exits non-zero only when it could not run at all).
#
#   tests/bench/run.sh [NAME...]     NAME: xdp_cost lb_latency cache_build cache_serve dns_drills certs_sync
set -u
cd "$(dirname "$0")/../.."
B=${EP_BUILD:-build}
mkdir -p "$B/bench"
all=(xdp_cost lb_latency cache_build cache_serve dns_drills certs_sync)
[ $# -gt 0 ] && all=("$@")
rc=0
for b in "${all[@]}"; do
  echo
  echo "=================== $b ==================="
  case $b in
    xdp_cost) "$B/tests/bench/xdp_cost" "${XDP_COST_RUNS:-30000}" "$B/bench/xdp_cost.json" || rc=1 ;;
    lb_latency) bash tests/bench/lb_latency.sh "${BENCH_SECONDS:-3}" "${BENCH_ROUNDS:-3}" || rc=1 ;;
    cache_build) bash tests/bench/cache_build.sh || rc=1 ;;
    cache_serve) bash tests/bench/cache_serve.sh || rc=1 ;;
    dns_drills) bash tests/bench/dns_drills.sh || rc=1 ;;
    certs_sync) bash tests/bench/certs_sync.sh "${CERTS_ROTATIONS:-100}" || rc=1 ;;
    *) echo "unknown benchmark $b"; rc=2 ;;
  esac
done
echo
echo "results in $B/bench/: $(cd "$B/bench" && ls *.json 2>/dev/null | tr '\n' ' ')"
exit $rc
