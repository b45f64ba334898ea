#!/usr/bin/env bash
# Drill (g): the pod-shaped agent. As in the chart's container, the agent is
# pid 1 of a PID (and mount) namespace of its own, in a cgroup of its own
# below datapath.cgroup_root, so the socket hooks see its sockets like any
# other process's. While failed over they send node processes' DNS to the
# cache; the agent's probes must still reach the real upstream, or they would
# find the cache healthy and fail the node back to the broken upstream
# (a relapse), again and again while the fault lasts.
#
# A hijack, then a blackhole, each lasting 4 x failback_after_s (default 5 s,
# so 20 s): zero failbacks while the fault lasts, one failover and one
# failback per fault, and no probe answered "ok" while the upstream was
# broken. (The getpid() exemption this replaced failed back during every
# fault: in a PID namespace the agent's pid is 1, the kernel's the host's.)
set -u
cd "$(dirname "$0")/../.." || exit 1
DRILL_FAILBACK_S=${DRILL_FAILBACK_S:-5}
DRILL_FAULT_S=$((4 * DRILL_FAILBACK_S))
source tests/lib/drills.sh

if [ "$(id -u)" -ne 0 ]; then
  echo "ok 1 # SKIP needs root (namespaces, BPF, cgroups)"; tap_done; exit 0
fi

# Setup as drill_setup, plus the pod's shape: a cgroup v2 mount outside /sys
# (`ip netns exec` hides the host's), a child cgroup for the agent, and
# datapath.cgroup_root at that child, so the hooks apply to the agent.
pidns_setup() {
  lab_up 1 && drill_dns_prepare || return 1
  CGMNT=$LAB_DIR/cgroup2
  mkdir -p "$CGMNT" && mount -t cgroup2 none "$CGMNT" && _ns_record mount "$CGMNT" || return 1
  CG=$CGMNT/edgeplane-pidns-$$
  mkdir "$CG" || return 1
  # After lab_up's hook (which stops the agent): hooks run in order.
  netns_on_cleanup "for p in \$(cat '$CG/cgroup.procs'); do echo \$p >'$CGMNT/cgroup.procs'; done; rmdir '$CG'"
  LAB_DATAPATH_YAML="  cgroup_root: $CG"
  LAB_AGENT_PIDNS=1 LAB_AGENT_CGROUP=$CG
  lab_config_write && lab_agent_start
}
if ! pidns_setup; then
  not_ok "pod-shaped drill setup"
  tail -20 "$LAB_LOG" 2>/dev/null | sed 's/^/# /'
  tap_done
  exit 1
fi
wait_for 10 drill_mode_is upstream

AGENT=$(lab_agent_pid)
nspid=$(awk '$1 == "NSpid:" {print $NF}' "/proc/$AGENT/status" 2>/dev/null)
check "the agent is pid 1 of a PID namespace of its own (host pid $AGENT)" \
  sh -c "[ '$nspid' = 1 ] && [ \"\$(readlink /proc/$AGENT/ns/pid)\" != \"\$(readlink /proc/self/ns/pid)\" ]"
check "the agent runs in $CG" grep -qx "0::/${CG##*/}" "/proc/$AGENT/cgroup"
check "the socket hooks are attached to that cgroup (datapath.cgroup_root)" \
  grep -q "hooked at the cgroup $CG" "$LAB_LOG"

probes_ok() { drill_status | pyj 'import json,sys; print(json.load(sys.stdin)["failover"]["upstream_health"][0]["probes"]["ok"])'; }
failovers() { lab_metrics | awk '$1 == "edgeplane_dns_failovers_total" {print $2}'; }

# pidns_drill NAME FAULT_FN HEAL_FN EVIDENCE: drill_run with the fault's
# bounds recorded, then the relapse checks.
pidns_drill() {
  local name=$1 evidence=$4 relapses failovers_n failbacks_after probes_during f0 f1
  # Globals: drill_run's own locals would shadow the names inside it.
  PIDNS_FAULT=$2 PIDNS_HEAL=$3
  inject() {
    T_FAULT=$(date +%s.%N)
    $PIDNS_FAULT
    # A probe already answered before the fault may still be read as ok.
    sleep 1
    P_FAULT=$(probes_ok)
  }
  restore() {
    P_HEAL=$(probes_ok)
    T_HEAL=$(date +%s.%N)
    $PIDNS_HEAL
  }
  f0=$(failovers)
  drill_run "$name" inject restore "$evidence"
  f1=$(failovers)
  T_END=$(date +%s.%N)
  relapses=$(drill_log_count "$T_FAULT" "$T_HEAL" 'queries go to the upstreams again')
  failovers_n=$(drill_log_count "$T_FAULT" "$T_HEAL" 'now answered by the local cache')
  failbacks_after=$(drill_log_count "$T_HEAL" "$T_END" 'queries go to the upstreams again')
  probes_during=$(( ${P_HEAL:-0} - ${P_FAULT:-0} ))
  diag "$name: ${DRILL_FAULT_S}s of fault (failback_after_s $DRILL_FAILBACK_S): relapses $relapses, failovers $failovers_n (metric ${f0:-?} -> ${f1:-?}), probes ok during the fault $probes_during, failbacks after the heal $failbacks_after"
  pyj 'import json,sys
d = json.load(open(sys.argv[1]))
d.update({"agent_pid_namespace": "own, pid 1", "fault_s": int(sys.argv[2]), "relapses": int(sys.argv[3]),
          "failovers_during_fault": int(sys.argv[4]), "probes_ok_during_fault": int(sys.argv[5]),
          "failbacks_after_heal": int(sys.argv[6])})
json.dump(d, open(sys.argv[1], "w"), indent=1)' "$DRILL_OUT/$name.json" "$DRILL_FAULT_S" "$relapses" \
    "$failovers_n" "$probes_during" "$failbacks_after"
  check "$name: zero relapses: no failback while the ${DRILL_FAULT_S}s fault lasted (got $relapses)" \
    [ "$relapses" = 0 ]
  check "$name: one failover during the fault (got $failovers_n; edgeplane_dns_failovers_total ${f0:-?} -> ${f1:-?})" \
    sh -c "[ '$failovers_n' = 1 ] && [ '${f1:-x}' = '$(( ${f0:-0} + 1 ))' ]"
  check "$name: the agent's probes kept asking the real upstream: none answered ok during the fault (got $probes_during)" \
    [ "$probes_during" = 0 ]
  check "$name: failed back exactly once after the heal (got $failbacks_after)" [ "$failbacks_after" = 1 ]
}

pidns_drill pidns_hijack drill_hijack drill_hijack_heal divergent_dropped
# Healthy again before the next fault.
wait_for 10 drill_mode_is upstream
sleep 2
pidns_drill pidns_blackhole "dns_upstream_blackhole $LAB_NS_DNS" "dns_upstream_heal $LAB_NS_DNS" timeouts
tap_done
