#!/usr/bin/env bash
# make demo: the lab with the agent, real traffic, the spread over backends and
# live counters, drills (kill -9 of the agent under load, a backend drain), then
# DNS: the local cache, a hijack of the upstream resolver and the failover to
# the cache with the node label on the Kubernetes test API server. Tears
# everything down on exit, also on Ctrl-C.
set -u
cd "$(dirname "$0")/../.."
NS_PREFIX=${NS_PREFIX:-epdemo}
source tests/lib/tap.sh
source tests/lib/netns.sh
source tests/lab/lab.sh
source tests/lib/drills.sh

bold() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '\033[2m$ %s\033[0m\n' "$*"; "$@"; }
py() { /usr/bin/python3 -c "$@"; }

summary() { # ep_load JSON -> one line
  py 'import json,sys
j = json.loads(sys.argv[1]); b = j["backends"]; t = sum(b.values()) or 1
spread = "  ".join("%s %d (%.0f%%)" % (k, b[k], 100.0 * b[k] / t) for k in sorted(b))
lat = j.get("latency_us", {})
print("%5d ok, %d failed in %.2fs   %s   p50 %.0fus p99 %.0fus" % (j["ok"], j["failed"], j["seconds"], spread, lat.get("p50", 0), lat.get("p99", 0)))' "$1"
}

bold "Building the lab: client, edge node, 3 backends, an upstream DNS resolver (nsd), a rogue resolver, an app pod, a Kubernetes test API server (network namespaces + veth)"
lab_up 3 || exit 1
DRILL_NAMES=1000
drill_dns_prepare || { echo "DNS lab setup failed"; exit 1; }
LAB_WEIGHTS=([1]=1 [2]=2 [3]=3)
lab_config_write
echo "node uplink up0 (XDP), pods pod1..pod3 (TC reverse NAT); VIPs $LAB_VIP4 and $LAB_VIP6, backends weighted 1:2:3"
echo "DNS upstream $LAB_DNS4 (1000-name zone behind the WAN), preload built with 'edgeplane cache build'"
echo "agent config: $LAB_CONFIG"
sed 's/^/    /' "$LAB_CONFIG" | head -24
echo "    ..."

bold "Starting edgeplane-agent on the node"
lab_agent_start || exit 1
sed 's/^/    /' "$LAB_LOG"
run lab_cli status

bold "Traffic: real TCP connections and UDP request/replies from the client to the VIPs"
for t in "$LAB_VIP4:80 tcp-conns" "[$LAB_VIP6]:80 tcp-conns" "$LAB_VIP4:80 udp-rr" "[$LAB_VIP6]:80 udp-rr"; do
  set -- $t
  out=$(lab_load --target "$1" --mode "$2" --count 3000 --concurrency 32 2>/dev/null)
  printf '  %-22s %-10s %s\n' "$1" "$2" "$(summary "$out")"
done
echo "  (weights 1:2:3 -> expected shares 17% / 33% / 50%)"

bold "Live counters"
run lab_cli services
echo
lab_metrics | grep -E '^edgeplane_(lb_flows_total\{service="web"|lb_drops_total|conntrack_entries)' | sed 's/^/    /'

bold "Drill: kill -9 the agent while 40 long-lived connections and new connections run"
ip netns exec "$LAB_NS_CLIENT" "$LAB_TOOLS/ep_load" --target "$LAB_VIP4:80" --mode hold --conns 40 \
  --duration 60 --interval-ms 50 --ready-file "$LAB_DIR/hold.ready" >"$LAB_DIR/hold.json" 2>/dev/null &
HOLD=$!
netns_track_pid $HOLD
wait_for 10 test -f "$LAB_DIR/hold.ready"
echo "  40 connections open, each pinging every 50 ms"
lab_agent_kill9
echo "  agent killed (kill -9); the datapath stays in the kernel:"
out=$(lab_load --target "$LAB_VIP4:80" --mode tcp-conns --count 1000 --concurrency 16 2>/dev/null)
printf '  new connections while no agent runs: %s\n' "$(summary "$out")"
lab_agent_start || exit 1
echo "  agent restarted: $(grep -c recovered "$LAB_LOG") recovery line(s): $(grep recovered "$LAB_LOG" | tail -1 | cut -d' ' -f3-)"
sleep 1
kill -USR1 $HOLD; wait $HOLD 2>/dev/null
py 'import json,sys
j = json.load(open(sys.argv[1]))
print("  long-lived connections: %d alive, %d broken, %d moved to another backend, %d pings, %d failed" % (j["alive"], j["broken"], j["backend_changed"], j["pings"], j["ping_failures"]))' "$LAB_DIR/hold.json"

bold "Drill: drain be3 (no new flows; existing flows stay)"
run lab_cli backend drain web "$(lab_be4 3):8080"
out=$(lab_load --target "$LAB_VIP4:80" --mode tcp-conns --count 1000 --concurrency 16 2>/dev/null)
printf '  1000 new connections: %s\n' "$(summary "$out")"
run lab_cli backend undrain web "$(lab_be4 3):8080"

bold "DNS: the node is healthy; the app pod asks the upstream, the cache stands by"
run lab_cli dns status
name=$(awk 'NR == 5 {print $1}' "$LAB_DIR/stub.txt")
printf '  app pod: kdig @%s %s -> %s\n' $LAB_DNS4 "$name" \
  "$(ip netns exec "$LAB_NS_APP" kdig @$LAB_DNS4 "$name" A +short +timeout=2 2>/dev/null | head -1)"

bold "Drill: hijack - a DNAT on the WAN path sends the upstream's DNS to a rogue resolver answering every name with 203.0.113.66"
echo "  a stub resolver in the app pod asks $DRILL_RATE names/s throughout; every answer is graded against the zone"
drill_run hijack drill_hijack drill_hijack_heal divergent_dropped | sed 's/^/  /'
py 'import json,sys
d = json.load(open(sys.argv[1]))
print("  detected after %.2fs, answering from the cache after %.2fs, failed back %.2fs after the rogue went away" % (d["detection_s"], d["time_to_redirect_s"], d["failback_s"]))
print("  stub: %d queries, %.3f%% answered correctly, %d forged answers reached it" % (d["queries"], 100 * d["correct_share"], d["wrong"]))
c = d["upstream_counters"] or {}
print("  datapath: %d forged answers dropped before they reached the pod, %d queries redirected to the cache" % (c.get("divergent_dropped", 0), c.get("redirected_to_cache", 0)))
print("  node label edgeplane.io/dns-unhealthy on the test API server: %s during the failover, %s after" % ("set" if d["label_during_failover"] else "NOT set", "still set" if d["label_after_failback"] else "removed"))' "$DRILL_OUT/hijack.json"
echo "  events posted: $(drill_events)"

bold "Tearing down"
lab_agent_stop
echo "agent stopped (datapath left forwarding until the lab goes); removing namespaces, pins and files"
