#!/usr/bin/env bash
# End to end: the XDP/TC load balancer in the netns lab with real TCP and UDP
# sockets, IPv4 and IPv6. Covers volume and spread, long-lived flows through
# backend removal / weight change / kill -9 of the agent, drain, malformed
# packets, bad and good reloads.
set -u
cd "$(dirname "$0")/../.."
source tests/lib/tap.sh
source tests/lib/netns.sh
source tests/lab/lab.sh

N_CONN=${N_CONN:-1000}
# 3σ of a binomial share at n=1000 is under 4.8 points; a 5-point band keeps
# false alarms below ~1 in 500 runs while catching a broken weighting.
TOL=${TOL:-0.05}

py() { /usr/bin/python3 -c "$@"; }

# spread_ok JSON W1 W2 W3: backend shares within TOL of the weights
spread_ok() {
  py '
import json, sys
j = json.loads(sys.argv[1]); w = [float(x) for x in sys.argv[2:5]]; tol = float(sys.argv[5])
tot = sum(j["backends"].values()); ok = tot > 0
for i, wi in enumerate(w, 1):
    got = j["backends"].get("be%d" % i, 0) / max(tot, 1); want = wi / sum(w)
    print("# be%d share %.3f want %.3f" % (i, got, want))
    ok = ok and abs(got - want) <= tol
sys.exit(0 if ok else 1)' "$1" "$2" "$3" "$4" "$TOL"
}

jget() { py 'import json,sys; j=json.loads(sys.argv[1]); print(eval(sys.argv[2]))' "$1" "$2"; }

metric_sum() { # metric_sum NAME [label-filter-regex]
  lab_metrics | grep "^edgeplane_$1{" | grep -E "${2:-.}" | awk '{s+=$NF} END {print s+0}'
}

lab_up 3 || { not_ok "lab setup"; tap_done; exit 1; }
lab_backends_start 8080 || { not_ok "backends start"; tap_done; exit 1; }
LAB_WEIGHTS=([1]=1 [2]=2 [3]=3)
lab_config_write
lab_agent_start || { not_ok "agent start"; tap_done; exit 1; }
ok "lab up: agent ready with 4 services on 3 backends (weights 1:2:3)"

# --- volume and spread ------------------------------------------------------
for fam in 4 6; do
  if [ $fam = 4 ]; then vip=$LAB_VIP4; else vip="[$LAB_VIP6]"; fi
  out=$(lab_load --target "$vip:80" --mode tcp-conns --count "$N_CONN" --concurrency 32 2>/dev/null)
  diag "$out"
  check "IPv$fam TCP: $N_CONN connections through the VIP all succeed" \
    [ "$(jget "$out" 'j["ok"]')" = "$N_CONN" ]
  check "IPv$fam TCP: spread follows weights 1:2:3 within ±$TOL" spread_ok "$out" 1 2 3
  out=$(lab_load --target "$vip:80" --mode udp-rr --count "$N_CONN" --concurrency 32 --retries 0 2>/dev/null)
  diag "$out"
  check "IPv$fam UDP: $N_CONN request/replies (new flow each) all answered, no retries" \
    [ "$(jget "$out" 'j["ok"]')" = "$N_CONN" ]
  check "IPv$fam UDP: spread follows weights 1:2:3 within ±$TOL" spread_ok "$out" 1 2 3
done

out=$(lab_load --target "$(lab_be4 1):8080" --mode tcp-conns --count 200 --concurrency 8 2>/dev/null)
check "direct connections to a backend (not via a VIP) are left alone by reverse NAT" \
  py 'import json,sys; j=json.loads(sys.argv[1]); sys.exit(0 if j["ok"]==200 and list(j["backends"])==["be1"] else 1)' "$out"

flows=$(metric_sum lb_flows_total)
check "lb_flows_total counts every flow (>= $((4 * N_CONN)), got $flows)" [ "$flows" -ge $((4 * N_CONN)) ]
replies=$(metric_sum lb_reply_packets_total)
check "reverse NAT counted replies (lb_reply_packets_total=$replies)" [ "$replies" -ge $((4 * N_CONN)) ]
check "nothing dropped by the datapath so far" [ "$(metric_sum lb_drops_total)" = 0 ]

# --- long-lived flows -------------------------------------------------------
HOLD4=$LAB_DIR/hold4.json HOLD6=$LAB_DIR/hold6.json
ip netns exec "$LAB_NS_CLIENT" "$LAB_TOOLS/ep_load" --target "$LAB_VIP4:80" --mode hold --conns 30 --duration 120 \
  --interval-ms 100 --ready-file "$LAB_DIR/hold4.ready" >"$HOLD4" 2>"$LAB_DIR/hold4.err" &
H4=$!
ip netns exec "$LAB_NS_CLIENT" "$LAB_TOOLS/ep_load" --target "[$LAB_VIP6]:80" --mode hold --conns 30 --duration 120 \
  --interval-ms 100 --ready-file "$LAB_DIR/hold6.ready" >"$HOLD6" 2>"$LAB_DIR/hold6.err" &
H6=$!
netns_track_pid $H4; netns_track_pid $H6
check "60 long-lived connections established (30 IPv4, 30 IPv6)" \
  wait_for 10 test -f "$LAB_DIR/hold4.ready" -a -f "$LAB_DIR/hold6.ready"

reloads_ok() { lab_cli status -o json | py 'import json,sys; print(json.load(sys.stdin)["config"]["reloads_ok"])'; }
reloaded_since() { [ "$(reloads_ok)" -gt "$1" ]; }

# (a) remove be3 from every service
r0=$(reloads_ok)
LAB_N_SAVE=$LAB_N
LAB_N=2 lab_config_write "$LAB_DIR/two.yaml"
cp "$LAB_DIR/two.yaml" "$LAB_CONFIG"
lab_agent_signal HUP
check "SIGHUP reload applied (backend be3 removed)" wait_for 10 reloaded_since "$r0"
out=$(lab_load --target "$LAB_VIP4:80" --mode tcp-conns --count 300 --concurrency 16 2>/dev/null)
check "after removing be3: 300 new connections succeed, none reach be3" \
  py 'import json,sys; j=json.loads(sys.argv[1]); sys.exit(0 if j["ok"]==300 and "be3" not in j["backends"] else 1)' "$out"
sleep 1

# (b) weight change, via a file change (inotify) this time
r0=$(reloads_ok)
LAB_WEIGHTS=([1]=5 [2]=1 [3]=1)
LAB_N=2 lab_config_write "$LAB_DIR/w.yaml"
mv "$LAB_DIR/w.yaml" "$LAB_CONFIG"
check "file change reload applied (weights 5:1)" wait_for 10 reloaded_since "$r0"
out=$(lab_load --target "$LAB_VIP4:80" --mode tcp-conns --count 600 --concurrency 16 2>/dev/null)
check "after the weight change new flows follow 5:1 (±$TOL)" \
  py 'import json,sys; j=json.loads(sys.argv[1]); b=j["backends"]; t=sum(b.values()); sys.exit(0 if j["ok"]==600 and abs(b.get("be1",0)/t-5/6)<=float(sys.argv[2]) else 1)' "$out" "$TOL"
sleep 1

# (c) kill -9 of the agent, then a restart: pinned maps keep every flow
lab_agent_kill9
out=$(lab_load --target "$LAB_VIP4:80" --mode tcp-conns --count 100 --concurrency 8 2>/dev/null)
check "with the agent dead (kill -9) new connections are still balanced" \
  [ "$(jget "$out" 'j["ok"]')" = 100 ]
sleep 1
# As after an upgrade from a build that kept its rings in ep_maglev (one
# slot per element): the agent removes that pin once it runs.
old_pin=$LAB_BPFFS/edgeplane/maps/ep_maglev
bpftool map create "$old_pin" type array key 4 value 4 entries 1 name ep_maglev
lab_agent_start || not_ok "agent restart after kill -9"
check "an older build's ep_maglev pin is removed at start, and the log says so" \
  bash -c "[ ! -e '$old_pin' ] && grep -q 'removed $old_pin, a pin of an older build' '$LAB_LOG'"
grep -q "recovered" "$LAB_LOG" && ok "restarted agent recovered services and backends from the pins" \
  || not_ok "restarted agent recovered services and backends from the pins"
sleep 2
LAB_N=$LAB_N_SAVE

kill -USR1 $H4 $H6
wait $H4; wait $H6
for f in 4 6; do
  j=$(cat "$LAB_DIR/hold$f.json")
  diag "hold IPv$f: $j"
  check "IPv$f: all 30 long-lived connections survived removal, weight change and kill -9 + restart (broken=0, backend_changed=0)" \
    py 'import json,sys; j=json.loads(sys.argv[1]); sys.exit(0 if j["alive"]==30 and j["broken"]==0 and j["backend_changed"]==0 and j["ping_failures"]==0 else 1)' "$j"
done

# --- drain ------------------------------------------------------------------
lab_config_write  # back to 3 backends, weights 5:1:1
lab_agent_signal HUP
sleep 1
ip netns exec "$LAB_NS_CLIENT" "$LAB_TOOLS/ep_load" --target "$LAB_VIP4:80" --mode hold --conns 40 --duration 60 \
  --interval-ms 100 --ready-file "$LAB_DIR/hold-d.ready" >"$LAB_DIR/hold-d.json" 2>/dev/null &
HD=$!; netns_track_pid $HD
wait_for 10 test -f "$LAB_DIR/hold-d.ready"
lab_cli backend drain web "$(lab_be4 1):8080" >/dev/null
check "edgeplane backend drain accepted" [ $? -eq 0 ]
check "services -o json shows the backend drained" \
  sh -c "ip netns exec $LAB_NS_NODE $LAB_CLI_BIN --socket $LAB_SOCK services -o json | grep -q '\"drained\": true'"
out=$(lab_load --target "$LAB_VIP4:80" --mode tcp-conns --count 300 --concurrency 16 2>/dev/null)
check "drained be1 gets no new flows (300 new connections: $(jget "$out" 'j["backends"]'))" \
  py 'import json,sys; j=json.loads(sys.argv[1]); sys.exit(0 if j["ok"]==300 and "be1" not in j["backends"] else 1)' "$out"
sleep 1
kill -USR1 $HD; wait $HD
j=$(cat "$LAB_DIR/hold-d.json")
check "drained be1 keeps its existing flows (hold: $(jget "$j" 'j["backends"]'), broken=$(jget "$j" 'j["broken"]'))" \
  py 'import json,sys; j=json.loads(sys.argv[1]); sys.exit(0 if j["broken"]==0 and j["backend_changed"]==0 and j["backends"].get("be1",0)>0 else 1)' "$j"
lab_cli backend undrain web "$(lab_be4 1):8080" >/dev/null
out=$(lab_load --target "$LAB_VIP4:80" --mode tcp-conns --count 200 --concurrency 16 2>/dev/null)
check "undrained be1 takes new flows again" \
  py 'import json,sys; j=json.loads(sys.argv[1]); sys.exit(0 if j["backends"].get("be1",0)>0 else 1)' "$out"
lab_cli backend drain web 10.9.9.9:80 >/dev/null 2>&1
check "draining an unknown backend is refused" [ $? -ne 0 ]

# --- malformed packets --------------------------------------------------------
node_mac=$(ip -n "$LAB_NS_NODE" -br link show up0 | awk '{print $3}')
declare -A before
for r in truncated malformed ip_options fragment ipv6_exthdr; do
  before[$r]=$(metric_sum lb_drops_total "reason=\"$r\"")
done
be_pk0=$(metric_sum lb_packets_total)
be_in0=0; for i in 1 2 3; do be_in0=$((be_in0 + $(ip netns exec "${LAB_NS_BE[$i]}" nstat -az IpInReceives | awk '/IpInReceives/ {print $2}'))); done
sent=$(lab_client "$PY3" tests/e2e/send_malformed.py eth0 "$node_mac" "$LAB_VIP4" "$LAB_VIP6" 80 5)
diag "malformed sent: $sent"
sleep 1
be_pk1=$(metric_sum lb_packets_total)
be_in1=0; for i in 1 2 3; do be_in1=$((be_in1 + $(ip netns exec "${LAB_NS_BE[$i]}" nstat -az IpInReceives | awk '/IpInReceives/ {print $2}'))); done
check "malformed packets reached no backend (lb_packets_total $be_pk0 -> $be_pk1, backends' IpInReceives $be_in0 -> $be_in1)" \
  [ "$be_pk0" = "$be_pk1" -a "$be_in0" = "$be_in1" ]
for r in truncated malformed ip_options fragment ipv6_exthdr; do
  want=$(jget "$sent" "j['$r']")
  got=$(( $(metric_sum lb_drops_total "reason=\"$r\"") - ${before[$r]} ))
  check "lb_drops_total{reason=\"$r\"} counted all $want malformed packets (got $got)" [ "$got" = "$want" ]
done
out=$(lab_load --target "$LAB_VIP4:80" --mode tcp-conns --count 100 --concurrency 8 2>/dev/null)
check "service unaffected after malformed traffic" [ "$(jget "$out" 'j["ok"]')" = 100 ]

# --- bad reload -------------------------------------------------------------
cp "$LAB_CONFIG" "$LAB_DIR/good.yaml"
printf 'services:\n  - name: web\n    vip: 10.77.100.1\n    port: http\n' >"$LAB_CONFIG"
lab_agent_signal HUP
sleep 1
st=$(lab_cli status -o json)
check "bad config reload refused and reported (reloads_failed >= 1)" \
  py 'import json,sys; j=json.loads(sys.argv[1]); print("# last_reload_error:", j["config"]["last_reload_error"]); sys.exit(0 if j["config"]["reloads_failed"]>=1 and j["config"]["last_reload_error"] else 1)' "$st"
check "agent log names the bad key and line" grep -q "services\[0\].port" "$LAB_LOG"
out=$(lab_load --target "$LAB_VIP4:80" --mode tcp-conns --count 200 --concurrency 8 2>/dev/null)
check "old config keeps serving after the refused reload" [ "$(jget "$out" 'j["ok"]')" = 200 ]
cp "$LAB_DIR/good.yaml" "$LAB_CONFIG"

# --- forwarding: redirect ------------------------------------------------------
# XDP_REDIRECT into a pod's veth needs that veth in NAPI mode (GRO on the pod
# side); without it the kernel drops redirected frames, which is why stack is
# the default. Checks rewritten TTL/checksums on new flows and conntrack hits.
for ((i = 1; i <= LAB_N; i++)); do ip netns exec "${LAB_NS_BE[$i]}" ethtool -K eth0 gro on >/dev/null; done
r0=$(reloads_ok)
LAB_FORWARDING=redirect lab_config_write
lab_agent_signal HUP
wait_for 10 reloaded_since "$r0"
xdp_rx() { ip netns exec "${LAB_NS_BE[1]}" ethtool -S eth0 | awk '/rx_queue_0_xdp_packets/ {print $2}'; }
x0=$(xdp_rx)
for target in "$LAB_VIP4:80" "[$LAB_VIP6]:80"; do
  out=$(lab_load --target "$target" --mode tcp-conns --count 300 --concurrency 8 2>/dev/null)
  check "forwarding redirect: 300 TCP connections to $target succeed" [ "$(jget "$out" 'j["ok"]')" = 300 ]
  out=$(lab_load --target "$target" --mode udp-rr --count 300 --concurrency 8 --retries 0 2>/dev/null)
  check "forwarding redirect: 300 UDP request/replies to $target succeed" [ "$(jget "$out" 'j["ok"]')" = 300 ]
done
out=$(lab_load --target "$LAB_VIP4:80" --mode rr --conns 2 --duration 1 2>/dev/null)
check "forwarding redirect: persistent connections (conntrack hits) work" \
  py 'import json,sys; j=json.loads(sys.argv[1]); sys.exit(0 if j["transactions"]>100 and j["failed"]==0 else 1)' "$out"
x1=$(xdp_rx)
check "forwarding redirect: frames really arrived by XDP_REDIRECT (be1 xdp rx $x0 -> $x1)" [ "$x1" -gt "$x0" ]
for ((i = 1; i <= LAB_N; i++)); do ip netns exec "${LAB_NS_BE[$i]}" ethtool -K eth0 gro off >/dev/null; done
lab_config_write
lab_agent_signal HUP
sleep 1

# --- metrics and health endpoints --------------------------------------------
m=$(lab_metrics)
for name in lb_packets_total lb_bytes_total lb_flows_total lb_drops_total conntrack_entries canary_percent; do
  check "metric edgeplane_$name exported" grep -q "^edgeplane_$name" <<<"$m"
done
check "/healthz answers 200" ip netns exec "$LAB_NS_NODE" curl -sf --max-time 5 http://127.0.0.1:9464/healthz
check "/readyz answers 200" ip netns exec "$LAB_NS_NODE" curl -sf --max-time 5 http://127.0.0.1:9464/readyz
sock_mode=$(stat -c %a "$LAB_SOCK")
check "control socket is mode 0600 (got $sock_mode)" [ "$sock_mode" = 600 ]

# --- SIGTERM leaves the datapath forwarding ------------------------------------
lab_agent_stop
check "agent exits 0 on SIGTERM" [ "${LAB_AGENT_RC:-1}" = 0 ]
out=$(lab_load --target "[$LAB_VIP6]:80" --mode tcp-conns --count 100 --concurrency 8 2>/dev/null)
check "after SIGTERM the datapath keeps balancing (100/100 IPv6 connections)" [ "$(jget "$out" 'j["ok"]')" = 100 ]

tap_done
