#!/usr/bin/env bash
# End to end: the control socket never stalls the agent's event loop.
#
# Clients that connect and then send nothing (one sends half a request line)
# are held open on the agent's control socket while the upstream resolver is
# blackholed. The agent must meanwhile
#   - fail over to the local cache as fast as it does without them (a
#     baseline blackhole first, same lab and agent), and within the bound of
#     the blackhole drill (tests/drills/dns_blackhole.sh: 10 s);
#   - answer `edgeplane status` within 1 s, and /healthz with 200;
#   - close every idle client after its 10 s deadline;
#   - serve a request that arrives in two parts, and keep answering with more
#     connections open than its client cap.
set -u
cd "$(dirname "$0")/../.." || exit 1
source tests/lib/drills.sh

IDLE_N=6          # idle clients held during the fault
HOLD_S=15         # how long they wait for the agent to close them
DRILL_BOUND_S=10  # drill_run: wait_for 10 drill_mode_is cache
SLACK_S=1.5       # allowed over the baseline (probe and window granularity)

pyj() { /usr/bin/python3 -c "$@"; }
ctl() { ip netns exec "$LAB_NS_NODE" "$PY3" tests/lib/ctl_clients.py "$LAB_SOCK" "$@"; }
state_is() { drill_status | pyj 'import json,sys; sys.exit(0 if json.load(sys.stdin)["failover"]["state"] == sys.argv[1] else 1)' "$1"; }

# status_time: seconds `edgeplane status` takes (99 when it fails)
status_time() {
  local t0 t1
  t0=$(date +%s.%N)
  lab_cli status >/dev/null 2>&1 || { echo 99; return; }
  t1=$(date +%s.%N)
  pyj 'import sys; print("%.3f" % (float(sys.argv[2]) - float(sys.argv[1])))' "$t0" "$t1"
}
lt() { pyj 'import sys; sys.exit(0 if float(sys.argv[1]) < float(sys.argv[2]) else 1)' "$1" "$2"; }

# blackhole_once: blackholes the upstream, waits for cache mode, heals and
# waits until the upstream is healthy again; FAILOVER_S = fault to redirect.
blackhole_once() {
  local t_fault t_redirect
  t_fault=$(date +%s.%N)
  dns_upstream_blackhole "$LAB_NS_DNS"
  [ -n "${AFTER_INJECT:-}" ] && $AFTER_INJECT
  wait_for "$DRILL_BOUND_S" drill_mode_is cache
  t_redirect=$(drill_log_time "$t_fault" 'now answered by the local cache')
  FAILOVER_S=$(pyj 'import sys; print("%.3f" % (float(sys.argv[2]) - float(sys.argv[1])) if sys.argv[2] else "none")' \
    "$t_fault" "${t_redirect:-}")
  dns_upstream_heal "$LAB_NS_DNS"
  wait_for $((DRILL_FAILBACK_S + 20)) drill_mode_is upstream
  wait_for 20 state_is healthy
}

drill_setup
# Pod traffic during both runs, as in the drills: its timeouts are evidence too.
ip netns exec "$LAB_NS_APP" "$PY3" tests/lib/dnsq.py $LAB_DNS4 stub 90 "$DRILL_RATE" "$LAB_DIR/stub.json" \
  <"$LAB_DIR/stub.txt" >/dev/null 2>&1 &
netns_track_pid $!
sleep 2

blackhole_once
BASE_S=$FAILOVER_S
diag "baseline: blackhole to cache mode in ${BASE_S}s"
check "baseline: failover within the drill's bound (${DRILL_BOUND_S}s, took ${BASE_S}s)" lt "$BASE_S" "$DRILL_BOUND_S"

# --- idle clients held open through a second blackhole -----------------------
# They connect just before the fault and stay until the agent closes them, so
# they cover the whole detection (a loop blocked on one of them would miss
# its 100 ms health slots).
ctl idle "$IDLE_N" "$HOLD_S" "$LAB_DIR/idle.json" &
IDLE_PID=$!
netns_track_pid $IDLE_PID
sleep 0.3
BEFORE_T=$(status_time)
after_inject() {
  DURING_T=$(status_time)
  HEALTHZ=$(ip netns exec "$LAB_NS_NODE" curl -s -o /dev/null -w '%{http_code}' --max-time 2 http://127.0.0.1:9464/healthz)
}
AFTER_INJECT=after_inject blackhole_once
IDLE_S=$FAILOVER_S
check "edgeplane status answers within 1 s with $IDLE_N idle clients connected (took ${BEFORE_T}s)" \
  lt "$BEFORE_T" 1
diag "with $IDLE_N idle clients: blackhole to cache mode in ${IDLE_S}s (baseline ${BASE_S}s)"
check "with idle clients: failover within the drill's bound (${DRILL_BOUND_S}s, took ${IDLE_S}s)" \
  lt "$IDLE_S" "$DRILL_BOUND_S"
check "with idle clients: failover as fast as without (${IDLE_S}s <= ${BASE_S}s + ${SLACK_S}s)" \
  lt "$IDLE_S" "$(pyj 'import sys; print(float(sys.argv[1]) + float(sys.argv[2]))' "$BASE_S" "$SLACK_S")"
check "edgeplane status answers within 1 s during the fault with idle clients (took ${DURING_T}s)" \
  lt "$DURING_T" 1

check "/healthz is 200 during the fault with idle clients (the loop's heartbeat moves; got ${HEALTHZ:-none})" \
  [ "${HEALTHZ:-}" = 200 ]
wait $IDLE_PID
j=$(cat "$LAB_DIR/idle.json" 2>/dev/null || echo '{}')
diag "idle clients: $j"
check "every idle client was closed by the agent after its 10 s deadline (9.5-13 s)" \
  pyj 'import json,sys
j = json.loads(sys.argv[1]); c = j.get("closed_after_s", [])
sys.exit(0 if j.get("connected") == int(sys.argv[2]) and len(c) == j["connected"] and all(9.5 <= x <= 13 for x in c) else 1)' \
  "$j" "$IDLE_N"

# --- the line buffer and the client cap -------------------------------------
r=$(ctl split 2>&1)
check "a request written in two parts is answered" \
  pyj 'import json,sys; sys.exit(0 if json.loads(sys.argv[1])["ok"] else 1)' "$r"
r=$(ctl flood 40 2>&1)
check "with 40 connections open (cap 32) a new status request is still answered" \
  pyj 'import json,sys; sys.exit(0 if json.loads(sys.argv[1])["ok"] else 1)' "$r"
check "the agent is still running" kill -0 "$LAB_AGENT_PID"
t=$(status_time)
check "edgeplane status answers within 1 s afterwards (took ${t}s)" lt "$t" 1
tap_done
