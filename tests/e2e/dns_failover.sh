#!/usr/bin/env bash
# End to end: the DNS failover redirect, IPv4 and IPv6, for pods (TC on the
# pods interface) and for processes on the node itself (cgroup socket hooks),
# over UDP and TCP, with real clients (kdig uses connected sockets, so an
# answer from any source but the upstream it asked would be ignored).
#
#   upstream mode: queries reach the upstreams; nothing is redirected
#   dns failover:  upstreams blackholed, every query still answered, by the
#                  cache, with the upstream's address as source
#   agent restart while failed over: the redirect holds while the agent is
#                  down (pinned links and TC filters) and the new agent
#                  resumes cache mode instead of flapping back
#   dns auto:      stays failed over while the upstream is dead; fails back
#                  after failback_after_s once it answers again
#   bad reloads:   refused with a clear reason, running state untouched
#   dns section removed: filters, socket hooks and pins gone
set -u
cd "$(dirname "$0")/../.." || exit 1
source tests/lib/tap.sh
source tests/lib/netns.sh
source tests/lab/lab.sh

py() { /usr/bin/python3 -c "$@"; }
APP6=fd77:30::2
CACHE6=fd77:ca::10
mode() { lab_cli dns status -o json 2>/dev/null | py 'import json,sys; print(json.load(sys.stdin)["failover"]["mode"])'; }
mode_is() { [ "$(mode)" = "$1" ]; }
counter() { # counter UPSTREAM_INDEX FIELD
  lab_cli dns status -o json | py 'import json,sys; print(json.load(sys.stdin)["failover"]["upstream_health"][int(sys.argv[1])][sys.argv[2]])' "$1" "$2"
}
# dig NS SERVER NAME [+tcp]: the first address of the answer, or nothing
dig_in() {
  local ns=$1 server=$2 name=$3
  shift 3
  ip netns exec "$ns" kdig @"$server" "$name" A +short +timeout=2 +retry=0 "$@" 2>/dev/null | head -1
}
expect_addr() { awk -v n="$1" '$1 == n && $2 == "resolved" {print $3; exit}' "$LAB_ZONE_DIR/expected.txt"; }

lab_up 1 || { not_ok "lab setup"; tap_done; exit 1; }
lab_dns_up 300 || { not_ok "lab upstream DNS"; tap_done; exit 1; }
# The IPv6 upstream: a relay to nsd on the same host.
DNS_RESPONDER_LOG=$LAB_DIR/relay6.log dns_responder_start "$LAB_NS_DNS" "[$LAB_DNS6]:53" \
  --upstream "$LAB_DNS4:53" --mode forward >/dev/null || { not_ok "IPv6 upstream relay"; tap_done; exit 1; }
lab_app_up || { not_ok "app pod"; tap_done; exit 1; }
ip -n "$LAB_NS_NODE" addr add fd77:30::1/64 dev podapp nodad
ip -n "$LAB_NS_APP" addr add $APP6/64 dev eth0 nodad
ip -n "$LAB_NS_APP" -6 route add default via fd77:30::1
wait_for 5 lab_no_tentative "$LAB_NS_APP"
ip netns exec "$LAB_NS_NODE" "$LAB_CLI_BIN" cache build --domains "$LAB_ZONE_DIR/domains.txt" \
  --resolver $LAB_DNS4 --out "$LAB_DIR/preload.hosts" --quiet 2>/dev/null
check "preload built" test -s "$LAB_DIR/preload.hosts"

dns_yaml() { # dns_yaml [with_listen6]
  cat <<EOT
dns:
  upstreams: [$LAB_DNS4, "$LAB_DNS6"]
  cache:
    listen: $LAB_CACHE_IP
EOT
  [ "${1:-1}" = 1 ] && echo "    listen6: \"$CACHE6\""
  cat <<EOT
    preload: $LAB_DIR/preload.hosts
    refresh_s: 0
  health:
    probe_interval_ms: 200
    timeout_ms: 500
  failover:
    window_ms: 1000
    min_samples: 5
    failback_after_s: 2
EOT
}
# A cgroup for the datapath.cgroup_root checks, mounted outside /sys (the agent
# runs under `ip netns exec`, which hides the host's /sys) and before the agent
# starts (its mount namespace is a copy taken then).
CGMNT=$LAB_DIR/cgroup2
mkdir -p "$CGMNT" && mount -t cgroup2 none "$CGMNT" && _ns_record mount "$CGMNT"
CG=$CGMNT/edgeplane-test-$$
mkdir "$CG" && netns_on_cleanup "rmdir $CG"

LAB_EXTRA_YAML=$(dns_yaml 1)
lab_config_write
lab_agent_start || { not_ok "agent start"; tap_done; exit 1; }
check "healthy: upstream mode after start" wait_for 10 mode_is upstream
check "agent hooked host sockets at the cgroup v2 root" grep -q "host sockets hooked at the cgroup v2 root" "$LAB_LOG"
check "8 socket hook links pinned under the bpffs" \
  test "$(find "$LAB_BPFFS" -path '*/links/ep_sock_dns_*' 2>/dev/null | wc -l)" = 8
check "10 DNS maps and 2 TC DNS programs pinned under the bpffs" \
  test "$(find "$LAB_BPFFS" -path '*/maps/ep_dns_*' 2>/dev/null | wc -l)/$(find "$LAB_BPFFS" -path '*/progs/ep_tc_dns_*' 2>/dev/null | wc -l)" = 10/2

N1=n1.edge.test; A1=$(expect_addr $N1)
N2=n2.edge.test; A2=$(expect_addr $N2)
diag "names: $N1 -> $A1, $N2 -> $A2"

# --- upstream mode -------------------------------------------------------------
q0=$(counter 0 queries); r0=$(counter 0 redirected_to_cache)
check "pod, IPv4 upstream, UDP: answered ($A1)" [ "$(dig_in "$LAB_NS_APP" $LAB_DNS4 $N1)" = "$A1" ]
check "pod, IPv6 upstream, UDP: answered" [ "$(dig_in "$LAB_NS_APP" $LAB_DNS6 $N1)" = "$A1" ]
check "node process, IPv4 upstream: answered" [ "$(dig_in "$LAB_NS_NODE" $LAB_DNS4 $N1)" = "$A1" ]
sleep 0.3
check "upstream mode: the datapath saw the queries go to the upstream" [ "$(counter 0 queries)" -gt "$q0" ]
check "upstream mode: nothing redirected" [ "$(counter 0 redirected_to_cache)" = "$r0" ]

# --- failed over: the upstreams are dead, the cache answers ---------------------
check "edgeplane dns failover" lab_cli dns failover
check "mode is cache" mode_is cache
dns_upstream_blackhole "$LAB_NS_DNS"
check "blackholed upstream really is dead (the cache's own address is not)" \
  [ -z "$(ip netns exec "$LAB_NS_CLIENT" kdig @$LAB_DNS4 $N1 A +short +timeout=1 +retry=0 2>/dev/null)" ]
for proto in udp tcp; do
  flag=; [ $proto = tcp ] && flag=+tcp
  check "pod, IPv4 upstream, $proto: answered by the cache as $LAB_DNS4 ($A2)" \
    [ "$(dig_in "$LAB_NS_APP" $LAB_DNS4 $N2 $flag)" = "$A2" ]
  check "pod, IPv6 upstream, $proto: answered by the cache as $LAB_DNS6" \
    [ "$(dig_in "$LAB_NS_APP" $LAB_DNS6 $N2 $flag)" = "$A2" ]
  check "node process, IPv4 upstream, $proto: answered by the cache" \
    [ "$(dig_in "$LAB_NS_NODE" $LAB_DNS4 $N2 $flag)" = "$A2" ]
  check "node process, IPv6 upstream, $proto: answered by the cache" \
    [ "$(dig_in "$LAB_NS_NODE" $LAB_DNS6 $N2 $flag)" = "$A2" ]
done
check "unconnected UDP socket on the node (sendto/recvfrom): answer comes from the upstream's address" \
  ip netns exec "$LAB_NS_NODE" "$PY3" -c '
import socket, struct, sys
q = struct.pack("!HHHHHH", 0x4242, 0x0100, 1, 0, 0, 0) + b"".join(bytes([len(l)]) + l.encode() for l in sys.argv[2].split(".")) + b"\0" + struct.pack("!HH", 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)
s.sendto(q, (sys.argv[1], 53))
buf, src = s.recvfrom(4096)
sys.exit(0 if src == (sys.argv[1], 53) and buf[:2] == q[:2] else 1)' $LAB_DNS4 $N2
redirected_more() { [ "$(counter 0 redirected_to_cache)" -gt "$r0" ]; }
check "redirected_to_cache counted" wait_for 3 redirected_more
check "a name outside the snapshot: SERVFAIL from the cache, never NXDOMAIN" \
  sh -c "ip netns exec $LAB_NS_APP kdig @$LAB_DNS4 not-in-snapshot.example A +timeout=2 +retry=0 | grep -q 'status: SERVFAIL'"

# --- agent restart while failed over ------------------------------------------
lab_agent_stop
check "agent down: pod still answered by the cache (TC filters stay)" \
  [ "$(dig_in "$LAB_NS_APP" $LAB_DNS4 $N1)" = "$A1" ]
check "agent down: node process still answered by the cache (pinned socket hook links)" \
  [ "$(dig_in "$LAB_NS_NODE" $LAB_DNS4 $N1)" = "$A1" ]
lab_agent_start || { not_ok "agent restart"; tap_done; exit 1; }
check "restarted agent resumes cache mode" mode_is cache
check "restarted agent reused the pinned links (atomic program swap)" grep -q "0 attached, 8 already linked" "$LAB_LOG"
check "after restart: node process answered by the cache" [ "$(dig_in "$LAB_NS_NODE" $LAB_DNS6 $N1)" = "$A1" ]

# --- datapath.cgroup_root: only processes in that cgroup are redirected --------
in_cg() { sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$CG" "$@"; }
cp "$LAB_CONFIG" "$LAB_DIR/good.yaml"
sed "s|^datapath:|datapath:\n  cgroup_root: $CG|" "$LAB_DIR/good.yaml" >"$LAB_CONFIG"
grep -q "cgroup_root" "$LAB_CONFIG" || { printf 'datapath:\n  cgroup_root: %s\n' "$CG" >>"$LAB_CONFIG"; }
check "reload with datapath.cgroup_root=$CG" lab_cli reload
check "the hooks moved to that cgroup (8 attached anew)" grep -q "hooked at the cgroup $CG (8 attached" "$LAB_LOG"
check "a node process in $CG: answered by the cache" \
  [ "$(in_cg ip netns exec "$LAB_NS_NODE" kdig @$LAB_DNS4 $N1 A +short +timeout=2 +retry=0 2>/dev/null | head -1)" = "$A1" ]
check "a node process outside it: not redirected (the blackholed upstream does not answer)" \
  [ -z "$(dig_in "$LAB_NS_NODE" $LAB_DNS4 $N1)" ]
cp "$LAB_DIR/good.yaml" "$LAB_CONFIG"
check "reload without cgroup_root: back to the root" lab_cli reload
check "node process answered by the cache again" [ "$(dig_in "$LAB_NS_NODE" $LAB_DNS4 $N1)" = "$A1" ]

# --- bad reloads leave everything as it was ----------------------------------
cp "$LAB_CONFIG" "$LAB_DIR/good.yaml"
LAB_EXTRA_YAML=$(dns_yaml 0)
lab_config_write
out=$(lab_cli reload 2>&1)
diag "reload without listen6: $out"
check "reload with an IPv6 upstream and no IPv6 cache address is refused, naming the key" \
  grep -q "dns.cache.listen6" <<<"$out"
check "after the refused reload: still cache mode, IPv6 still redirected" \
  sh -c "[ \"\$(ip netns exec $LAB_NS_APP kdig @$LAB_DNS6 $N1 A +short +timeout=2 +retry=0 | head -1)\" = $A1 ]"
sed 's/failback_after_s: 2/failback_after_s: -1/' "$LAB_DIR/good.yaml" >"$LAB_CONFIG"
out=$(lab_cli reload 2>&1)
check "reload with a negative failback_after_s is refused (${out:0:80}...)" grep -q "failback_after_s" <<<"$out"
cp "$LAB_DIR/good.yaml" "$LAB_CONFIG"
check "the good config reloads" lab_cli reload

# --- back to automatic --------------------------------------------------------
check "edgeplane dns auto" lab_cli dns auto
sleep 2.5
check "auto with the upstreams still dead: stays on the cache" mode_is cache
dns_upstream_heal "$LAB_NS_DNS"
check "upstreams healed: fails back on its own" wait_for 15 mode_is upstream
check "after failback: pod queries reach the upstream again" [ "$(dig_in "$LAB_NS_APP" $LAB_DNS4 $N1)" = "$A1" ]

m=$(lab_metrics)
for metric in 'edgeplane_dns_mode 0' 'edgeplane_dns_failovers_total' "edgeplane_dns_queries_total{upstream=\"$LAB_DNS4\"}" \
  'edgeplane_dns_latency_seconds_bucket' 'edgeplane_dns_timeouts_total' 'edgeplane_dns_rcode_total' \
  'edgeplane_dns_hijack_suspected_total' 'edgeplane_cache_records' \
  "edgeplane_dns_fragments_total{upstream=\"$LAB_DNS4\",kind=\"dropped\"}" \
  "edgeplane_dns_header_extensions_total{upstream=\"$LAB_DNS4\",kind=\"ip_options\"}"; do
  check "metric $metric" grep -qF "$metric" <<<"$m"
done

# --- dns section removed ------------------------------------------------------
LAB_EXTRA_YAML=""
lab_config_write
check "reload without a dns section" lab_cli reload
check "socket hook links removed" test "$(find "$LAB_BPFFS" -path '*/links/ep_sock_dns_*' 2>/dev/null | wc -l)" = 0
check "DNS map and program pins removed" \
  test "$(find "$LAB_BPFFS" \( -path '*/maps/ep_dns_*' -o -path '*/progs/ep_tc_dns_*' \) 2>/dev/null | wc -l)" = 0
check "... the load balancer's pins stay" \
  test "$(find "$LAB_BPFFS" \( -path '*/maps/ep_config' -o -path '*/maps/ep_ct4' -o -path '*/progs/ep_tc_rnat' \) 2>/dev/null | wc -l)" = 3
check "TC DNS filters gone from podapp" \
  sh -c "! ip netns exec $LAB_NS_NODE tc filter show dev podapp ingress | grep -q ep_tc_dns"
check "queries still answered by the upstream" [ "$(dig_in "$LAB_NS_NODE" $LAB_DNS4 $N1)" = "$A1" ]
tap_done
