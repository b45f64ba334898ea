#!/usr/bin/env bash
# Drill: the cache dies. Never redirect to a dead cache:
#  1. the node is failed over (the upstream hijacked on the path) and dnsmasq
#     is killed again and again (kill -9 as soon as it is back, so the
#     supervisor's restarts never get it answering): within the bound
#     (EP_DNS_CACHE_DOWN_LIFT_NS, 2 s) the redirect is lifted and queries go
#     to the upstream again, while the datapath keeps dropping the hijacker's
#     answers for snapshot names (no forged answer reaches the stub); once
#     dnsmasq may live again, the redirect comes back by itself;
#  2. dnsmasq is kept dead while the upstream is healthy, then the upstream
#     is hijacked: the node judges it failed over but refuses to redirect to
#     the dead cache; it redirects once dnsmasq answers again.
set -u
cd "$(dirname "$0")/../.." || exit 1
source tests/lib/drills.sh

drill_setup

RUNDIR=$(dirname "$LAB_SOCK")
STOP=$LAB_DIR/killer.stop
fo() { drill_status | pyj 'import json,sys; f=json.load(sys.stdin)["failover"]; print(eval(sys.argv[1]))' "$1" 2>/dev/null; }
gate_is() { [ "$(fo 'f["cache_gate"]["gate"].split(":")[0]')" = "$1" ]; }
state_is() { [ "$(fo 'f["state"]')" = "$1" ]; }
answering() { [ "$(fo 'f["cache_gate"]["cache_answering"]')" = True ]; }
not_answering() { [ "$(fo 'f["cache_gate"]["cache_answering"]')" = False ]; }

# kill -9 dnsmasq (the process named by its pid file, if it is dnsmasq)
# every 50 ms until $STOP exists.
killer_start() {
  rm -f "$STOP"
  (
    while [ ! -e "$STOP" ]; do
      p=$(cat "$RUNDIR/dnsmasq.pid" 2>/dev/null)
      if [ -n "$p" ] && [ "$(cat /proc/$p/comm 2>/dev/null)" = dnsmasq ]; then
        kill -9 "$p" 2>/dev/null && echo "$(date +%s.%N) $p" >>"$LAB_DIR/killed"
      fi
      sleep 0.05
    done
  ) &
  KILLER=$!
  netns_track_pid $KILLER
}
killer_stop() { touch "$STOP"; wait "$KILLER" 2>/dev/null; }
since() { pyj 'import sys; print("%.2f" % (float(sys.argv[2]) - float(sys.argv[1])))' "$1" "$2"; }

dur=60
report=$DRILL_OUT/cache_dead.stub.json
ip netns exec "$LAB_NS_APP" "$PY3" "$LAB_ROOT/tests/lib/dnsq.py" $LAB_DNS4 stub "$dur" "$DRILL_RATE" "$report" \
  <"$LAB_DIR/stub.txt" >/dev/null 2>&1 &
stub_pid=$!
netns_track_pid $stub_pid
sleep 2

# ---- 1. failed over, then the cache dies -------------------------------------
drill_hijack
check "hijacked upstream: failed over to the cache" wait_for 10 drill_mode_is cache
check "dnsmasq answers before it is killed" wait_for 5 answering
t_kill=$(date +%s.%N)
killer_start
check "dnsmasq killed while failed over: the redirect is lifted (queries go to the upstream)" \
  wait_for 15 drill_mode_is upstream
t_lift=$(date +%s.%N)
t_log=$(drill_log_time "$t_kill" 'redirect lifted')
diag "cache killed -> redirect lifted: $(since "$t_kill" "${t_log:-$t_lift}") s by the agent's log, $(since "$t_kill" "$t_lift") s seen by the CLI (bound: 2 s after the cache is seen down)"
check "dns status says why: lifted, cache not answering, state still failed-over" \
  sh -c "[ \"\$1\" = redirect ] && [ \"\$2\" = False ] && [ \"\$3\" = failed-over ]" _ \
  "$(fo 'f["cache_gate"]["gate"].split(" ")[0]')" "$(fo 'f["cache_gate"]["cache_answering"]')" "$(fo 'f["state"]')"
check "the agent logged the lift" grep -q "redirect lifted" "$LAB_LOG"
sleep 2
check "stays on the upstream while the cache is down" drill_mode_is upstream
killer_stop
t_free=$(date +%s.%N)
check "dnsmasq may live again: the redirect comes back (still failed over)" wait_for 30 drill_mode_is cache
diag "dnsmasq unblocked -> redirected again: $(since "$t_free" "$(date +%s.%N)") s (supervisor backoff after $(wc -l <"$LAB_DIR/killed") kills)"

# ---- 2. a failover refused while the cache is dead ----------------------------
drill_hijack_heal
check "healed: back to the upstream" wait_for $((DRILL_FAILBACK_S + 20)) drill_mode_is upstream
wait_for 10 state_is healthy
killer_start
check "dnsmasq kept dead: the gate sees the cache not answering" wait_for 10 not_answering
drill_hijack
check "hijacked with the cache dead: the node judges it failed over" wait_for 10 state_is failed-over
left=0
for _ in 1 2 3 4 5 6; do drill_mode_is upstream || left=$((left + 1)); sleep 0.5; done
check "...but refuses to redirect to the dead cache (mode sampled 6 times over 3 s)" [ "$left" = 0 ]
check "dns status says the failover was refused" gate_is "failover refused"
check "the agent logged the refusal" grep -q "failover refused" "$LAB_LOG"
killer_stop
t_free=$(date +%s.%N)
check "dnsmasq answers again: the refused failover is applied" wait_for 30 drill_mode_is cache
diag "dnsmasq unblocked -> redirected: $(since "$t_free" "$(date +%s.%N)") s"
drill_hijack_heal
check "healed: back to the upstream" wait_for $((DRILL_FAILBACK_S + 20)) drill_mode_is upstream

wait "$stub_pid" 2>/dev/null
if [ -s "$report" ]; then
  wrong=$(pyj 'import json,sys; print(json.load(open(sys.argv[1]))["wrong"])' "$report")
  diag "stub: $(pyj 'import json,sys; r=json.load(open(sys.argv[1])); print("%d sent, %d correct, %d wrong, %d failed" % (r["sent"], r["correct"], r["wrong"], r["failed"]))' "$report")"
  check "no forged answer reached the stub, through the lifted redirect either (datapath drops)" [ "$wrong" = 0 ]
else
  not_ok "no forged answer reached the stub (the stub wrote no report)"
fi
tap_done
