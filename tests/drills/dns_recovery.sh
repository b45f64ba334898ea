#!/usr/bin/env bash
# Drill (f): recovery. After a blackhole failover the upstream comes back,
# flaps (healthy for less than dns.failover.failback_after_s, then broken
# again), and finally heals for good. The node must stay on the cache through
# the flap (hysteresis: only failback_after_s of clean probes fail back),
# fail back once, after the final heal, and remove its label.
set -u
cd "$(dirname "$0")/../.." || exit 1
source tests/lib/drills.sh

FLAP_UP_S=${FLAP_UP_S:-1.5}
inject() { dns_upstream_blackhole "$LAB_NS_DNS"; }
heal() {
  dns_upstream_heal "$LAB_NS_DNS"
  sleep "$FLAP_UP_S"
  FLAP_MODE=$(drill_mode)
  dns_upstream_blackhole "$LAB_NS_DNS"
  sleep 2
  T_FINAL_HEAL=$(date +%s.%N)
  dns_upstream_heal "$LAB_NS_DNS"
}

drill_setup
T_START=$(date +%s.%N)
drill_run recovery inject heal timeouts
failbacks=$(pyj '
import sys, datetime
t0, n = float(sys.argv[1]), 0
for line in open(sys.argv[2]):
    if "queries go to the upstreams again" not in line:
        continue
    t = datetime.datetime.strptime(line.split()[0], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc).timestamp()
    n += t >= t0
print(n)' "$T_START" "$LAB_LOG")
t_back=$(drill_log_time "$T_FINAL_HEAL" 'queries go to the upstreams again')
since_heal=$(pyj 'import sys; print(round(float(sys.argv[1]) - float(sys.argv[2]), 3) if sys.argv[1] else "none")' \
  "${t_back:-}" "$T_FINAL_HEAL")
diag "recovery: mode during the flap: ${FLAP_MODE:-?}; failbacks: $failbacks; failback $since_heal s after the final heal (failback_after_s $DRILL_FAILBACK_S)"
pyj 'import json,sys
d = json.load(open(sys.argv[1]))
d.update({"mode_during_flap": sys.argv[2], "failbacks": int(sys.argv[3]),
          "failback_after_final_heal_s": None if sys.argv[4] == "none" else float(sys.argv[4])})
json.dump(d, open(sys.argv[1], "w"), indent=1)' "$DRILL_OUT/recovery.json" "${FLAP_MODE:-?}" "$failbacks" "$since_heal"
check "recovery: stayed on the cache while the upstream flapped (${FLAP_UP_S}s up < failback_after_s)" \
  [ "${FLAP_MODE:-}" = cache ]
check "recovery: failed back exactly once ($failbacks)" [ "$failbacks" = 1 ]
check "recovery: failback came after failback_after_s of health ($since_heal s >= $DRILL_FAILBACK_S s)" \
  pyj 'import sys; sys.exit(0 if sys.argv[1] != "none" and float(sys.argv[1]) >= float(sys.argv[2]) else 1)' \
  "$since_heal" "$DRILL_FAILBACK_S"
tap_done
