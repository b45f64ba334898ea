#!/usr/bin/env bash
# End-to-end request/response benchmark in the lab. Every path is measured in
# the same run on the same hosts, in interleaved rounds (so a noisy neighbour
# hits every path alike), and reported as the median over rounds:
#   direct              client -> node (kernel routing) -> be1, no XDP anywhere
#   direct+xdp-napi     the same with a trivial XDP program on the node's uplink:
#                       the cost of putting the veth into XDP/NAPI mode
#   edgeplane           client -> VIP: XDP DNAT (forwarding: stack) + TC reverse NAT
#   edgeplane-redirect  forwarding: redirect (XDP_REDIRECT to the pod veth; needs
#                       GRO on the pod side, enabled only for this path)
#   nftables-dnat       DNAT with numgen random, as kube-proxy's nftables mode
#   haproxy-1-sidecar   client -> local HAProxy (TCP mode) -> be1
#   haproxy-2-sidecars  client -> HAProxy -> HAProxy next to be1 -> be1
# Modes: TCP_RR-style (persistent connection) and TCP_CRR-style (connect,
# request, reply, close), one transaction in flight.
#
#   tests/bench/lb_latency.sh [SECONDS_PER_RUN] [ROUNDS]
# Writes build/bench/lb_latency.json.
set -u
cd "$(dirname "$0")/../.."
source tests/lib/netns.sh
source tests/lab/lab.sh
NS_PREFIX=${NS_PREFIX:-epbench$$}

DUR=${1:-${BENCH_SECONDS:-3}}
ROUNDS=${2:-${BENCH_ROUNDS:-3}}
OUT=${EP_BUILD:-build}/bench
mkdir -p "$OUT"
JSON=$OUT/lb_latency.json
RAW=$(mktemp)
NFT_VIP=10.77.100.50

py() { /usr/bin/python3 -c "$@"; }

measure() { # measure PATH TARGET ROUND
  local mode out
  for mode in rr crr; do
    out=$(lab_load --target "$2" --mode $mode --conns 1 --duration "$DUR" --warmup 1 2>/dev/null)
    [ -n "$out" ] || out='{"tps":0,"failed":-1,"latency_us":{}}'
    echo "{\"path\":\"$1\",\"mode\":\"$mode\",\"round\":$3,\"result\":$out}" >>"$RAW"
    py 'import json,sys
j = json.loads(sys.argv[1]); l = j.get("latency_us") or {}
f = lambda v: "%7.1f" % v if isinstance(v, (int, float)) else "      -"
print("  r%s %-20s %-4s %9.0f tx/s   p50 %s us   p99 %s us   failed %d" % (sys.argv[4], sys.argv[2], sys.argv[3], j.get("tps") or 0, f(l.get("p50")), f(l.get("p99")), j.get("failed", -1)))' "$out" "$1" "$mode" "$3"
  done
}

hacfg() { # hacfg FILE LISTEN SERVER
  cat >"$1" <<EOF
global
  maxconn 4000
defaults
  mode tcp
  timeout connect 5s
  timeout client 30s
  timeout server 30s
listen sidecar
  bind $2
  server upstream $3
EOF
}

echo "lab: client, node, 3 backends; ${DUR}s per run (+1s warmup), $ROUNDS interleaved rounds"
lab_up 3 || exit 1
lab_backends_start 8080 || exit 1
BE1=$(lab_be4 1)

# Trivial XDP program for the NAPI-cost path.
cat >"$LAB_DIR/pass.bpf.c" <<'EOF'
#include <linux/bpf.h>
__attribute__((section("xdp"), used)) int xdp_pass(struct xdp_md *ctx) { return XDP_PASS; }
char _license[] __attribute__((section("license"), used)) = "GPL";
EOF
clang -O2 -target bpf -I/usr/include/"$(uname -m)"-linux-gnu -c "$LAB_DIR/pass.bpf.c" -o "$LAB_DIR/pass.o" || exit 1

# kube-proxy nftables mode: service map -> numgen random -> endpoint DNAT.
NFT_RULES="table ip kube-proxy-bench {
  map service-ips { type ipv4_addr . inet_proto . inet_service : verdict; }
  chain endpoint-1 { meta l4proto tcp dnat to $(lab_be4 1):8080; }
  chain endpoint-2 { meta l4proto tcp dnat to $(lab_be4 2):8080; }
  chain endpoint-3 { meta l4proto tcp dnat to $(lab_be4 3):8080; }
  chain svc-web { numgen random mod 3 vmap { 0 : goto endpoint-1, 1 : goto endpoint-2, 2 : goto endpoint-3 }; }
  chain services { ip daddr . meta l4proto . th dport vmap @service-ips; }
  chain nat-prerouting { type nat hook prerouting priority dstnat; policy accept; jump services; }
  chain filter-forward { type filter hook forward priority filter; policy accept; ct state established,related accept; }
}
add element ip kube-proxy-bench service-ips { $NFT_VIP . tcp . 80 : goto svc-web }"
# Loaded only around its own measurement: a nat table turns on netfilter
# conntrack for every forwarded packet, which would tax the other paths.
nft_on() { ip netns exec "$LAB_NS_NODE" nft -f - <<<"$NFT_RULES" || { echo "nftables setup failed" >&2; exit 1; }; }
nft_off() { ip netns exec "$LAB_NS_NODE" nft delete table ip kube-proxy-bench; }

hacfg "$LAB_DIR/ha-client.cfg" 127.0.0.1:15001 "$BE1:8080"
hacfg "$LAB_DIR/ha-server.cfg" "$BE1:15002" 127.0.0.1:8080
hacfg "$LAB_DIR/ha-client2.cfg" 127.0.0.1:15003 "$BE1:15002"
netns_bg_log "$LAB_DIR/ha-client.log" "$LAB_NS_CLIENT" haproxy -db -f "$LAB_DIR/ha-client.cfg" >/dev/null
netns_bg_log "$LAB_DIR/ha-server.log" "${LAB_NS_BE[1]}" haproxy -db -f "$LAB_DIR/ha-server.cfg" >/dev/null
netns_bg_log "$LAB_DIR/ha-client2.log" "$LAB_NS_CLIENT" haproxy -db -f "$LAB_DIR/ha-client2.cfg" >/dev/null
for p in 15001 15003; do
  wait_for 5 ip netns exec "$LAB_NS_CLIENT" bash -c "echo >/dev/tcp/127.0.0.1/$p" || { echo "haproxy did not start" >&2; exit 1; }
done

lab_config_write
LAB_AGENT_ARGS=--detach-on-exit  # between rounds the uplink must be XDP-free for "direct"
for ((r = 1; r <= ROUNDS; r++)); do
  # Nothing attached: the kernel-only paths.
  measure direct "$BE1:8080" $r
  nft_on
  measure nftables-dnat "$NFT_VIP:80" $r
  nft_off
  measure haproxy-1-sidecar 127.0.0.1:15001 $r
  measure haproxy-2-sidecars 127.0.0.1:15003 $r
  ip -n "$LAB_NS_NODE" link set dev up0 xdpdrv obj "$LAB_DIR/pass.o" sec xdp || exit 1
  measure direct+xdp-napi "$BE1:8080" $r
  ip -n "$LAB_NS_NODE" link set dev up0 xdpdrv off
  LAB_FORWARDING=stack lab_config_write
  lab_agent_start || exit 1
  measure edgeplane "$LAB_VIP4:80" $r
  for ((i = 1; i <= LAB_N; i++)); do ip netns exec "${LAB_NS_BE[$i]}" ethtool -K eth0 gro on >/dev/null; done
  LAB_FORWARDING=redirect lab_config_write
  lab_agent_signal HUP; sleep 1
  measure edgeplane-redirect "$LAB_VIP4:80" $r
  for ((i = 1; i <= LAB_N; i++)); do ip netns exec "${LAB_NS_BE[$i]}" ethtool -K eth0 gro off >/dev/null; done
  lab_agent_stop
done

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
summary = {}
for m in ("rr", "crr"):
    d = table["direct/%s" % m]
    two = table["haproxy-2-sidecars/%s" % m]["p50_us"] - d["p50_us"]
    summary["two_sidecars_%s_added_us" % m] = round(two, 2)
    for p in paths:
        t = table["%s/%s" % (p, m)]
        t["added_p50_us"] = round(t["p50_us"] - d["p50_us"], 2) if t["p50_us"] is not None else None
        t["tps_ratio"] = round(t["tps"] / d["tps"], 3) if t["tps"] else None
        t["share_of_two_sidecar_cost"] = round(t["added_p50_us"] / two, 3) if t["added_p50_us"] is not None and two > 0 else None
out = {"benchmark": "lb_latency", "seconds_per_run": float(sys.argv[3]), "rounds": int(sys.argv[4]),
       "median_over_rounds": table, "summary": summary, "runs": runs}
json.dump(out, open(sys.argv[2], "w"), indent=1)
print()
print("median over %s rounds of %ss:" % (sys.argv[4], sys.argv[3]))
print("%-20s %-4s %9s %9s %11s %10s %9s %12s" % ("path", "mode", "p50 us", "p99 us", "+p50 us", "tx/s", "tx/s/dir", "of 2-sidecar"))
for m in ("rr", "crr"):
    for p in paths:
        t = table["%s/%s" % (p, m)]
        f = lambda v, fmt: (fmt % v) if v is not None else "-"
        print("%-20s %-4s %9s %9s %11s %10s %9s %12s" % (p, m, f(t["p50_us"], "%.1f"), f(t["p99_us"], "%.1f"), f(t["added_p50_us"], "%+.1f"),
              f(t["tps"], "%.0f"), f(t["tps_ratio"], "%.2f"), f(t["share_of_two_sidecar_cost"], "%.1f%%" if False else "%.3f")))
print("results: " + sys.argv[2])
' "$RAW" "$JSON" "$DUR" "$ROUNDS"
rm -f "$RAW"
