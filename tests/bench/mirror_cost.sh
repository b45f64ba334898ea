#!/usr/bin/env bash
# What mirroring costs production traffic: request/response latency through
# the VIP in the lab, in interleaved rounds (a noisy neighbour hits every
# path alike), median over rounds:
#   no-mirror       no service mirrored: the TC program is not attached
#   mirror-0pct     mirrored at 0%: attached, every packet looked up, none cloned
#   mirror-iface    100% of flows cloned to a local veth (collector namespace)
#   mirror-vxlan    100% of flows cloned to the agent's VXLAN device
#                   (encapsulated, routed to a collector namespace)
# Modes: TCP_RR-style (persistent connection) and TCP_CRR-style (connect,
# request, reply, close), one transaction in flight.
#
#   tests/bench/mirror_cost.sh [SECONDS_PER_RUN] [ROUNDS]
# Writes build/bench/mirror_cost.json.
set -u
cd "$(dirname "$0")/../.."
source tests/lib/netns.sh
source tests/lab/lab.sh
NS_PREFIX=${NS_PREFIX:-epbench$$}

DUR=${1:-${BENCH_SECONDS:-3}}
ROUNDS=${2:-${BENCH_ROUNDS:-3}}
OUT=${EP_BUILD:-build}/bench
mkdir -p "$OUT"
JSON=$OUT/mirror_cost.json
RAW=$(mktemp)

py() { /usr/bin/python3 -c "$@"; }

measure() { # measure PATH ROUND
  local mode out
  for mode in rr crr; do
    out=$(lab_load --target "$LAB_VIP4:80" --mode $mode --conns 1 --duration "$DUR" --warmup 1 2>/dev/null)
    [ -n "$out" ] || out='{"tps":0,"failed":-1,"latency_us":{}}'
    echo "{\"path\":\"$1\",\"mode\":\"$mode\",\"round\":$2,\"result\":$out}" >>"$RAW"
    py 'import json,sys
j = json.loads(sys.argv[1]); l = j.get("latency_us") or {}
f = lambda v: "%7.1f" % v if isinstance(v, (int, float)) else "      -"
print("  r%s %-14s %-4s %9.0f tx/s   p50 %s us   p99 %s us   failed %d" % (sys.argv[4], sys.argv[2], sys.argv[3], j.get("tps") or 0, f(l.get("p50")), f(l.get("p99")), j.get("failed", -1)))' "$out" "$1" "$mode" "$2"
  done
}

config_for() { # config_for none|0|iface|vxlan
  local m=""
  case $1 in
    0) m="{percent: 0, to: {interface: mirror0}, max_bytes_per_s: 4000000000}" ;;
    iface) m="{percent: 100, to: {interface: mirror0}, max_bytes_per_s: 4000000000}" ;;
    vxlan) m="{percent: 100, to: {vxlan: {remote: 10.77.200.2, vni: 100}}, max_bytes_per_s: 4000000000}" ;;
  esac
  LAB_SERVICES_YAML="  - name: web
    vip: $LAB_VIP4
    port: 80
    backends:
      - {address: $(lab_be4 1), port: 8080}${m:+
    mirror: $m}"
  lab_config_write
}

echo "lab: client, node, 1 backend, 2 collector namespaces; ${DUR}s per run (+1s warmup), $ROUNDS interleaved rounds"
lab_up 1 || exit 1
lab_backends_start 8080 || exit 1
NS_COL=$(netns_add col) || exit 1
netns_veth "$LAB_NS_NODE" mirror0 "$NS_COL" eth0 || exit 1
NS_VX=$(netns_add vx) || exit 1
netns_veth "$LAB_NS_NODE" col1 "$NS_VX" eth0 || exit 1
ip -n "$LAB_NS_NODE" addr add 10.77.200.1/24 dev col1
ip -n "$NS_VX" addr add 10.77.200.2/24 dev eth0
ip netns exec "$LAB_NS_NODE" ping -c1 -W2 10.77.200.2 >/dev/null 2>&1

config_for none
lab_agent_start || exit 1
for ((r = 1; r <= ROUNDS; r++)); do
  for p in none 0 iface vxlan; do
    config_for $p
    lab_cli reload >/dev/null || exit 1
    case $p in none) name=no-mirror ;; 0) name=mirror-0pct ;; *) name=mirror-$p ;; esac
    measure "$name" $r
  done
done
metrics=$(lab_metrics | grep '^edgeplane_mirror_.*service="web"' | tr '\n' ';')
lab_agent_stop

py '
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
paths = []
for x in runs:
    if x["path"] not in paths: paths.append(x["path"])
def med(path, mode, f):
    vals = [f(x["result"]) for x in runs if x["path"] == path and x["mode"] == mode]
    vals = [v for v in vals if isinstance(v, (int, float))]
    return statistics.median(vals) if vals else None
table = {}
for p in paths:
    for m in ("rr", "crr"):
        table["%s/%s" % (p, m)] = {
            "p50_us": med(p, m, lambda r: (r.get("latency_us") or {}).get("p50")),
            "p99_us": med(p, m, lambda r: (r.get("latency_us") or {}).get("p99")),
            "tps": med(p, m, lambda r: r.get("tps")),
            "failed": sum(x["result"].get("failed", 0) for x in runs if x["path"] == p and x["mode"] == m),
        }
for m in ("rr", "crr"):
    base = table["no-mirror/%s" % m]
    for p in paths:
        t = table["%s/%s" % (p, m)]
        t["added_p50_us"] = round(t["p50_us"] - base["p50_us"], 2) if t["p50_us"] is not None and base["p50_us"] is not None else None
        t["tps_ratio"] = round(t["tps"] / base["tps"], 3) if t["tps"] and base["tps"] else None
out = {"benchmark": "mirror_cost", "seconds_per_run": float(sys.argv[3]), "rounds": int(sys.argv[4]),
       "median_over_rounds": table, "metrics_at_end": sys.argv[5], "runs": runs}
json.dump(out, open(sys.argv[2], "w"), indent=1)
print()
print("median over %s rounds of %ss:" % (sys.argv[4], sys.argv[3]))
print("%-14s %-4s %9s %9s %9s %10s %9s %7s" % ("path", "mode", "p50 us", "p99 us", "+p50 us", "tx/s", "tx/s/no", "failed"))
for m in ("rr", "crr"):
    for p in paths:
        t = table["%s/%s" % (p, m)]
        f = lambda v, fmt: (fmt % v) if v is not None else "-"
        print("%-14s %-4s %9s %9s %9s %10s %9s %7d" % (p, m, f(t["p50_us"], "%.1f"), f(t["p99_us"], "%.1f"), f(t["added_p50_us"], "%+.1f"),
              f(t["tps"], "%.0f"), f(t["tps_ratio"], "%.3f"), t["failed"]))
print("mirror counters at the end: " + sys.argv[5])
print("results: " + sys.argv[2])
' "$RAW" "$JSON" "$DUR" "$ROUNDS" "$metrics"
rm -f "$RAW"
