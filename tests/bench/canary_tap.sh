#!/usr/bin/env bash
# What the canary flow health tap costs end to end: request/response through
# the load balancer in the lab (client -> VIP -> be1..be3, forwarding: stack)
# with
#   no-tap      the tap's TC filters removed from every interface
#   unwatched   the tap attached, the service has no canary (not watched)
#   watched     the service has a canary backend at 0%% share (every flow still
#               goes to the stable backends) and canary.http: true, so the tap
#               tracks every handshake and reads every response's status line
# in interleaved rounds, TCP_RR (persistent) and TCP_CRR (connect per
# transaction), median over rounds. Writes build/bench/canary_tap.json.
#
#   tests/bench/canary_tap.sh [SECONDS_PER_RUN] [ROUNDS]
set -u
cd "$(dirname "$0")/../.."
source tests/lib/netns.sh
source tests/lab/lab.sh
NS_PREFIX=${NS_PREFIX:-eptap$$}
DUR=${1:-${BENCH_SECONDS:-3}}
ROUNDS=${2:-${BENCH_ROUNDS:-3}}
OUT=${EP_BUILD:-build}/bench
mkdir -p "$OUT"
RAW=$(mktemp)

lab_up 4 || exit 1
lab_backends_start 8080 || exit 1

svc_yaml() { # svc_yaml watched|unwatched
  local i
  echo "  - name: web"
  echo "    vip: $LAB_VIP4"
  echo "    port: 80"
  echo "    backends:"
  for i in 1 2 3; do echo "      - {address: $(lab_be4 "$i"), port: 8080}"; done
  if [ "$1" = watched ]; then
    echo "      - {address: $(lab_be4 4), port: 8080, canary: true}"
    echo "    canary: {percent: 0, http: true}"
  fi
}

use() { # use watched|unwatched|no-tap
  local i d
  if [ "$1" = no-tap ]; then
    LAB_SERVICES_YAML=$(svc_yaml unwatched) lab_config_write
    lab_cli reload >/dev/null
    for d in up0 pod1 pod2 pod3 pod4; do
      for i in ingress egress; do ip netns exec "$LAB_NS_NODE" tc filter del dev "$d" "$i" pref 228 2>/dev/null; done
    done
    return
  fi
  LAB_SERVICES_YAML=$(svc_yaml "$1") lab_config_write
  lab_cli reload >/dev/null
}

LAB_SERVICES_YAML=$(svc_yaml watched) lab_config_write
lab_agent_start || exit 1

for ((r = 1; r <= ROUNDS; r++)); do
  for path in no-tap unwatched watched; do
    use "$path"
    sleep 0.3
    for mode in rr crr; do
      out=$(lab_load --target "$LAB_VIP4:80" --mode $mode --conns 1 --duration "$DUR" --warmup 1 2>/dev/null)
      [ -n "$out" ] || out='{"tps":0,"failed":-1,"latency_us":{}}'
      echo "{\"path\":\"$path\",\"mode\":\"$mode\",\"round\":$r,\"result\":$out}" >>"$RAW"
      /usr/bin/python3 -c 'import json,sys
j = json.loads(sys.argv[1]); l = j.get("latency_us") or {}
print("  r%s %-10s %-4s %9.0f tx/s   p50 %7.1f us   p99 %7.1f us   failed %d" % (sys.argv[2], sys.argv[3], sys.argv[4], j.get("tps") or 0, l.get("p50") or 0, l.get("p99") or 0, j.get("failed", -1)))' "$out" "$r" "$path" "$mode"
    done
  done
done

/usr/bin/python3 - "$RAW" "$OUT/canary_tap.json" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
out = {"paths": {}}
print()
print("%-10s %-4s %10s %10s %10s" % ("path", "mode", "tx/s", "p50 us", "p99 us"))
for path in ("no-tap", "unwatched", "watched"):
    for mode in ("rr", "crr"):
        rs = [r["result"] for r in rows if r["path"] == path and r["mode"] == mode]
        med = lambda k: statistics.median([(x.get("latency_us") or {}).get(k) or 0 for x in rs])
        d = {"tps": statistics.median([x.get("tps") or 0 for x in rs]), "p50_us": med("p50"), "p99_us": med("p99"), "rounds": len(rs)}
        out["paths"].setdefault(path, {})[mode] = d
        print("%-10s %-4s %10.0f %10.1f %10.1f" % (path, mode, d["tps"], d["p50_us"], d["p99_us"]))
json.dump(out, open(sys.argv[2], "w"), indent=1)
PY
rm -f "$RAW"
