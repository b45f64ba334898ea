#!/usr/bin/env bash
# End to end: a spoofed flood against the load balancer's conntrack. 200
# long-lived TCP connections through the VIP, conntrack_size 4096, then a
# spoofed SYN flood (pcap from flood_pcap.py, tcpreplay --topspeed) during
# which a backend is removed and another added: no long-lived connection may
# break (SYNs never create conntrack entries), and the flood's SYNs still
# reach backends (they are indistinguishable from real clients). The same
# with spoofed ACKs (packets of connections that do not exist: no entry
# until a backend answers with anything but a RST). The same
# with a spoofed UDP flood, whose first datagrams do pin flows (UDP has no
# handshake): it fills the UDP conntrack maps, which are not the TCP ones, so
# the TCP connections must survive it too. Last, conntrack replaced under 50
# held connections, twice: resized the documented way, and over an older
# build's conntrack pins, kernel LRU hash maps (replaced by the agent itself);
# none may break.
set -u
cd "$(dirname "$0")/../.."
source tests/lib/tap.sh
source tests/lib/netns.sh
source tests/lab/lab.sh

FLOOD=${FLOOD:-300000}   # packets per flood
SOURCES=${SOURCES:-12288}
CONNS=${CONNS:-200}
PY3=/usr/bin/python3
py() { $PY3 -c "$@"; }
jget() { py 'import json,sys; j=json.loads(sys.argv[1]); print(eval(sys.argv[2]))' "$1" "$2"; }
metric_sum() { lab_metrics | grep "^edgeplane_$1{" | grep -E "${2:-.}" | awk '{s+=$NF} END {print s+0}'; }
be_in() { # IPv4 packets received by the backends
  local s=0 i
  for ((i = 1; i <= 4; i++)); do
    s=$((s + $(ip netns exec "${LAB_NS_BE[$i]}" nstat -az IpInReceives | awk '/IpInReceives/ {print $2}')))
  done
  echo $s
}

command -v tcpreplay >/dev/null || { tap_skip "tcpreplay is not installed (tests/lib/deps.sh)"; tap_done; exit 0; }
$PY3 -c 'import scapy' 2>/dev/null || { tap_skip "python3-scapy is not installed"; tap_done; exit 0; }

# services_yaml BACKEND_INDEX...: the web (TCP) and udp services on these backends
services_yaml() {
  local name proto i
  for name in web udp; do
    proto=tcp; [ $name = udp ] && proto=udp
    echo "  - name: $name"
    echo "    vip: $LAB_VIP4"
    echo "    port: 80"
    echo "    protocol: $proto"
    echo "    backends:"
    for i in "$@"; do echo "      - {address: $(lab_be4 "$i"), port: 8080}"; done
  done
}
# hold_intact JSON: every held connection alive, none broken, moved or silent
hold_intact() {
  py 'import json,sys; j=json.loads(sys.argv[1]); sys.exit(0 if j["alive"]==j["conns"] and j["broken"]==0 and j["backend_changed"]==0 and j["ping_failures"]==0 else 1)' "$1"
}
reloads_ok() { lab_cli status -o json | py 'import json,sys; print(json.load(sys.stdin)["config"]["reloads_ok"])'; }
reloaded_since() { [ "$(reloads_ok)" -gt "$1" ]; }
reconfigure() { # reconfigure BACKEND_INDEX...
  local r0
  r0=$(reloads_ok)
  LAB_SERVICES_YAML=$(services_yaml "$@") lab_config_write
  lab_agent_signal HUP
  wait_for 10 reloaded_since "$r0"
}

lab_up 4 || { not_ok "lab setup"; tap_done; exit 1; }
lab_backends_start 8080 || { not_ok "backends start"; tap_done; exit 1; }
for ((i = 1; i <= 4; i++)); do
  # The backends answer floods with SYN cookies rather than dropping SYNs.
  ip netns exec "${LAB_NS_BE[$i]}" sysctl -qw net.ipv4.tcp_syncookies=1
done
LAB_DATAPATH_YAML="  conntrack_size: 4096"
LAB_SERVICES_YAML=$(services_yaml 1 2 3) lab_config_write
lab_agent_start || { not_ok "agent start"; tap_done; exit 1; }
ok "lab up: conntrack_size 4096, web (TCP) and udp on be1..be3, be4 standing by"
node_mac=$(ip -n "$LAB_NS_NODE" -br link show up0 | awk '{print $3}')

# flood KIND [PACKETS SOURCES]: generate, hold CONNS connections, replay the
# flood while be3 is removed and be4 added, then stop the hold. Sets HOLD
# (JSON), RATE, SENT, FAILED, BE_DELTA, PK_DELTA, FLOWS_DELTA.
flood() {
  local kind=$1 npk=${2:-$FLOOD} nsrc=${3:-$SOURCES}
  local tag=$kind-$npk-$nsrc
  local pcap=$LAB_DIR/flood-$tag.pcap ready=$LAB_DIR/hold-$tag.ready out=$LAB_DIR/hold-$tag.json
  local rep=$LAB_DIR/tcpreplay-$tag.log h rp be0 pk0 fl0
  $PY3 tests/e2e/flood_pcap.py "$pcap" "$kind" "$npk" "$nsrc" "$node_mac" "$LAB_VIP4" 80 "$RANDOM" >/dev/null ||
    return 1
  reconfigure 1 2 3 || return 1
  # A connection is broken when it is reset, answered by another backend, or
  # silent for 5 s. Not 1 s: a flood at --topspeed overruns the lab's veths
  # on a loaded 2-core machine, and a ping lost there comes back through TCP
  # retransmission (200 ms, 400 ms, ...), late but on the same connection.
  ip netns exec "$LAB_NS_CLIENT" "$LAB_TOOLS/ep_load" --target "$LAB_VIP4:80" --mode hold --conns "$CONNS" \
    --duration 120 --interval-ms 100 --timeout-ms 5000 --ready-file "$ready" >"$out" 2>"$LAB_DIR/hold-$tag.err" &
  h=$!; netns_track_pid $h
  wait_for 20 test -f "$ready" || return 1
  sleep 1
  be0=$(be_in); pk0=$(metric_sum lb_packets_total); fl0=$(metric_sum lb_flows_total)
  ip netns exec "$LAB_NS_CLIENT" tcpreplay --topspeed -i eth0 "$pcap" >"$rep" 2>&1 &
  rp=$!; netns_track_pid $rp
  sleep 0.3
  reconfigure 1 2 4   # be3 removed, be4 added, mid-flood
  wait $rp
  sleep 2             # 20 more rounds of pings on every connection
  kill -USR1 $h; wait $h
  HOLD=$(cat "$out")
  RATE=$(sed -n 's/.*Rated: [0-9.]* Bps, [0-9.]* Mbps, \([0-9.]*\) pps.*/\1/p' "$rep" | head -1)
  SENT=$(sed -n 's/.*Successful packets: *\([0-9]*\).*/\1/p' "$rep" | head -1)
  FAILED=$(sed -n 's/.*Failed packets: *\([0-9]*\).*/\1/p' "$rep" | head -1)
  BE_DELTA=$(( $(be_in) - be0 )); PK_DELTA=$(( $(metric_sum lb_packets_total) - pk0 ))
  FLOWS_DELTA=$(( $(metric_sum lb_flows_total) - fl0 ))
  diag "$kind flood, $npk packets from $nsrc sources: $(grep -E 'Actual|Rated|Successful|Failed' "$rep" | tr -s ' \n' ' ')"
  diag "$kind flood: sent ${SENT:-?} at ${RATE:-?} pps, tcpreplay failures ${FAILED:-?}; balanced by XDP $PK_DELTA," \
    "received by the backends $BE_DELTA, new conntrack flows $FLOWS_DELTA, XDP drops $(metric_sum lb_drops_total)"
  diag "$kind flood: hold $HOLD"
}

# --- SYN floods -----------------------------------------------------------
# The issue's shape (many sources), then few sources with many ports each.
for shape in "$FLOOD $SOURCES" "$((FLOOD / 3)) 64"; do
  set -- $shape
  if flood syn "$1" "$2"; then
    check "SYN flood ($1 SYNs, $2 sources): $CONNS long-lived connections established before it" \
      [ "$(jget "$HOLD" 'j["established"]')" = "$CONNS" ]
    check "SYN flood ($1 SYNs, $2 sources) with be3 removed and be4 added mid-flood: 0 of $CONNS long-lived connections broken (broken=$(jget "$HOLD" 'j["broken"]'), backend_changed=$(jget "$HOLD" 'j["backend_changed"]'))" \
      hold_intact "$HOLD"
    # Every SYN is balanced and delivered; some may be lost on the veths at
    # topspeed, so at least half of what was sent must arrive.
    check "SYN flood ($1 SYNs, $2 sources): its SYNs reach the backends (${BE_DELTA} received for ${SENT:-0} sent)" \
      [ "${SENT:-0}" -gt 0 -a "$BE_DELTA" -ge $(( ${SENT:-0} / 2 )) ]
    check "SYN flood ($1 SYNs, $2 sources): created no conntrack flows (lb_flows_total +$FLOWS_DELTA, the pings' ACKs create none either)" \
      [ "$FLOWS_DELTA" -lt 100 ]
  else
    not_ok "SYN flood: could not be set up (see $LAB_DIR)"
  fi
done

# --- ACK flood ------------------------------------------------------------
# Packets of connections that do not exist (random sequence numbers) look
# like flows whose entries were evicted: balanced by Maglev, they leave only
# an orphan record, and the backends' RSTs create no entry either.
if flood ack; then
  check "ACK flood: its packets reach the backends (${BE_DELTA} received for ${SENT:-0} sent)" \
    [ "${SENT:-0}" -gt 0 -a "$BE_DELTA" -ge $(( ${SENT:-0} / 2 )) ]
  check "ACK flood: created no conntrack flows (lb_flows_total +$FLOWS_DELTA)" \
    [ "$FLOWS_DELTA" -lt 100 ]
  check "ACK flood with be3 removed and be4 added mid-flood: 0 of $CONNS long-lived connections broken (broken=$(jget "$HOLD" 'j["broken"]'), backend_changed=$(jget "$HOLD" 'j["backend_changed"]'))" \
    hold_intact "$HOLD"
else
  not_ok "ACK flood: could not be set up (see $LAB_DIR)"
fi

# --- UDP flood ------------------------------------------------------------
# UDP has no handshake: a flow is pinned on its first datagram, so every
# spoofed datagram is a conntrack entry and the flood churns the UDP maps
# (UDP flows evicted by it and moved by the backend change would change
# backend). The TCP maps are apart: no TCP entry is evicted.
if flood udp; then
  check "UDP flood: its datagrams reach the backends (${BE_DELTA} received for ${SENT:-0} sent)" \
    [ "${SENT:-0}" -gt 0 -a "$BE_DELTA" -ge $(( ${SENT:-0} / 2 )) ]
  check "UDP flood: each spoofed datagram's flow is pinned (lb_flows_total +$FLOWS_DELTA)" \
    [ "$FLOWS_DELTA" -ge $(( ${SENT:-0} / 2 )) ]
  check "UDP flood with be3 removed and be4 added mid-flood: 0 of $CONNS long-lived TCP connections broken (broken=$(jget "$HOLD" 'j["broken"]'), backend_changed=$(jget "$HOLD" 'j["backend_changed"]'))" \
    hold_intact "$HOLD"
else
  not_ok "UDP flood: could not be set up (see $LAB_DIR)"
fi

# --- conntrack resized the documented way ---------------------------------
# docs/install.md: stop, remove the pinned conntrack, start with the new
# size. Every tracked flow is forgotten, yet live connections carry on: their
# packets are orphans (Maglev, same ring) until the backend answers, and then
# recorded again. The XDP program is of the same build but still uses the
# removed maps, so it must be replaced, or new flows would be recorded where
# reverse NAT no longer looks.
ct_pins() { ls "$LAB_BPFFS"/edgeplane/maps/ep_ct{4,6,u4,u6} 2>/dev/null; }
# ct4_flows: IPv4 TCP flows in the pinned table (slots with a key; bpftool
# prints each bucket through the table's BTF)
ct4_flows() {
  bpftool -j map dump pinned "$LAB_BPFFS/edgeplane/maps/ep_ct4" | py '
import json, sys
print(sum(1 for e in json.load(sys.stdin) for w in e["formatted"]["value"]["way"] if w["key"]["dst"]))'
}
# hold50 NAME: 50 long-lived connections through the VIP in the background
# (pid $h, results in $hold when it gets SIGUSR1)
hold50() {
  hold=$LAB_DIR/hold-$1.json
  ip netns exec "$LAB_NS_CLIENT" "$LAB_TOOLS/ep_load" --target "$LAB_VIP4:80" --mode hold --conns 50 \
    --duration 60 --interval-ms 100 --timeout-ms 5000 --ready-file "$LAB_DIR/hold-$1.ready" >"$hold" 2>/dev/null &
  h=$!; netns_track_pid $h
  check "$1: 50 long-lived connections established" wait_for 20 test -f "$LAB_DIR/hold-$1.ready"
}
# held50_after NAME N, once conntrack was replaced: N new connections succeed,
# the 50 held ones survived, and the new conntrack holds only what was
# recorded since: the new connections and the held ones, recorded again by
# reverse NAT when their backends answered.
held50_after() {
  local out n_ct
  out=$(lab_load --target "$LAB_VIP4:80" --mode tcp-conns --count "$2" --concurrency 8 2>/dev/null)
  check "$1: $2 new connections through the VIP succeed" [ "$(jget "$out" 'j["ok"]')" = "$2" ]
  sleep 2
  n_ct=$(ct4_flows)
  kill -USR1 $h; wait $h
  if py 'import json,sys; j=json.load(open(sys.argv[1])); sys.exit(0 if j["alive"]==j["conns"]==50 and j["broken"]==0 and j["backend_changed"]==0 else 1)' "$hold"; then
    ok "$1: 0 of 50 long-lived connections broken by the forgotten conntrack"
  else
    not_ok "$1: 0 of 50 long-lived connections broken by the forgotten conntrack"
    diag "$1: hold $(cat "$hold")"
    tail -20 "$LAB_LOG" | sed 's/^/#   /'
  fi
  check "$1: the long-lived connections were recorded again when their backends answered ($n_ct entries in the new conntrack, $(($2 + 50)) expected)" \
    [ "$n_ct" -ge $(($2 + 50)) ]
}
hold50 resize
lab_agent_stop
LAB_DATAPATH_YAML="  conntrack_size: 8192" LAB_SERVICES_YAML=$(services_yaml 1 2 4) lab_config_write
LAB_AGENT_WAIT=3 lab_agent_start 2>/dev/null
check "resize: the agent refuses the new conntrack_size over the pinned conntrack, naming the map to remove" \
  grep -q "datapath.conntrack_size is 8192 but the pinned conntrack .* holds 4096 entries" "$LAB_LOG"
lab_agent_stop
check "resize: the four pinned conntrack maps removed as the message says" \
  bash -c "rm -f $(ct_pins | tr '\n' ' ') && [ -z \"\$(ls $LAB_BPFFS/edgeplane/maps/ep_ct{4,6,u4,u6} 2>/dev/null)\" ]"
lab_agent_start || not_ok "resize: agent start with conntrack_size 8192"
check "resize: the XDP program of the same build, still on the removed maps, was replaced" \
  grep -qE "(replaced the XDP load balancer on|re-attached the XDP load balancer to) up0" "$LAB_LOG"
held50_after resize 200

# --- upgrade from a build whose conntrack was the kernel's LRU hash map ----
# Builds before the table of buckets pinned ep_ct4/ep_ctu4 (12-byte keys) and
# ep_ct6/ep_ctu6 (40-byte keys) as LRU hash maps. The agent replaces such
# pins by itself (nothing for the operator to decide), and live connections
# carry on as orphans until their backends answer, as after a resize. The
# planted maps stand for the older build's.
hold50 upgrade
lab_agent_stop
# The log runs on across restarts: the resize above said the same line once.
xdp_first() { grep -c "the pinned conntrack is new: XDP is replaced before reverse NAT" "$LAB_LOG"; }
n_xdp_first=$(xdp_first)
for m in ep_ct4:12 ep_ctu4:12 ep_ct6:40 ep_ctu6:40; do
  rm -f "$LAB_BPFFS/edgeplane/maps/${m%:*}"
  bpftool map create "$LAB_BPFFS/edgeplane/maps/${m%:*}" type lru_hash key "${m#*:}" value 32 entries 8192 flags 2 name "${m%:*}"
done
lab_agent_start || not_ok "upgrade: agent start over the older build's conntrack pins"
for m in ep_ct4:12 ep_ctu4:12 ep_ct6:40 ep_ctu6:40; do
  check "upgrade: the older build's ${m%:*} (an LRU hash map) replaced at start, and the log says so" \
    grep -q "replaced $LAB_BPFFS/edgeplane/maps/${m%:*}, a conntrack of an older build (map type 9, ${m#*:}-byte keys" "$LAB_LOG"
  check "upgrade: the new ${m%:*} is a table of buckets (an array, 4-byte keys)" \
    [ "$(bpftool -j map show pinned "$LAB_BPFFS/edgeplane/maps/${m%:*}" | py 'import json,sys; j=json.load(sys.stdin); print(j["type"], j["bytes_key"])')" = "array 4" ]
done
check "upgrade: XDP was replaced before reverse NAT (the old programs still held the old conntrack)" \
  [ "$(xdp_first)" -gt "$n_xdp_first" ]
held50_after upgrade 100
tap_done
