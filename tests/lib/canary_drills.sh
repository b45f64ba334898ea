# Canary drills: the lab with 3 stable backends and 1 canary, the agent with
# the flow health tap and the rollback rule, steady load (new connections at
# a fixed rate plus long-lived ones), a fault injected in one backend at a
# known instant, and the figures each run reports. Sourcing it also sources
# tests/lib/tap.sh, tests/lib/netns.sh and tests/lab/lab.sh.
#
#   canary_setup                      lab, backends, agent; exits on failure
#   canary_run NAME SVC INJECT HEAL   load + fault; sets CANARY_JSON (and
#                                     build/drills/canary_NAME.json): rolled_back,
#                                     onset_to_rollback_ms, failed, ...
#
# Services (VIPs 10.77.100.1-3):
#   web   :80 -> :8080 tcp, be1-3 stable, be4 canary 10%
#   webh  :81 -> :8081 tcp, canary.http: true; be4 runs tests/drills/canary_http.py
#   ramp  :82 -> :8080 tcp, steps [10, 50, 100], step_interval_s CANARY_STEP_S
# The lab has one client address, so the split is per flow (sticky: flow).
# The rule: window 50 ms, min_samples 4, max_failure_ratio 0.2, margin 0.1.
#
# CANARY_RATE new connections/s (default 300), CANARY_HOLD long-lived ones
# (default 20), CANARY_WAIT_S how long a run waits for a rollback (default 4).

_cdrills_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
declare -F tap_done >/dev/null || source "$_cdrills_dir/tests/lib/tap.sh"
declare -F netns_add >/dev/null || source "$_cdrills_dir/tests/lib/netns.sh"
declare -F lab_up >/dev/null || source "$_cdrills_dir/tests/lab/lab.sh"

CANARY_RATE=${CANARY_RATE:-300}
CANARY_HOLD=${CANARY_HOLD:-20}
CANARY_WAIT_S=${CANARY_WAIT_S:-4}
CANARY_STEP_S=${CANARY_STEP_S:-1}
CANARY_OUT=${CANARY_OUT:-${EP_BUILD:-$LAB_ROOT/build}/drills}
mkdir -p "$CANARY_OUT"

cpy() { /usr/bin/python3 -c "$@"; }

canary_services_yaml() {
  local i p svc vip port bport extra
  for svc in web webh ramp; do
    case $svc in
      web) vip=10.77.100.1 port=80 bport=8080 extra="      percent: 10" ;;
      webh) vip=10.77.100.2 port=81 bport=8081 extra=$'      percent: 10\n      http: true' ;;
      ramp) vip=10.77.100.3 port=82 bport=8080
        extra=$'      steps: [10, 50, 100]\n'"      step_interval_s: $CANARY_STEP_S" ;;
    esac
    echo "  - name: $svc"
    echo "    vip: $vip"
    echo "    port: $port"
    echo "    backends:"
    for i in 1 2 3 4; do
      p=""
      [ "$i" = 4 ] && p=", canary: true"
      echo "      - {address: $(lab_be4 "$i"), port: $bport$p}"
    done
    echo "    canary:"
    echo "      sticky: flow"
    echo "$extra"
    echo "      rollback: {enabled: true, window_ms: 50, min_samples: 4, max_failure_ratio: 0.2, margin: 0.1}"
  done
}

canary_setup() {
  local i
  lab_up 4 || { not_ok "lab up"; tap_done; exit 1; }
  for i in 1 2 3; do
    netns_bg_log "$LAB_DIR/be$i.log" "${LAB_NS_BE[$i]}" "$LAB_TOOLS/ep_echo" --id "be$i" \
      --port 8080 --port 8081 >/dev/null
  done
  netns_bg_log "$LAB_DIR/be4.log" "${LAB_NS_BE[4]}" "$LAB_TOOLS/ep_echo" --id be4 --port 8080 >/dev/null
  CANARY_FAULT_FILE=$LAB_DIR/http500
  netns_bg_log "$LAB_DIR/be4h.log" "${LAB_NS_BE[4]}" /usr/bin/python3 \
    "$LAB_ROOT/tests/drills/canary_http.py" be4 8081 "$CANARY_FAULT_FILE" >/dev/null
  for i in 1 2 3 4; do
    wait_for 5 grep -q ready "$LAB_DIR/be$i.log" || { not_ok "backend be$i started"; tap_done; exit 1; }
  done
  wait_for 5 grep -q ready "$LAB_DIR/be4h.log" || { not_ok "HTTP canary started"; tap_done; exit 1; }
  # The Kubernetes test API server gets the rollback Events.
  source "$LAB_ROOT/tests/lib/drills.sh"
  drill_k8s_up || { not_ok "Kubernetes test API server"; tap_done; exit 1; }
  LAB_EXTRA_YAML="kubernetes:
  enabled: true
  api_server: https://127.0.0.1:$K8S_PORT
  token_file: $K8S_DIR/token
  ca_file: $K8S_CA"
  LAB_SERVICES_YAML=$(canary_services_yaml)
  lab_config_write
  lab_agent_start || { not_ok "agent started"; tap_done; exit 1; }
  # nftables in the backends' namespaces injects the faults
  for i in 1 4; do
    ip netns exec "${LAB_NS_BE[$i]}" nft add table inet drill &&
      ip netns exec "${LAB_NS_BE[$i]}" nft add chain inet drill in '{ type filter hook input priority 0; }' ||
      { not_ok "nftables in be$i"; tap_done; exit 1; }
  done
}

canary_status() { lab_cli canary status "$1" -o json 2>/dev/null; }
# canary_field SVC EXPR: EXPR over the service's status object s
canary_field() { canary_status "$1" | cpy "import json,sys; s=json.load(sys.stdin)[0]; print($2)"; }
canary_rolled_back() { [ "$(canary_field "$1" 's["rolled_back"]')" = True ]; }

# Faults, in a backend's namespace (be<i>): refuse (RST to SYN), drop SYNs
# silently, HTTP 500 (the canary's HTTP server only), and heal.
canary_nft() { ip netns exec "${LAB_NS_BE[$1]}" nft "${@:2}"; }
fault_refuse() { canary_nft "$1" add rule inet drill in tcp dport '{8080, 8081}' tcp flags syn reject with tcp reset; }
fault_drop() { canary_nft "$1" add rule inet drill in tcp dport '{8080, 8081}' tcp flags syn drop; }
fault_heal() { canary_nft "$1" flush chain inet drill in; rm -f "$CANARY_FAULT_FILE"; }
fault_http500() { touch "$CANARY_FAULT_FILE"; }

# canary_run NAME SVC INJECT HEAL [EXPECT]: EXPECT rollback (default) or none.
canary_run() {
  local name=$1 svc=$2 inject=$3 heal=$4 expect=${5:-rollback}
  local vip port crr_pid hold_pid t0 end out r0 dur=$((CANARY_WAIT_S + 2))
  case $svc in web) vip=10.77.100.1 port=80 ;; webh) vip=10.77.100.2 port=81 ;; ramp) vip=10.77.100.3 port=82 ;; esac
  r0=$(canary_field "$svc" 's["rollbacks"]')
  lab_load --target "$vip:$port" --mode hold --conns "$CANARY_HOLD" --duration "$dur" \
    --interval-ms 200 >"$LAB_DIR/$name.hold.json" 2>/dev/null &
  hold_pid=$!
  lab_load --target "$vip:$port" --mode crr --conns 8 --rate "$CANARY_RATE" --duration "$dur" \
    --timeout-ms 500 >"$LAB_DIR/$name.crr.json" 2>/dev/null &
  crr_pid=$!
  netns_track_pid $hold_pid
  netns_track_pid $crr_pid
  sleep 1
  rm -f "$LAB_DIR/fault_t0"
  t0=$(date +%s.%N)
  $inject
  # An inject that waits for a moment of its own (a ramp step) says when.
  [ -s "$LAB_DIR/fault_t0" ] && t0=$(cat "$LAB_DIR/fault_t0")
  end=$(( $(date +%s) + CANARY_WAIT_S ))
  while [ "$(date +%s)" -lt "$end" ]; do
    canary_rolled_back "$svc" && [ "$expect" = rollback ] && break
    sleep 0.05
  done
  wait $crr_pid $hold_pid 2>/dev/null
  out=$(canary_status "$svc" | cpy '
import json, sys
s = json.load(sys.stdin)[0]
crr = json.load(open(sys.argv[1])) if open(sys.argv[1]).read().strip() else {}
hold = json.load(open(sys.argv[2])) if open(sys.argv[2]).read().strip() else {}
t0 = float(sys.argv[3])
dec = s.get("last_decision") or {}
rolled = s["rolled_back"] and s["rollbacks"] > int(sys.argv[5])
d = {
  "drill": sys.argv[4], "service": s["service"], "rolled_back": rolled,
  "onset_to_rollback_ms": round((dec["at"] - t0) * 1000, 1) if rolled else None,
  "decision": dec.get("what"),
  "connections": crr.get("transactions", 0) + crr.get("failed", 0), "failed": crr.get("failed"),
  "rate": int(sys.argv[6]), "long_lived": hold.get("conns"), "long_lived_broken": hold.get("broken"),
  "share_percent": s["share_percent"], "step": s.get("step"),
}
json.dump(d, open(sys.argv[7], "w"), indent=1)
print(json.dumps(d))' "$LAB_DIR/$name.crr.json" "$LAB_DIR/$name.hold.json" "$t0" "$name" "$r0" \
    "$CANARY_RATE" "$CANARY_OUT/canary_$name.json")
  $heal
  CANARY_JSON=$out
  diag "$name: $out"
}

canary_json() { cpy "import json,sys; d=json.loads(sys.argv[1]); print($1)" "$CANARY_JSON"; }
