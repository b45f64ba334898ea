#!/usr/bin/env bash
# Onset -> rollback as a distribution: the canary drills (tests/drills/canary.sh,
# same lab, load and rule) repeated ROUNDS times per fault - refuse, silent SYN
# drop, HTTP 500 - each time healed and set back to 10% by the operator.
# Prints median / p95 / max per fault and over all, with the connections that
# failed per run, and writes build/bench/canary_rollback.json.
#
#   tests/bench/canary_rollback.sh [ROUNDS]     (default 5; CANARY_RATE, CANARY_HOLD)
set -u
cd "$(dirname "$0")/../.."
NS_PREFIX=${NS_PREFIX:-epcbench$$}
ROUNDS=${1:-${BENCH_ROUNDS:-5}}
OUT=${EP_BUILD:-build}/bench
mkdir -p "$OUT"
export CANARY_OUT=$OUT/canary_runs
source tests/lib/canary_drills.sh
RAW=$(mktemp)

# The drill helpers report through TAP; a benchmark only prints numbers.
check() { shift; "$@" >/dev/null 2>&1 || echo "  (setup step failed: $*)" >&2; }
diag() { :; }
canary_setup

inj_refuse() { fault_refuse 4; }
inj_drop() { fault_drop 4; }
heal4() { fault_heal 4; }
for ((r = 1; r <= ROUNDS; r++)); do
  for f in refuse drop http500; do
    case $f in
      refuse) svc=web inj=inj_refuse ;;
      drop) svc=web inj=inj_drop ;;
      http500) svc=webh inj=fault_http500 ;;
    esac
    lab_cli canary set "$svc" 10 >/dev/null
    sleep 0.3
    CANARY_WAIT_S=3 canary_run "$f-$r" "$svc" "$inj" heal4
    echo "{\"fault\":\"$f\",\"round\":$r,\"result\":$CANARY_JSON}" >>"$RAW"
    /usr/bin/python3 -c 'import json,sys; d=json.loads(sys.argv[1])
print("  r%s %-8s rolled back %-5s onset->rollback %7s ms  failed %s of %s connections" % (sys.argv[2], sys.argv[3], d["rolled_back"], d["onset_to_rollback_ms"], d["failed"], d["connections"]))' "$CANARY_JSON" "$r" "$f"
  done
done

/usr/bin/python3 - "$RAW" "$OUT/canary_rollback.json" "$ROUNDS" "$CANARY_RATE" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def pctl(v, p):
    v = sorted(v)
    if not v:
        return None
    k = max(0, min(len(v) - 1, int(round(p / 100.0 * len(v) + 0.5)) - 1))
    return v[k]
out = {"rounds": int(sys.argv[3]), "rate_new_conns_per_s": int(sys.argv[4]),
       "rule": {"window_ms": 50, "min_samples": 4, "max_failure_ratio": 0.2, "margin": 0.1},
       "faults": {}, "runs": rows}
print()
print("%-8s %5s %8s %8s %8s %8s   %s" % ("fault", "runs", "rolled", "median", "p95", "max", "failed conns (median)"))
allv = []
for f in ("refuse", "drop", "http500", "all"):
    rs = [r["result"] for r in rows if f == "all" or r["fault"] == f]
    v = [r["onset_to_rollback_ms"] for r in rs if r["rolled_back"]]
    fails = [r["failed"] or 0 for r in rs]
    d = {"runs": len(rs), "rolled_back": len(v), "median_ms": pctl(v, 50), "p95_ms": pctl(v, 95),
         "max_ms": max(v) if v else None, "failed_conns_median": pctl(fails, 50)}
    out["faults"][f] = d
    print("%-8s %5d %8d %8s %8s %8s   %s" % (f, d["runs"], d["rolled_back"], d["median_ms"], d["p95_ms"], d["max_ms"], d["failed_conns_median"]))
json.dump(out, open(sys.argv[2], "w"), indent=1)
PY
rm -f "$RAW"
