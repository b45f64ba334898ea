#!/usr/bin/env bash
# Onset -> redirect distributions: the failover drills of tests/drills/
# (blackhole, slow, servfail, full and 30% hijack) repeated ONSET_REPS
# (default 5) times each, short (DRILL_FAULT_S 2 s of fault, failback after
# 1 s), at DRILL_RATE (default 60) queries/s. Prints median, p95 and max of
# the fault-to-redirect time (the agent's log line) per drill, with the goal
# of docs/dns-failover.md next to it, and writes build/bench/dns_onset.json.
#   ONSET_DRILLS="blackhole slow" ONSET_REPS=10 tests/bench/dns_onset.sh
set -u
cd "$(dirname "$0")/../.." || exit 1
B=${EP_BUILD:-build}
export DRILL_FAULT_S=${DRILL_FAULT_S:-2} DRILL_FAILBACK_S=${DRILL_FAILBACK_S:-1} DRILL_RATE=${DRILL_RATE:-60}
reps=${ONSET_REPS:-5}
drills=${ONSET_DRILLS:-blackhole slow servfail hijack hijack_partial}
out=$B/bench/onset
mkdir -p "$out"
rc=0
for d in $drills; do
  for ((i = 1; i <= reps; i++)); do
    DRILL_OUT=$out/$d.$i bash "tests/drills/dns_$d.sh" >"$out/$d.$i.log" 2>&1 || {
      echo "    $d #$i had failures: $out/$d.$i.log"
      grep '^not ok' "$out/$d.$i.log" | sed 's/^/      /'
      rc=1
    }
    echo "--- $d #$i: $(/usr/bin/python3 -c 'import json,sys
try: print("%.3f s" % json.load(open(sys.argv[1]))["time_to_redirect_s"])
except Exception: print("no redirect")' "$out/$d.$i/$d.json")"
  done
done
/usr/bin/python3 - "$out" "$B/bench/dns_onset.json" "$reps" $drills <<'PY'
import json, os, sys
out, dest, reps, drills = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
goal = {"blackhole": 0.5, "slow": 0.5, "hijack_partial": 1.0}
def q(v, p):
    v = sorted(v)
    if not v: return None
    k = (len(v) - 1) * p
    f = int(k); c = min(f + 1, len(v) - 1)
    return v[f] + (v[c] - v[f]) * (k - f)
res = {}
print("%-15s %5s %8s %8s %8s %8s %6s" % ("drill", "runs", "median_s", "p95_s", "max_s", "goal_s", "missed"))
for d in drills:
    t = []
    for i in range(1, reps + 1):
        try:
            v = json.load(open(os.path.join(out, "%s.%d" % (d, i), d + ".json")))["time_to_redirect_s"]
        except (OSError, ValueError, KeyError):
            v = None
        t.append(v)
    ok = [x for x in t if x is not None]
    g = goal.get(d)
    res[d] = {"onset_to_redirect_s": t, "median_s": q(ok, 0.5), "p95_s": q(ok, 0.95),
              "max_s": max(ok) if ok else None, "goal_s": g, "no_redirect": len(t) - len(ok)}
    f = lambda x: "-" if x is None else "%.3f" % x
    print("%-15s %5d %8s %8s %8s %8s %6s" % (d, len(ok), f(res[d]["median_s"]), f(res[d]["p95_s"]),
          f(res[d]["max_s"]), f(g), "-" if g is None else sum(1 for x in ok if x > g) + res[d]["no_redirect"]))
json.dump({"reps": reps, "fault_seconds": int(os.environ["DRILL_FAULT_S"]), "rate": float(os.environ["DRILL_RATE"]),
           "drills": res}, open(dest, "w"), indent=1)
print("wrote", dest)
PY
exit $rc
