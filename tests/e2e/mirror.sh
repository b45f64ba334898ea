#!/usr/bin/env bash
# End to end: traffic mirroring in the netns lab. A collector namespace
# behind a veth (services[].mirror.to.interface) and one behind a routed
# link (VXLAN, VNI 100 over IPv4 and VNI 200 over IPv6, UDP 4789) count what
# they receive per flow. Checked:
# exactly the flows ep_mirror_hash samples are mirrored (the expected set
# from tests/tools/ep_mirror_pick), every byte of them in both directions
# (TCP payload bytes against what the client sent and received, SYN and FIN
# both ways; UDP datagram counts), in the backend's view (client <->
# backend); production traffic is untouched (every connection succeeds,
# every echo intact); under a UDP flood the byte cap holds and the excess is
# counted in mirror_drops_total{reason="rate_limit"}; with the agent killed
# the datapath keeps mirroring, a restarted agent keeps the VXLAN device;
# a reload without mirrors detaches the program and removes the VXLAN device.
set -u
cd "$(dirname "$0")/../.."
source tests/lib/tap.sh
source tests/lib/netns.sh
source tests/lab/lab.sh

TOOL=tests/e2e/mirror_tool.py
PICK=$LAB_TOOLS/ep_mirror_pick
SHARE_BP=3000          # 30% of flows
FLOOD_RATE=200000      # bytes/s cap of the flood service
FLOOD_SECS=3
py() { $PY3 -c "$@"; }

metric() { # metric NAME SERVICE [REASON]
  lab_metrics | grep "^edgeplane_$1{service=\"$2\"${3:+,reason=\"$3\"}}" | awk '{print $NF}'
}

lab_up 2 || { not_ok "lab setup"; tap_done; exit 1; }
lab_backends_start 8080 8081 || { not_ok "backends start"; tap_done; exit 1; }

NS_COL=$(netns_add col) || { not_ok "collector namespace"; tap_done; exit 1; }
netns_veth "$LAB_NS_NODE" mirror0 "$NS_COL" eth0
NS_VX=$(netns_add vx) || { not_ok "VXLAN collector namespace"; tap_done; exit 1; }
netns_veth "$LAB_NS_NODE" col1 "$NS_VX" eth0
ip -n "$LAB_NS_NODE" addr add 10.77.200.1/24 dev col1
ip -n "$NS_VX" addr add 10.77.200.2/24 dev eth0
ip -n "$LAB_NS_NODE" addr add fd77:200::1/64 dev col1 nodad
ip -n "$NS_VX" addr add fd77:200::2/64 dev eth0 nodad

be_list() { # be_list FAMILY PORT
  local i
  for ((i = 1; i <= LAB_N; i++)); do
    if [ "$1" = 6 ]; then echo "      - {address: $(lab_be6 "$i"), port: $2}"
    else echo "      - {address: $(lab_be4 "$i"), port: $2}"; fi
  done
}
svc() { # svc NAME VIP PORT PROTO FAMILY BE_PORT [MIRROR]
  echo "  - name: $1"
  echo "    vip: '$2'"
  echo "    port: $3"
  echo "    protocol: $4"
  echo "    backends:"
  be_list "$5" "$6"
  [ -n "${7:-}" ] && echo "    mirror: $7"
  return 0
}
services_yaml() { # services_yaml with|without
  local w=$1 m30="{percent: 30, to: {interface: mirror0}, max_bytes_per_s: 100000000}"
  local vx="{percent: 30, to: {vxlan: {remote: 10.77.200.2, vni: 100}}, max_bytes_per_s: 100000000}"
  local fl="{percent: 100, to: {interface: mirror0}, max_bytes_per_s: $FLOOD_RATE}"
  local vx6="{percent: 30, to: {vxlan: {remote: 'fd77:200::2', vni: 200}}}"
  [ "$w" = with ] || m30= vx= fl= vx6=
  svc web "$LAB_VIP4" 80 tcp 4 8080 "$m30"
  svc web6 "$LAB_VIP6" 80 tcp 6 8080 "$vx"
  svc udp "$LAB_VIP4" 80 udp 4 8080 "$vx"
  svc udp6 "$LAB_VIP6" 80 udp 6 8080 "$vx6"
  svc flood "$LAB_VIP4" 81 udp 4 8081 "$fl"
}
LAB_SERVICES_YAML=$(services_yaml with)
lab_config_write
lab_agent_start || { not_ok "agent start"; tap_done; exit 1; }
ok "lab up: agent ready, 5 services mirrored (IPv4 TCP to an interface, IPv6 TCP and UDP over VXLAN, IPv6 UDP over VXLAN on IPv6, a capped flood)"

VXDEV=epmx00006412b5 # VNI 0x000064, port 0x12b5
check "the agent made the VXLAN device $VXDEV (VNI 100, remote 10.77.200.2, port 4789)" \
  sh -c "ip -n '$LAB_NS_NODE' -d link show $VXDEV | grep -q 'vxlan id 100 remote 10.77.200.2 .*dstport 4789'"
check "TC mirroring attached on up0 and pod1 ingress (ahead of reverse NAT)" \
  sh -c "ip netns exec '$LAB_NS_NODE' tc filter show dev up0 ingress | grep -q ep_tc_mirror && ip netns exec '$LAB_NS_NODE' tc filter show dev pod1 ingress | grep -q ep_tc_mirror"

RAW=$LAB_DIR/raw.json VX=$LAB_DIR/vx.json VX6=$LAB_DIR/vx6.json
RAW_PID=$(netns_bg_log "$LAB_DIR/raw.log" "$NS_COL" $PY3 $TOOL collect raw eth0 "$RAW")
VX_PID=$(netns_bg_log "$LAB_DIR/vx.log" "$NS_VX" $PY3 $TOOL collect vxlan 4789 100 "$VX")
VX6_PID=$(netns_bg_log "$LAB_DIR/vx6.log" "$NS_VX" $PY3 $TOOL collect vxlan6 4789 200 "$VX6")
wait_for 5 test -e "$RAW.ready" && wait_for 5 test -e "$VX.ready" && wait_for 5 test -e "$VX6.ready" ||
  { not_ok "collectors start"; tap_done; exit 1; }

T4=$(lab_client $PY3 $TOOL tcp $LAB_CLIENT4 $LAB_VIP4 80 30000 60 20)
T6=$(lab_client $PY3 $TOOL tcp $LAB_CLIENT6 $LAB_VIP6 80 31000 40 20)
U4=$(lab_client $PY3 $TOOL udp $LAB_CLIENT4 $LAB_VIP4 80 32000 60 5)
U6=$(lab_client $PY3 $TOOL udp $LAB_CLIENT6 $LAB_VIP6 80 38000 30 5)
check "production: 60 IPv4 TCP connections, every echo intact" py 'import json,sys; j=json.loads(sys.argv[1]); sys.exit(j["ok"]!=j["n"])' "$T4"
check "production: 40 IPv6 TCP connections, every echo intact" py 'import json,sys; j=json.loads(sys.argv[1]); sys.exit(j["ok"]!=j["n"])' "$T6"
check "production: 30 IPv6 UDP flows x 5 request/replies, all answered" py 'import json,sys; j=json.loads(sys.argv[1]); sys.exit(j["ok"]!=j["n"])' "$U6"
check "production: 60 UDP flows x 5 request/replies, all answered" py 'import json,sys; j=json.loads(sys.argv[1]); sys.exit(j["ok"]!=j["n"])' "$U4"

# The flood: one flow, every datagram of it sampled, the cap far below it.
FL=$(lab_client env FLOOD_PORT=39999 $PY3 $TOOL flood $LAB_CLIENT4 $LAB_VIP4 81 $FLOOD_SECS 1000)
diag "flood: $FL"
T4B=$(lab_client $PY3 $TOOL tcp $LAB_CLIENT4 $LAB_VIP4 80 33000 10 5)
check "production: TCP connections right after the flood all succeed" py 'import json,sys; j=json.loads(sys.argv[1]); sys.exit(j["ok"]!=j["n"])' "$T4B"
sleep 1
kill "$RAW_PID" "$VX_PID" "$VX6_PID"
wait_for 5 test -e "$RAW" && wait_for 5 test -e "$VX" && wait_for 5 test -e "$VX6" || { not_ok "collectors wrote their counts"; tap_done; exit 1; }
METRICS=$(lab_metrics)

EXP4=$($PICK $LAB_CLIENT4 $LAB_VIP4 80 tcp $SHARE_BP 30000 30059 | tr '\n' ' ')
EXP6=$($PICK $LAB_CLIENT6 $LAB_VIP6 80 tcp $SHARE_BP 31000 31039 | tr '\n' ' ')
EXPU=$($PICK $LAB_CLIENT4 $LAB_VIP4 80 udp $SHARE_BP 32000 32059 | tr '\n' ' ')
EXPB=$($PICK $LAB_CLIENT4 $LAB_VIP4 80 tcp $SHARE_BP 33000 33009 | tr '\n' ' ')
diag "expected IPv4 TCP flows: $EXP4"
diag "expected IPv6 TCP flows: $EXP6"
diag "expected UDP (VXLAN) flows: $EXPU"

# tcp_exact LABEL COLLECTED CLIENT_JSON FIRST LAST EXPECTED...: the set, and
# every byte both ways, SYN and FIN both ways, the backend as the peer.
tcp_exact() {
  py '
import json, sys
res = json.load(open(sys.argv[1])); cl = json.loads(sys.argv[2])
lo, hi = int(sys.argv[3]), int(sys.argv[4]); exp = set(int(x) for x in sys.argv[5].split())
flows = {int(k): v for k, v in res["flows"].items() if lo <= int(k) <= hi}
ok = set(flows) == exp and 0 < len(exp) < hi - lo + 1
if set(flows) != exp:
    print("# sets differ: missing %s extra %s" % (sorted(exp - set(flows)), sorted(set(flows) - exp)))
for p in sorted(exp & set(flows)):
    f, r = flows[p].get("fwd"), flows[p].get("rev")
    good = bool(f and r) and f["payload"] == cl["sent"][str(p)] and r["payload"] == cl["got"][str(p)] \
        and f["flags"] & 0x03 == 0x03 and r["flags"] & 0x13 == 0x13 and f["peer"] == r["peer"] \
        and f["peer"].startswith(("10.77.1", "fd77:1")) and f["peer"] not in ("10.77.100.1", "fd77:100::1")
    if not good:
        print("# flow %d: %s, client sent %s got %s" % (p, flows[p], cl["sent"].get(str(p)), cl["got"].get(str(p))))
    ok = ok and good
print("# %d flows mirrored, %d packets" % (len(flows), sum(d["packets"] for v in flows.values() for d in v.values())))
sys.exit(0 if ok else 1)' "$@"
}
check "raw: exactly the sampled IPv4 TCP flows, every payload byte both ways, SYN+FIN both ways, client<->backend" \
  tcp_exact "$RAW" "$T4" 30000 30059 "$EXP4"
check "VXLAN: exactly the sampled IPv6 TCP flows, every payload byte both ways (GSO segmented by the kernel), SYN+FIN both ways, client<->backend" \
  tcp_exact "$VX" "$T6" 31000 31039 "$EXP6"
check "raw: the TCP flows right after the flood, likewise (the flood's cap is its own)" \
  tcp_exact "$RAW" "$T4B" 33000 33009 "$EXPB"

udp_exact() { # udp_exact FILE EXPECTED [FIRST N]
  py '
import json, sys
res = json.load(open(sys.argv[1])); exp = set(int(x) for x in sys.argv[2].split())
lo, n = int(sys.argv[3]), int(sys.argv[4])
flows = {int(k): v for k, v in res["flows"].items() if lo <= int(k) < lo + n}
ok = set(flows) == exp and 0 < len(exp) < n and res["bad_vxlan"] == 0
for p in sorted(flows):
    f, r = flows[p].get("fwd", {}), flows[p].get("rev", {})
    if f.get("packets") != 5 or r.get("packets") != 5 or f.get("peer") != r.get("peer"):
        print("# flow %d: %s" % (p, flows[p])); ok = False
print("# %d flows, bad VXLAN %d, frames %d" % (len(flows), res["bad_vxlan"], res["frames"]))
sys.exit(0 if ok else 1)' "$1" "$2" "${3:-32000}" "${4:-60}"
}
check "VXLAN: exactly the sampled UDP flows, all 5 requests and 5 replies of each, VNI 100" \
  udp_exact "$VX" "$EXPU"
EXPU6=$($PICK $LAB_CLIENT6 $LAB_VIP6 80 udp $SHARE_BP 38000 38029 | tr '\n' ' ')
check "VXLAN over IPv6 to fd77:200::2: exactly the sampled IPv6 UDP flows, 5 + 5 each, VNI 200" \
  udp_exact "$VX6" "$EXPU6" 38000 30

flows_packets() { # flows_packets FILE FIRST LAST
  py 'import json,sys; r=json.load(open(sys.argv[1])); print(sum(d["packets"] for k,v in r["flows"].items() if int(sys.argv[2])<=int(k)<=int(sys.argv[3]) for d in v.values()))' "$@"
}
m_web=$(metric mirror_packets_total web)
c_web=$(( $(flows_packets "$RAW" 30000 30059) + $(flows_packets "$RAW" 33000 33009) ))
m_udp=$(metric mirror_packets_total udp)
c_udp=$(flows_packets "$VX" 32000 32059)
diag "mirror_packets_total web=$m_web udp=$m_udp; collectors web=$c_web udp=$c_udp"
check "mirror_packets_total{service=\"web\"} equals the frames the raw collector got ($c_web)" \
  [ "${m_web:-x}" = "$c_web" ]
check "mirror_packets_total{service=\"udp\"} equals the datagrams the VXLAN collector got ($c_udp)" \
  [ "${m_udp:-x}" = "$c_udp" ]
no_drops() {
  local d
  d=$(printf '%s\n' "$METRICS" | grep -E '^edgeplane_mirror_drops_total\{service="(web|web6|udp)"')
  diag "$(echo $d)"
  [ "$(echo "$d" | wc -l)" = 6 ] && ! echo "$d" | grep -qv ' 0$'
}
check "mirror_drops_total of the uncapped services is 0 (both reasons)" no_drops

fl_bytes=$(py 'import json,sys; r=json.load(open(sys.argv[1])); print(sum(d["bytes"] for d in r["flows"].get("39999", {}).values()))' "$RAW")
fl_secs=$(py 'import json,sys; print(json.loads(sys.argv[1])["seconds"])' "$FL")
fl_sent=$(py 'import json,sys; print(json.loads(sys.argv[1])["sent"])' "$FL")
bound=$(py "import sys; print(int($FLOOD_RATE * ($fl_secs + 2) + 131072))")
m_fl_drop=$(metric mirror_drops_total flood rate_limit)
m_fl_bytes=$(metric mirror_bytes_total flood)
diag "flood: $fl_sent datagrams of 1000 bytes in ${fl_secs}s; collector got $fl_bytes bytes (bound $bound); mirror_bytes_total $m_fl_bytes, rate_limit drops $m_fl_drop"
check "flood: the collector got some of it, and no more than the cap allows ($fl_bytes <= $bound bytes)" \
  [ "$fl_bytes" -gt 0 ] && [ "$fl_bytes" -le "$bound" ]
check "flood: mirror_bytes_total{service=\"flood\"} within the cap too" [ "${m_fl_bytes:-0}" -le "$bound" ]
check "flood: the excess counted in mirror_drops_total{service=\"flood\",reason=\"rate_limit\"} ($m_fl_drop)" \
  [ "${m_fl_drop:-0}" -gt 0 ]

# Without the agent: the datapath keeps mirroring; a new agent keeps the
# VXLAN device (same ifindex) and goes on.
vx_round() { # vx_round LABEL FIRST: 20 UDP flows through a fresh VXLAN collector
  local out=$LAB_DIR/vx-$2.json pid u exp
  pid=$(netns_bg_log "$LAB_DIR/vx-$2.log" "$NS_VX" $PY3 $TOOL collect vxlan 4789 100 "$out")
  wait_for 5 test -e "$out.ready" || { not_ok "$1: collector start"; return; }
  u=$(lab_client $PY3 $TOOL udp $LAB_CLIENT4 $LAB_VIP4 80 "$2" 20 5)
  sleep 0.5
  kill "$pid"
  wait_for 5 test -e "$out" || { not_ok "$1: collector wrote its counts"; return; }
  check "$1: 20 UDP flows x 5 all answered" py 'import json,sys; j=json.loads(sys.argv[1]); sys.exit(j["ok"]!=j["n"])' "$u"
  exp=$($PICK $LAB_CLIENT4 $LAB_VIP4 80 udp $SHARE_BP "$2" $(($2 + 19)) | tr '\n' ' ')
  check "$1: exactly the sampled UDP flows mirrored over VXLAN, 5 + 5 datagrams each" \
    py '
import json, sys
res = json.load(open(sys.argv[1])); exp = set(int(x) for x in sys.argv[2].split()); lo = int(sys.argv[3])
flows = {int(k): v for k, v in res["flows"].items() if lo <= int(k) < lo + 20}
ok = set(flows) == exp and all(v.get("fwd", {}).get("packets") == 5 and v.get("rev", {}).get("packets") == 5 for v in flows.values())
print("# %d flows of %d expected" % (len(flows), len(exp)))
sys.exit(0 if ok and exp else 1)' "$out" "$exp" "$2"
}
ifidx_before=$(ip -n "$LAB_NS_NODE" -o link show "$VXDEV" | cut -d: -f1)
kill -9 "$(lab_agent_pid)"
wait_for 5 sh -c "! kill -0 $LAB_AGENT_PID 2>/dev/null"
vx_round "agent killed (-9)" 35000
lab_agent_start || { not_ok "agent restart"; tap_done; exit 1; }
vx_round "agent restarted" 36000
kept() {
  local now cf
  now=$(ip -n "$LAB_NS_NODE" -o link show "$VXDEV" | cut -d: -f1)
  cf=$(metric mirror_drops_total udp clone_failed)
  diag "VXLAN device ifindex $ifidx_before -> $now; clone_failed $cf"
  [ "$now" = "$ifidx_before" ] && [ "$cf" = 0 ]
}
check "agent restarted: the VXLAN device kept (same ifindex), no clone failed" kept

# Mirrors gone: the program comes off every interface, the device goes.
LAB_SERVICES_YAML=$(services_yaml without)
lab_config_write
lab_cli reload >/dev/null 2>&1 || lab_agent_signal HUP
gone() {
  ! ip netns exec "$LAB_NS_NODE" tc filter show dev up0 ingress | grep -q ep_tc_mirror &&
    ! ip -n "$LAB_NS_NODE" link show "$VXDEV" >/dev/null 2>&1 &&
    ! ip -n "$LAB_NS_NODE" link show epmx0000c812b5 >/dev/null 2>&1
}
check "reload without mirrors: TC mirroring detached, both VXLAN devices removed" wait_for 10 gone
T4C=$(lab_client $PY3 $TOOL tcp $LAB_CLIENT4 $LAB_VIP4 80 34000 10 3)
check "production after the reload: TCP connections all succeed" py 'import json,sys; j=json.loads(sys.argv[1]); sys.exit(j["ok"]!=j["n"])' "$T4C"

# An agent that started without mirrors (confined by then) takes one on at a reload.
lab_agent_stop
lab_agent_start || { not_ok "agent start without mirrors"; tap_done; exit 1; }
LAB_SERVICES_YAML=$(services_yaml with)
lab_config_write
lab_cli reload >/dev/null 2>&1 || lab_agent_signal HUP
check "reload with mirrors into an agent started without: VXLAN device and TC mirroring back" \
  wait_for 10 sh -c "ip -n '$LAB_NS_NODE' link show $VXDEV >/dev/null 2>&1 && ip netns exec '$LAB_NS_NODE' tc filter show dev up0 ingress | grep -q ep_tc_mirror"
vx_round "mirroring taken on at a reload" 37000
check "no forbidden system call in the agent's log (seccomp)" sh -c "! grep -q 'seccomp: forbidden system call' '$LAB_LOG'"

tap_done
