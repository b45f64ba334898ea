#!/usr/bin/env bash
# The DNS failover drills, longer and busier than in `make test`: every drill
# of tests/drills/ with DRILL_FAULT_S (default 30) seconds of fault and a stub
# at DRILL_RATE (default 200) queries/s. Prints one table row per drill and
# writes build/bench/dns_drills.json (the drills' own reports, in a list).
set -u
cd "$(dirname "$0")/../.." || exit 1
B=${EP_BUILD:-build}
export DRILL_FAULT_S=${DRILL_FAULT_S:-30} DRILL_RATE=${DRILL_RATE:-200}
export DRILL_OUT=$B/bench/drills
mkdir -p "$DRILL_OUT"
rc=0
for d in blackhole slow servfail hijack hijack_partial recovery spoofing ttl1 fragments; do
  echo "--- drill $d (${DRILL_FAULT_S}s of fault, ${DRILL_RATE} queries/s)"
  if ! bash "tests/drills/dns_$d.sh" >"$DRILL_OUT/$d.log" 2>&1; then
    echo "    drill $d had failures: $DRILL_OUT/$d.log"
    grep '^not ok' "$DRILL_OUT/$d.log" | sed 's/^/    /'
    rc=1
  fi
done
/usr/bin/python3 - "$DRILL_OUT" "$B/bench/dns_drills.json" <<'PY'
import json, os, sys
out, dest = sys.argv[1], sys.argv[2]
rows = []
steady = []  # faults the node must ride out on the upstream (drill_run_steady)
for d in ("blackhole", "slow", "servfail", "hijack", "hijack_partial", "recovery", "spoofing", "ttl1", "fragments"):
    p = os.path.join(out, d + ".json")
    if os.path.exists(p):
        r = json.load(open(p))
        (steady if "mode_not_upstream" in r else rows).append(r)
def f(v, fmt="%.3f"):
    return "-" if v is None else fmt % v
print("%-10s %9s %9s %9s %8s %10s %7s %7s %6s" % ("drill", "detect_s", "redir_s", "failbk_s", "queries",
      "correct%", "wrong", "forged", "label"))
for r in rows:
    print("%-10s %9s %9s %9s %8d %10s %7d %7d %6s" % (r["drill"], f(r["detection_s"]), f(r["time_to_redirect_s"]),
          f(r["failback_s"]), r["queries"], f(100 * r["correct_share"], "%.3f"), r["wrong"],
          r["forged_after_redirect"], "ok" if r["label_during_failover"] and not r["label_after_failback"] else "BAD"))
print()
print("%-10s %8s %10s %7s %9s %8s %6s  %s" % ("drill", "queries", "correct%", "wrong", "left_up", "changes",
      "label", "what moved"))
for r in steady:
    c = r.get("upstream_counters") or {}
    moved = ", ".join("%s %d" % (k, v) for k, v in c.items() if v and k not in ("queries", "answers"))
    print("%-10s %8d %10s %7d %9d %8d %6s  %s" % (r["drill"], r["queries"], f(100 * r["correct_share"], "%.3f"),
          r["wrong"], r["mode_not_upstream"], r["state_changes"], "set" if r["label_set"] else "no", moved or "-"))
json.dump({"fault_seconds": int(os.environ["DRILL_FAULT_S"]), "rate": float(os.environ["DRILL_RATE"]),
           "drills": rows + steady}, open(dest, "w"), indent=1)
print("wrote", dest)
PY
exit $rc
