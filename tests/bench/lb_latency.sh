#!/usr/bin/env bash
# End-to-end request/response benchmark in the lab, every path measured in
# one run on the same hosts (ratios matter, absolute numbers depend on the
# machine):
#   direct              client -> node (routing) -> be1, no XDP anywhere
#   direct+xdp-napi     same, with a trivial XDP program on the node's uplink
#                       (the cost of putting the veth into XDP/NAPI mode)
#   edgeplane           client -> VIP, XDP DNAT (forwarding: stack) + TC rnat
#   edgeplane-redirect  forwarding: redirect (XDP_REDIRECT to the pod veth;
#                       needs GRO on the pod side, enabled here for the run)
#   nftables-dnat       DNAT with numgen random, as kube-proxy's nftables mode
#   haproxy-1-sidecar   client -> local HAProxy -> be1 (client-side sidecar)
#   haproxy-2-sidecars  client -> HAProxy -> HAProxy next to be1 -> be1
# For each: TCP_RR-style (persistent connection) and TCP_CRR-style
# (connect, request, close) with one transaction in flight; p50/p99 latency
# and transactions/s. Writes build/bench/lb_latency.json.
#
#   tests/bench/lb_latency.sh [SECONDS_PER_RUN]
set -u
cd "$(dirname "$0")/../.."
source tests/lib/netns.sh
source tests/lab/lab.sh
NS_PREFIX=${NS_PREFIX:-epbench}

DUR=${1:-${BENCH_SECONDS:-5}}
OUT=${EP_BUILD:-build}/bench
mkdir -p "$OUT"
JSON=$OUT/lb_latency.json
NFT_VIP=10.77.100.50

py() { /usr/bin/python3 -c "$@"; }
results=()

measure() { # measure NAME TARGET [ns-for-client]
  local name=$1 target=$2 mode out
  for mode in rr crr; do
    out=$(lab_load --target "$target" --mode $mode --conns 1 --duration "$DUR" --warmup 1 2>/dev/null)
    results+=("{\"path\":\"$name\",\"mode\":\"$mode\",\"result\":$out}")
    py 'import json,sys
j = json.loads(sys.argv[1]); l = j["latency_us"]
print("  %-20s %-4s %9.0f tx/s   p50 %7.1f us   p99 %7.1f us   failed %d" % (sys.argv[2], sys.argv[3], j["tps"], l["p50"], l["p99"], j["failed"]))' "$out" "$name" "$mode"
  done
}

echo "lab: client, node, 3 backends; ${DUR}s per run (+1s warmup)"
lab_up 3 || exit 1
lab_backends_start 8080 || exit 1
BE1=$(lab_be4 1)

measure direct "$BE1:8080"

# XDP/NAPI mode cost alone: a program that only returns XDP_PASS.
cat >"$LAB_DIR/pass.bpf.c" <<'EOF'
#include <linux/bpf.h>
__attribute__((section("xdp"), used)) int xdp_pass(struct xdp_md *ctx) { return XDP_PASS; }
char _license[] __attribute__((section("license"), used)) = "GPL";
EOF
clang -O2 -target bpf -I/usr/include/$(uname -m)-linux-gnu -c "$LAB_DIR/pass.bpf.c" -o "$LAB_DIR/pass.o" || exit 1
ip -n "$LAB_NS_NODE" link set dev up0 xdpdrv obj "$LAB_DIR/pass.o" sec xdp || exit 1
measure direct+xdp-napi "$BE1:8080"
ip -n "$LAB_NS_NODE" link set dev up0 xdpdrv off

lab_config_write
lab_agent_start || exit 1
measure edgeplane "$LAB_VIP4:80"

# Redirect mode: XDP_REDIRECT into a veth needs its peer in NAPI mode; GRO
# on the pod side does that (a pod's side is not ours to set in production).
for ((i = 1; i <= LAB_N; i++)); do ip netns exec "${LAB_NS_BE[$i]}" ethtool -K eth0 gro on >/dev/null; done
LAB_FORWARDING=redirect lab_config_write
lab_agent_signal HUP; sleep 1
measure edgeplane-redirect "$LAB_VIP4:80"
for ((i = 1; i <= LAB_N; i++)); do ip netns exec "${LAB_NS_BE[$i]}" ethtool -K eth0 gro off >/dev/null; done
lab_config_write
lab_agent_signal HUP; sleep 1

# kube-proxy nftables mode: service map -> numgen random -> endpoint DNAT.
ip netns exec "$LAB_NS_NODE" nft -f - <<EOF
table ip kube-proxy-bench {
  map service-ips {
    type ipv4_addr . inet_proto . inet_service : verdict
  }
  chain endpoint-1 {
    meta l4proto tcp dnat to $(lab_be4 1):8080
  }
  chain endpoint-2 {
    meta l4proto tcp dnat to $(lab_be4 2):8080
  }
  chain endpoint-3 {
    meta l4proto tcp dnat to $(lab_be4 3):8080
  }
  chain svc-web {
    numgen random mod 3 vmap { 0 : goto endpoint-1, 1 : goto endpoint-2, 2 : goto endpoint-3 }
  }
  chain services {
    ip daddr . meta l4proto . th dport vmap @service-ips
  }
  chain nat-prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    jump services
  }
  chain filter-forward {
    type filter hook forward priority filter; policy accept;
    ct state established,related accept
  }
}
add element ip kube-proxy-bench service-ips { $NFT_VIP . tcp . 80 : goto svc-web }
EOF
measure nftables-dnat "$NFT_VIP:80"
ip netns exec "$LAB_NS_NODE" nft delete table ip kube-proxy-bench

# HAProxy sidecars (TCP mode, as a mesh's L4 hop).
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
hacfg "$LAB_DIR/ha-client.cfg" 127.0.0.1:15001 "$BE1:8080"
netns_bg_log "$LAB_DIR/ha-client.log" "$LAB_NS_CLIENT" haproxy -db -f "$LAB_DIR/ha-client.cfg" >/dev/null
wait_for 5 ip netns exec "$LAB_NS_CLIENT" bash -c "echo >/dev/tcp/127.0.0.1/15001"
measure haproxy-1-sidecar 127.0.0.1:15001

hacfg "$LAB_DIR/ha-server.cfg" "$BE1:15002" 127.0.0.1:8080
netns_bg_log "$LAB_DIR/ha-server.log" "${LAB_NS_BE[1]}" haproxy -db -f "$LAB_DIR/ha-server.cfg" >/dev/null
hacfg "$LAB_DIR/ha-client2.cfg" 127.0.0.1:15003 "$BE1:15002"
netns_bg_log "$LAB_DIR/ha-client2.log" "$LAB_NS_CLIENT" haproxy -db -f "$LAB_DIR/ha-client2.cfg" >/dev/null
wait_for 5 ip netns exec "$LAB_NS_CLIENT" bash -c "echo >/dev/tcp/127.0.0.1/15003"
measure haproxy-2-sidecars 127.0.0.1:15003

(IFS=,; echo "{\"benchmark\":\"lb_latency\",\"seconds_per_run\":$DUR,\"runs\":[${results[*]}]}") >"$JSON"

py '
import json, sys
j = json.load(open(sys.argv[1]))
r = {(x["path"], x["mode"]): x["result"] for x in j["runs"]}
def p50(p, m): return r[(p, m)]["latency_us"]["p50"]
def tps(p, m): return r[(p, m)]["tps"]
print()
print("%-20s %-4s %10s %10s %12s %14s" % ("path", "mode", "p50 us", "+us vs direct", "tps", "tps / direct"))
for (p, m) in r:
    print("%-20s %-4s %10.1f %10.1f %12.0f %14.2f" % (p, m, p50(p, m), p50(p, m) - p50("direct", m), tps(p, m), tps(p, m) / tps("direct", m)))
summary = {}
for m in ("rr", "crr"):
    two = p50("haproxy-2-sidecars", m) - p50("direct", m)
    for p in ("edgeplane", "edgeplane-redirect", "nftables-dnat"):
        add = p50(p, m) - p50("direct", m)
        summary["%s_%s_added_us" % (p, m)] = round(add, 2)
        summary["%s_%s_share_of_two_sidecar_cost" % (p, m)] = round(add / two, 4) if two > 0 else None
        summary["%s_%s_tps_ratio" % (p, m)] = round(tps(p, m) / tps("direct", m), 4)
    summary["two_sidecars_%s_added_us" % m] = round(two, 2)
    summary["two_sidecars_%s_tps_ratio" % m] = round(tps("haproxy-2-sidecars", m) / tps("direct", m), 4)
j["summary"] = summary
json.dump(j, open(sys.argv[1], "w"), indent=1)
print()
for m in ("rr", "crr"):
    print("%s: edgeplane adds %.1f us (nftables %.1f us, two sidecars %.1f us) = %.1f%% of the two-sidecar cost; keeps %.0f%% of direct tx/s" % (
        m.upper(), summary["edgeplane_%s_added_us" % m], summary["nftables-dnat_%s_added_us" % m],
        summary["two_sidecars_%s_added_us" % m], 100 * (summary["edgeplane_%s_share_of_two_sidecar_cost" % m] or 0),
        100 * summary["edgeplane_%s_tps_ratio" % m]))
print("results: " + sys.argv[1])
' "$JSON"
