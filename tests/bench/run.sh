#!/usr/bin/env bash
# make bench: every benchmark, one after the other, each printing a table and
# writing build/bench/NAME.json. Not tests: numbers, not pass/fail (a
# benchmark exits non-zero only when it could not run at all).
#
#   tests/bench/run.sh [NAME...]     NAME: xdp_cost lb_latency mirror_cost cache_build cache_serve dns_drills
#                                          dns_onset dns_soak health_cost canary_tap canary_rollback certs_sync
#                                          fallback_dnssec_cost
#
# xdp_cost times the previous commit's XDP object next to this build's
# (XDP_COST_BASE_REF=<commit> for another one).
# dns_soak runs SOAK_S (default 600) seconds of healthy traffic in real time.
set -u
cd "$(dirname "$0")/../.."
B=${EP_BUILD:-build}
mkdir -p "$B/bench"
all=(xdp_cost lb_latency mirror_cost cache_build cache_serve dns_drills dns_onset dns_soak health_cost canary_tap canary_rollback certs_sync fallback_dnssec_cost)
[ $# -gt 0 ] && all=("$@")
rc=0
for b in "${all[@]}"; do
  echo
  echo "=================== $b ==================="
  case $b in
    xdp_cost)
      # The previous build's XDP object, timed in the same rounds: the
      # XDP_COST_BASE_REF commit (default: where this branch left main, or
      # HEAD~1 on main itself), built from its own sources.
      ref=${XDP_COST_BASE_REF:-$(git merge-base HEAD main 2>/dev/null)}
      [ -z "$ref" ] || [ "$(git rev-parse "$ref" 2>/dev/null)" = "$(git rev-parse HEAD)" ] && ref=HEAD~1
      base_dir=$(mktemp -d) base_obj=""
      if git archive "$ref" xdp include 2>/dev/null | tar -x -C "$base_dir" &&
        clang -O2 -g -target bpf -D__TARGET_ARCH_x86 -I"$base_dir/include" -I"$B/include" \
          -c "$base_dir/xdp/xdp_lb.bpf.c" -o "$B/bench/xdp_lb.base.bpf.o" 2>"$B/bench/xdp_lb.base.log"; then
        base_obj=$B/bench/xdp_lb.base.bpf.o
        echo "baseline: xdp_lb.bpf.c of $(git log -1 --format='%h %s' "$ref")"
      else
        echo "baseline: could not build xdp_lb.bpf.c of $ref (see $B/bench/xdp_lb.base.log); this build only"
      fi
      rm -rf "$base_dir"
      XDP_COST_BASELINE=$base_obj "$B/tests/bench/xdp_cost" "${XDP_COST_RUNS:-30000}" "$B/bench/xdp_cost.json" || rc=1 ;;
    lb_latency) bash tests/bench/lb_latency.sh "${BENCH_SECONDS:-3}" "${BENCH_ROUNDS:-3}" || rc=1 ;;
    mirror_cost) bash tests/bench/mirror_cost.sh "${BENCH_SECONDS:-3}" "${BENCH_ROUNDS:-3}" || rc=1 ;;
    cache_build) bash tests/bench/cache_build.sh || rc=1 ;;
    cache_serve) bash tests/bench/cache_serve.sh || rc=1 ;;
    dns_drills) bash tests/bench/dns_drills.sh || rc=1 ;;
    health_cost) "$B/tests/bench/health_cost" "${HEALTH_COST_REPEAT:-200000}" "$B/bench/health_cost.json" || rc=1 ;;
    canary_tap) bash tests/bench/canary_tap.sh "${BENCH_SECONDS:-3}" "${BENCH_ROUNDS:-3}" || rc=1 ;;
    canary_rollback) bash tests/bench/canary_rollback.sh "${CANARY_ROUNDS:-10}" || rc=1 ;;
    dns_onset) bash tests/bench/dns_onset.sh || rc=1 ;;
    dns_soak) bash tests/bench/dns_soak.sh || rc=1 ;;
    certs_sync) bash tests/bench/certs_sync.sh "${CERTS_ROTATIONS:-100}" || rc=1 ;;
    fallback_dnssec_cost) "$B/tests/bench/fallback_dnssec_cost" "${FALLBACK_DNSSEC_REPEAT:-20000}" "$B/bench/fallback_dnssec_cost.json" || rc=1 ;;
    *) echo "unknown benchmark $b"; rc=2 ;;
  esac
done
echo
echo "results in $B/bench/: $(cd "$B/bench" && ls *.json 2>/dev/null | tr '\n' ' ')"
exit $rc
