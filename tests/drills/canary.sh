#!/usr/bin/env bash
# Canary drills: steady load (CANARY_RATE new connections/s plus long-lived
# ones) to services with 3 stable backends and 1 canary at 10%. At a known
# instant the canary (a) refuses connections, (b) drops SYNs silently,
# (c) answers HTTP 500; each run measures onset -> rollback and the
# connections that failed, and asserts the rollback. A control run where a
# stable backend refuses asserts no rollback; a ramp run reaches 100% with a
# healthy canary, and another rolls back at the step where the fault starts.
# Figures: build/drills/canary_*.json (tests/bench/canary_rollback.sh repeats
# the runs for a distribution).
set -u
cd "$(dirname "$0")/../.." || exit 1
source tests/lib/canary_drills.sh

canary_setup
check "agent up with 3 services watched by the flow health tap" \
  bash -c "[ \"\$(ip netns exec $LAB_NS_NODE $LAB_CLI_BIN --socket $LAB_SOCK canary status -o json | /usr/bin/python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')\" = 3 ]"

rolled() { # NAME: asserts a rollback happened with figures
  check "$1: rolled back (onset -> rollback $(canary_json 'd["onset_to_rollback_ms"]') ms, $(canary_json 'd["failed"]') of $(canary_json 'd["connections"]') connections failed)" \
    [ "$(canary_json 'd["rolled_back"]')" = True ]
  check "$1: the share is 0 after the rollback" [ "$(canary_json 'd["share_percent"]')" = 0.0 ]
}

inj_refuse() { fault_refuse 4; }
inj_drop() { fault_drop 4; }
heal4() { fault_heal 4; }
canary_run refuse web inj_refuse heal4
rolled refuse
check "refuse: the decision names the figures" bash -c "grep -q 'canary .* failed' <<<'$(canary_json 'd["decision"]')'"
check "refuse: the share stays 0 with the canary healed (held until an operator sets it)" \
  bash -c "sleep 0.5; [ \"\$(ip netns exec $LAB_NS_NODE $LAB_CLI_BIN --socket $LAB_SOCK canary status web -o json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)[0][\"share_percent\"])')\" = 0.0 ]"
has_rollback_event() {
  local i
  for i in $(seq 1 30); do
    [[ " $(drill_events) " == *" CanaryRollback "* ]] && return 0
    sleep 0.1
  done
  return 1
}
check "refuse: a CanaryRollback Event reached the Kubernetes API" has_rollback_event
check "canary status (text) says rolled back, with the rule and the decision" \
  bash -c "ip netns exec $LAB_NS_NODE $LAB_CLI_BIN --socket $LAB_SOCK canary status web | grep -q 'ROLLED BACK' && ip netns exec $LAB_NS_NODE $LAB_CLI_BIN --socket $LAB_SOCK canary status web | grep -q 'last decision: rollback: canary'"
check "operator sets 10% again" lab_cli canary set web 10
check "metrics: canary_rollbacks_total{service=\"web\"} 1" bash -c "ip netns exec $LAB_NS_NODE curl -s http://127.0.0.1:9464/metrics | grep -q '^edgeplane_canary_rollbacks_total{service=\"web\"} 1$'"
check "metrics: refused flows counted for the canary backend" bash -c "ip netns exec $LAB_NS_NODE curl -s http://127.0.0.1:9464/metrics | grep -E '^edgeplane_canary_flow_failures_total\{service=\"web\",backend=\"10.77.14.2:8080\",reason=\"refused\"\} [1-9]'"

canary_run drop web inj_drop heal4
rolled drop
check "drop: the reason is unanswered SYNs" bash -c "ip netns exec $LAB_NS_NODE curl -s http://127.0.0.1:9464/metrics | grep -E '^edgeplane_canary_flow_failures_total\{service=\"web\",backend=\"10.77.14.2:8080\",reason=\"syn_unanswered\"\} [1-9]'"
lab_cli canary set web 10 >/dev/null

canary_run http500 webh fault_http500 heal4
rolled http500
check "http500: 5xx counted for the canary backend" bash -c "ip netns exec $LAB_NS_NODE curl -s http://127.0.0.1:9464/metrics | grep -E '^edgeplane_canary_flow_failures_total\{service=\"webh\",backend=\"10.77.14.2:8081\",reason=\"http_5xx\"\} [1-9]'"

# control: a stable backend refuses; stable's failures never roll back
inj_stable() { fault_refuse 1; }
heal1() { fault_heal 1; }
CANARY_WAIT_S=3 canary_run control web inj_stable heal1 none
check "control (stable be1 refuses): no rollback" [ "$(canary_json 'd["rolled_back"]')" = False ]
check "control: the canary keeps its 10%" [ "$(canary_json 'd["share_percent"]')" = 10.0 ]
check "control: the stable backend's refusals were seen" bash -c "ip netns exec $LAB_NS_NODE curl -s http://127.0.0.1:9464/metrics | grep -E '^edgeplane_canary_flow_failures_total\{service=\"web\",backend=\"10.77.11.2:8080\",reason=\"refused\"\} [1-9]'"

# ramp: healthy -> 100%
ramp_wait() { # reaches step 3 (100%) under load
  local end=$(( $(date +%s) + 4 * CANARY_STEP_S + 6 ))
  while [ "$(date +%s)" -lt "$end" ]; do
    [ "$(canary_field ramp 's["share_percent"]')" = 100.0 ] && return 0
    sleep 0.2
  done
  return 1
}
lab_load --target 10.77.100.3:82 --mode crr --conns 4 --rate "$CANARY_RATE" --duration $((4 * CANARY_STEP_S + 6)) \
  --timeout-ms 500 >"$LAB_DIR/ramp_up.json" 2>/dev/null &
rl=$!
netns_track_pid $rl
check "ramp: a healthy canary reaches 100% step by step" ramp_wait
kill $rl 2>/dev/null; wait $rl 2>/dev/null
check "ramp: the log shows each step" bash -c "grep -c 'service ramp: ramp: step' '$LAB_LOG' | grep -qx 2"

# ramp with a fault at step 2: back to step 1, resume, fault once at 50%
lab_cli canary set ramp 10 >/dev/null
check "ramp: set back to 10% by hand, then resumed" bash -c "ip netns exec $LAB_NS_NODE $LAB_CLI_BIN --socket $LAB_SOCK canary set ramp resume >/dev/null"
at_step2() {
  local end=$(( $(date +%s) + 2 * CANARY_STEP_S + 5 ))
  while [ "$(date +%s)" -lt "$end" ]; do
    if [ "$(canary_field ramp 's["step"]')" = 2 ]; then
      date +%s.%N >"$LAB_DIR/fault_t0"
      fault_refuse 4
      return
    fi
    sleep 0.05
  done
}
CANARY_WAIT_S=$((2 * CANARY_STEP_S + 6)) canary_run rampfault ramp at_step2 heal4
rolled rampfault
check "rampfault: rolled back at the step where the fault started (step 2 of 3)" \
  bash -c "grep -q 'at ramp step 2 of 3' <<<'$(canary_json 'd["decision"]')'"

# restart: the share and the rollback survive; nothing moves by itself
# (read until the value shows or 5 s pass: one read right after start-up
# raced a busy machine once; a wrong value is still a failure, and says so)
lab_agent_stop
lab_agent_start
field_is() { [ "$(canary_field "$1" "$2")" = "$3" ]; }
restart_check() { # DESCRIPTION SVC EXPR WANT
  if wait_for 5 field_is "$2" "$3" "$4"; then ok "$1"; else
    not_ok "$1"
    diag "restart: $2 $3 is '$(canary_field "$2" "$3")', want '$4'; $(canary_status "$2")"
  fi
}
restart_check "restart: web keeps its share (10%)" web 's["share_percent"]' 10.0
restart_check "restart: ramp stays rolled back at 0" ramp 'str(s["share_percent"]) + " " + str(s["rolled_back"])' "0.0 True"
tap_done
