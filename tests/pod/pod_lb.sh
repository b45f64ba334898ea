#!/usr/bin/env bash
# The load balancer end to end with the agent run as the chart's DaemonSet
# runs it (tests/lib/pod.sh: the image's root, own PID and mount namespaces,
# the node's network namespace, the chart's capabilities, config, mounts and
# a seccomp profile): the agent is PID 1 with exactly the chart's
# capabilities and a seccomp filter; TCP and UDP through the VIPs reach the
# backends; a container restart (kill -9 of PID 1, then started again) keeps
# long-lived connections and new ones are balanced again.
set -u
cd "$(dirname "$0")/../.." || exit 1
export EP_ROOT=${EP_ROOT:-$PWD}
source tests/lib/tap.sh
source tests/lib/netns.sh
source tests/lab/lab.sh
source tests/install/lib/render.bash
source tests/lib/pod.sh

py() { /usr/bin/python3 -c "$@"; }
jget() { py 'import json,sys; j=json.loads(sys.argv[1]); print(eval(sys.argv[2]))' "$1" "$2"; }

lab_up 3 || { not_ok "lab setup"; tap_done; exit 1; }
lab_backends_start 8080 || { not_ok "backends start"; tap_done; exit 1; }
# The chart's Localhost profile for the agent container, as a node gets it
# (confinement.installProfiles copies this file to the kubelet's seccomp dir).
POD_SECCOMP_PROFILE=${POD_SECCOMP_PROFILE:-"$EP_ROOT/deploy/helm/edgeplane/files/seccomp/edgeplane-agent.json"}
diag "seccomp: $POD_SECCOMP_PROFILE"
pod_seccomp_required
# The loader applies what the profile says: a profile denying uname(2) makes uname fail.
printf '{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["uname"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]}' \
  >"$LAB_DIR/deny-uname.json"
out=$("$POD_LOADER" "$LAB_DIR/deny-uname.json" -- uname 2>&1)
check "ep_seccomp_exec: a profile denying uname(2) with ENOSYS makes uname fail ('$out'); the chart's profile lets it run" \
  bash -c "! '$POD_LOADER' '$LAB_DIR/deny-uname.json' -- uname >/dev/null 2>&1 && '$POD_LOADER' '$POD_SECCOMP_PROFILE' -- uname >/dev/null"
lab_config_write
LAB_AGENT_RUNNER=pod_runner
t0=$(date +%s)
if ! lab_agent_start; then
  not_ok "the agent starts in the pod-shaped sandbox"
  { tail -5 "$POD_DIR"/init.log; echo "agent log:"; tail -20 "$LAB_LOG"; } 2>&1 | sed 's/^/# /'
  tap_done; exit 1
fi
ok "the agent starts in the pod-shaped sandbox from image ${POD_IID:7:12} and answers on hostPaths.run ($(( $(date +%s) - t0 )) s)"
diag "rendered: seccompProfile $(pod_flag "$POD_R/agent" seccomp), capabilities $(paste -sd, "$POD_R/agent/caps")"
check "the bpffs init container ran and found the bpffs: '$(head -1 "$POD_INIT_LOG")'" grep -q 'is a bpffs' "$POD_INIT_LOG"

# --- the container's shape, seen from the host --------------------------------
pod_checks "start"
check "pins on the host's bpffs (hostPath /sys/fs/bpf): $POD_HOST_BPFFS/edgeplane" \
  bash -c "ls '$POD_HOST_BPFFS/edgeplane' | grep -q ."

# --- traffic ------------------------------------------------------------------
for fam in 4 6; do
  if [ $fam = 4 ]; then vip=$LAB_VIP4; else vip="[$LAB_VIP6]"; fi
  out=$(lab_load --target "$vip:80" --mode tcp-conns --count 600 --concurrency 16 2>/dev/null)
  check "IPv$fam TCP via the VIP: 600/600 connections, every backend used ($(jget "$out" 'j["backends"]'))" \
    py 'import json,sys; j=json.loads(sys.argv[1]); sys.exit(0 if j["ok"]==600 and len(j["backends"])==3 else 1)' "$out"
  out=$(lab_load --target "$vip:80" --mode udp-rr --count 600 --concurrency 16 --retries 0 2>/dev/null)
  check "IPv$fam UDP via the VIP: 600/600 answered, every backend used ($(jget "$out" 'j["backends"]'))" \
    py 'import json,sys; j=json.loads(sys.argv[1]); sys.exit(0 if j["ok"]==600 and len(j["backends"])==3 else 1)' "$out"
done

# --- container restart ----------------------------------------------------------
HOLD=$LAB_DIR/hold.json
ip netns exec "$LAB_NS_CLIENT" "$LAB_TOOLS/ep_load" --target "$LAB_VIP4:80" --mode hold --conns 30 --duration 120 \
  --interval-ms 100 --ready-file "$LAB_DIR/hold.ready" >"$HOLD" 2>"$LAB_DIR/hold.err" &
H=$!
netns_track_pid $H
check "30 long-lived connections through the VIP established" wait_for 10 test -f "$LAB_DIR/hold.ready"
old=$(pod_pid)
n=$(pod_procs)
check "the container's processes: $(pod_procs -v) (no DNS configured: no dnsmasq)" [ "$n" -ge 1 ]
t0=$(date +%s.%N)
pod_kill
t_dead=$(date +%s.%N)
check "kill -9 of PID 1 ended the container: none of its processes is left ($(pod_procs) in its PID namespace)" \
  bash -c "! kill -0 $old 2>/dev/null && [ $(pod_procs) = 0 ]"
out=$(lab_load --target "$LAB_VIP4:80" --mode tcp-conns --count 100 --concurrency 8 2>/dev/null)
check "with the container gone, new connections are still balanced (100/100: $(jget "$out" 'j["backends"]'))" \
  [ "$(jget "$out" 'j["ok"]')" = 100 ]
if pod_runner start; then
  ok "the container started again ($(py "print(round($(date +%s.%N) - $t_dead, 1))") s from kill to ready)"
else
  not_ok "the container started again"
fi
pod_checks "restart"
check "the restarted agent recovered services and backends from the pins" grep -q recovered "$LAB_LOG"
out=$(lab_load --target "$LAB_VIP4:80" --mode tcp-conns --count 600 --concurrency 16 2>/dev/null)
check "after the restart: 600/600 new connections, every backend used ($(jget "$out" 'j["backends"]'))" \
  py 'import json,sys; j=json.loads(sys.argv[1]); sys.exit(0 if j["ok"]==600 and len(j["backends"])==3 else 1)' "$out"
sleep 1
kill -USR1 $H; wait $H
j=$(cat "$HOLD")
diag "hold: $j"
check "flows kept: all 30 long-lived connections survived the container restart (alive=$(jget "$j" 'j["alive"]'), broken=$(jget "$j" 'j["broken"]'), backend_changed=$(jget "$j" 'j["backend_changed"]'), ping_failures=$(jget "$j" 'j["ping_failures"]'))" \
  py 'import json,sys; j=json.loads(sys.argv[1]); sys.exit(0 if j["alive"]==30 and j["broken"]==0 and j["backend_changed"]==0 and j["ping_failures"]==0 else 1)' "$j"

# --- the kubelet's stop ----------------------------------------------------------
old=$(pod_pid)
t0=$(date +%s.%N)
pod_stop
check "SIGTERM to PID 1 stops the agent within the grace period ($(py "print(round($(date +%s.%N) - $t0, 1))") s)" \
  bash -c "! kill -0 $old 2>/dev/null && grep -q 'SIGTERM received: stopping' '$LAB_LOG'"
out=$(lab_load --target "$LAB_VIP4:80" --mode tcp-conns --count 100 --concurrency 8 2>/dev/null)
check "after the pod stopped, the datapath still balances (100/100)" [ "$(jget "$out" 'j["ok"]')" = 100 ]
tap_done
