#!/usr/bin/env bash
# The real-time counterpart of tests/unit/test_dns_rto.c: SOAK_S (default
# 600) seconds of healthy traffic with a realistic latency spread, and the
# node must never leave the upstream. The upstream's DNS goes through the
# lab's relay, which delays each answer: 1% around 800 ms (lognormal, sigma
# 0.3: outliers, some past the 500 ms ceiling), 15% of the rest around 30 ms
# (sigma 1.0: recursions with a long tail), the others around 2 ms (sigma
# 0.5: cache hits). A stub asks DRILL_RATE (default 60) queries/s. Prints
# the drill's figures and each upstream's srtt/rttvar/timeout at the end;
# writes build/bench/dns_soak.json.
set -u
cd "$(dirname "$0")/../.." || exit 1
B=${EP_BUILD:-build}
export DRILL_FAULT_S=${SOAK_S:-600}
export DRILL_OUT=${DRILL_OUT:-$B/bench/drills}
mkdir -p "$DRILL_OUT" "$B/bench"
source tests/lib/drills.sh

inject() { drill_divert delay 800 0.3 --share 1 --mode delay 30 1.0 --share 15 --mode delay 2 0.5; }
heal() { drill_divert_heal; }
rtt() { drill_status | pyj 'import json,sys
for u in json.load(sys.stdin)["failover"]["upstream_health"]:
    print(json.dumps({"upstream": u["address"]} | u.get("rtt", {})))'; }

drill_setup
echo "# soak: ${DRILL_FAULT_S}s of spread latency at ${DRILL_RATE} queries/s"
mid=$DRILL_OUT/soak.rtt
( sleep $((DRILL_FAULT_S / 2 + 3)); rtt >"$mid" ) &
netns_track_pid $!
drill_run_steady soak inject heal answers
end_rtt=$(rtt)
pyj 'import json, sys
d = json.loads(sys.argv[1])
d["rtt_midway"] = [json.loads(l) for l in open(sys.argv[2]) if l.strip()] if sys.argv[2] else []
d["rtt_end"] = [json.loads(l) for l in sys.argv[3].splitlines() if l.strip()]
d["seconds"] = int(sys.argv[4])
json.dump(d, open(sys.argv[5], "w"), indent=1)
c = d.get("upstream_counters") or {}
print("soak %ds: %d queries, %.3f%% correct, left the upstream %d of %d samples, %d state changes; "
      "timeouts %d, late %d" % (d["seconds"], d["queries"], 100 * d["correct_share"], d["mode_not_upstream"],
      d["mode_samples"], d["state_changes"], c.get("timeouts", -1), c.get("late_answers", -1)))
for r in d["rtt_midway"]:
    print("  midway %s: srtt %s ms, rttvar %s ms, rto %s ms" % (r["upstream"], r.get("srtt_ms"), r.get("rttvar_ms"), r.get("rto_ms")))
print("wrote", sys.argv[5])' "$DRILL_JSON" "$([ -s "$mid" ] && echo "$mid")" "$end_rtt" "$DRILL_FAULT_S" "$B/bench/dns_soak.json"
tap_done
