#!/usr/bin/env bash
# The DNS drills with the agent run as the chart's DaemonSet runs it
# (tests/lib/pod.sh, through lab.sh's LAB_AGENT_RUNNER): blackhole and
# hijack (tests/lib/drills.sh), each also counting relapses (a failback to
# the upstream while the fault lasts); then, while failed over during a
# hijack:
#  - a restart of the agent container (every process of it killed, then
#    started again). dnsmasq and the policy responder are children of the
#    pod's cache container (its spawner server, `--spawner-listen`), so they
#    keep answering and the new agent adopts them: every query of a direct
#    probe (one each 20 ms) must be answered throughout. After the restart
#    the node must still be failed over while the fault lasts, with no
#    relapse. The figures go to build/drills/pod_restart.json;
#  - a restart of the cache container: dnsmasq and the responder die with
#    it; the agent says its spawner is unreachable (log, dns status), lifts
#    the redirect rather than send DNS to a dead cache (issue 10 item 2),
#    and once the container is back reconnects, starts both helpers again
#    and fails over again while the fault lasts. The figures go to
#    build/drills/pod_cache_restart.json;
#  - a stop of the agent container (SIGTERM, the grace period) and a new
#    one: every probe answered throughout.
#
# Relapses: the agent's own probes must reach the real upstream, never the
# redirect to the cache, or they look healthy and the node fails back while
# the fault lasts. The agent used to exempt them by getpid(), which is 1 in a
# PID namespace: then every drill here relapsed (blackhole 1, hijack 1,
# restart 1-3); it now marks its probe sockets (socket storage).
set -u
cd "$(dirname "$0")/../.." || exit 1
export EP_ROOT=${EP_ROOT:-$PWD}
source tests/lib/drills.sh
source tests/install/lib/render.bash
source tests/lib/pod.sh

py() { /usr/bin/python3 -c "$@"; }

# The chart's Localhost profile for the agent container, as a node gets it
# (confinement.installProfiles copies this file to the kubelet's seccomp dir).
POD_SECCOMP_PROFILE=${POD_SECCOMP_PROFILE:-"$EP_ROOT/deploy/helm/edgeplane/files/seccomp/edgeplane-agent.json"}
diag "seccomp: $POD_SECCOMP_PROFILE"
pod_seccomp_required
LAB_AGENT_RUNNER=pod_runner
drill_setup
ok "drill lab up; the agent runs in the pod-shaped sandbox from image ${POD_IID:7:12}, DNS healthy"
diag "rendered: seccompProfile $(pod_flag "$POD_R/agent" seccomp), capabilities $(paste -sd, "$POD_R/agent/caps"), service account token $(pod_flag "$POD_R/agent" automount)"
pod_checks "start"
pod_checks "start" cache
procs=$(pod_procs -v agent) cprocs=$(pod_procs -v cache)
# cst EXPR: EXPR over dns status's "cache" object (c)
cst() { drill_status | py "import json,sys; c=json.load(sys.stdin)['cache']; print($1)" 2>/dev/null; }
# host_pid NSPID: the host PID of a process of the pod (dns status gives the PIDs the agent sees)
host_pid() { local p; for p in $(cat "$POD_CG"/*/cgroup.procs 2>/dev/null); do
  [ "$(awk '/^NSpid/ {print $NF}' "/proc/$p/status" 2>/dev/null)" = "$1" ] && { echo "$p"; return; }; done; }
ppid_of() { awk '{print $4}' "/proc/$1/stat" 2>/dev/null; }
dm_pid=$(cst 'c["dnsmasq"]["pid"]') rs_pid=$(cst 'c["responder"]["pid"]')
dm_host=$(host_pid "$dm_pid") rs_host=$(host_pid "$rs_pid") server=$(pod_cache_pid)
check "the cache container runs dnsmasq and the policy responder ($cprocs), the agent container neither ($procs)" \
  bash -c "[ -n '$dm_host' ] && [ -n '$rs_host' ] && grep -qx '$dm_host' '$POD_CG/cache/cgroup.procs' && grep -qx '$rs_host' '$POD_CG/cache/cgroup.procs' && ! grep -qw dnsmasq <<<'$procs'"
check "dnsmasq and the responder are children of the cache container's spawner server (pid $server), not of the agent container (parents: $(ppid_of "$dm_host"), $(ppid_of "$rs_host"))" \
  bash -c "[ '$(ppid_of "$dm_host")' = '$server' ] && [ '$(ppid_of "$rs_host")' = '$server' ]"
sp=$(cst 'c["spawner"]')
check "dns status: the helpers are started by the cache container's spawner ($sp)" \
  py 'import sys; s=eval(sys.argv[1]); sys.exit(0 if s["kind"] == "remote" and s["socket"] == "/run/edgeplane/spawner.sock" and s["reachable"] else 1)' "$sp"
# A new preload reaches dnsmasq: the agent's SIGHUP crosses into the cache
# container to a process of another user (nobody), which needs CAP_KILL.
pre=$(sed -n 's/^ *preload: *//p' "$POD_R/config/config.yaml" | head -1)
reads() { grep -c "dnsmasq: read $pre" "$LAB_LOG"; }
n_reads=$(reads)
touch "$POD_HOST_STATE/$(basename "$pre")"
check "a touched preload is read again by dnsmasq in the cache container (the agent's SIGHUP reached it; reads: $n_reads, then more)" \
  wait_for 20 bash -c "[ \$(grep -c 'dnsmasq: read $pre' '$LAB_LOG') -gt $n_reads ]"
check "the chart's config sends the socket hooks to the host's cgroup root mount (datapath.cgroup_root: /host/cgroup)" \
  grep -qx '  cgroup_root: /host/cgroup' "$POD_R/config/config.yaml"
check "Kubernetes in-cluster: the agent found the test API server through KUBERNETES_SERVICE_* and the service account mount" \
  grep -q "Kubernetes: reporting DNS state of node lab-node to https://127.0.0.1:$K8S_PORT" "$LAB_LOG"

# relapses T0 T1: times the agent failed back to the upstream between T0 and T1
relapses() { drill_log_count "$1" "$2" 'queries go to the upstreams again'; }

# --- drills -----------------------------------------------------------------------
bh_inject() { T_FAULT=$(date +%s.%N); dns_upstream_blackhole "$LAB_NS_DNS"; }
bh_heal() { T_HEAL=$(date +%s.%N); dns_upstream_heal "$LAB_NS_DNS"; }
hj_inject() { T_FAULT=$(date +%s.%N); drill_hijack; }
hj_heal() { T_HEAL=$(date +%s.%N); drill_hijack_heal; }
declare -A RELAPSES
# Each fault lasts four times failback_after_s: a node whose own probes were
# answered by its cache (the getpid() bug) fails back well within it.
fault_s_saved=$DRILL_FAULT_S
DRILL_FAULT_S=$((4 * DRILL_FAILBACK_S))
for d in blackhole:bh:timeouts hijack:hj:divergent_dropped; do
  IFS=: read -r name fn evidence <<<"$d"
  drill_run "pod_$name" "${fn}_inject" "${fn}_heal" "$evidence"
  RELAPSES[$name]=$(relapses "$T_FAULT" "$T_HEAL")
  check "pod_$name: no relapse: the node stayed failed over while the ${DRILL_FAULT_S} s fault lasted, 4 x failback_after_s (failbacks during the fault: ${RELAPSES[$name]})" \
    [ "${RELAPSES[$name]}" = 0 ]
  wait_for 20 drill_mode_is upstream
  sleep 1
done
DRILL_FAULT_S=$fault_s_saved

# --- container restart while failed over ----------------------------------------------
# A direct probe of the resolver from the app pod: one query every 20 ms, one
# try of 300 ms each, so every moment without an answer is seen.
cat >"$LAB_DIR/gapq.py" <<'EOF'
import json, socket, struct, sys, time, random
server, name, want, seconds, out = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5]
q = lambda qid: struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0" + struct.pack("!HH", 1, 1)
res = []
end = time.time() + seconds
while time.time() < end:
    t = time.time()
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.3)
    qid = random.randrange(65536)
    ok = wrong = False
    try:
        s.sendto(q(qid), (server, 53))
        while True:
            buf, src = s.recvfrom(4096)
            if struct.unpack("!H", buf[:2])[0] == qid:
                ok = True
                wrong = socket.inet_aton(want) not in buf
                break
    except OSError:
        pass
    s.close()
    res.append((t, ok, wrong))
    time.sleep(max(0, 0.02 - (time.time() - t)))
# gaps: runs of unanswered queries [start, seconds until the next answered one, queries]
gaps, start, n = [], None, 0
for t, ok, _ in res + [(time.time(), True, False)]:
    if not ok:
        start, n = (t if start is None else start), n + 1
    elif start is not None:
        gaps.append([round(start, 3), round(t - start, 3), n]); start, n = None, 0
json.dump({"sent": len(res), "unanswered": sum(1 for _, ok, _ in res if not ok),
           "wrong": sum(1 for _, ok, w in res if ok and w), "gaps": gaps}, open(out, "w"))
EOF
read -r gname _ gwant <"$LAB_DIR/canaries"
# the stub resolver loop, as in the drills, for what applications see
ip netns exec "$LAB_NS_APP" "$PY3" "$LAB_ROOT/tests/lib/dnsq.py" $LAB_DNS4 stub 22 "$DRILL_RATE" "$LAB_DIR/restart.stub.json" \
  <"$LAB_DIR/stub.txt" >/dev/null 2>&1 &
STUB=$!; netns_track_pid $STUB
sleep 1
T_FAULT=$(date +%s.%N)
drill_hijack
check "restart: hijack injected, the node failed over" wait_for 10 drill_mode_is cache
sleep 2
ip netns exec "$LAB_NS_APP" "$PY3" "$LAB_DIR/gapq.py" $LAB_DNS4 "$gname" "$gwant" 12 "$LAB_DIR/gap.json" &
GAP=$!; netns_track_pid $GAP
sleep 2
t_kill=$(date +%s.%N)
pod_kill
if pod_runner start; then
  t_ready=$(date +%s.%N)
  ok "restart: the agent container started again ($(py "print(round($t_ready - $t_kill, 2))") s from kill -9 of its processes to ready)"
else
  t_ready=$(date +%s.%N)
  not_ok "restart: the agent container started again"
fi
check "restart: the cache container was untouched: dnsmasq (pid $dm_host) and the responder (pid $rs_host) kept running" \
  bash -c "kill -0 '$dm_host' && kill -0 '$rs_host' && [ '$(ppid_of "$dm_host")' = '$server' ]"
adopted() { [ "$(cst '(c["dnsmasq"]["pid"], c["dnsmasq"]["adopted"], c["responder"]["pid"], c["responder"]["adopted"])')" = "($dm_pid, True, $rs_pid, True)" ]; }
check "restart: the new agent adopted them (dns status: dnsmasq pid $dm_pid and responder pid $rs_pid, both adopted)" \
  wait_for 20 adopted
check "restart: the restarted agent resumed the failover from the datapath" \
  grep -q 'the datapath was already answering from the cache when the agent started' "$LAB_LOG"
pod_checks "restart"
# The fault lasts 6 s after the restart; sample the mode every 0.2 s.
samples=0 upstream=0 unknown=0
for ((i = 0; i < 30; i++)); do
  m=$(drill_mode); samples=$((samples + 1))
  case $m in upstream) upstream=$((upstream + 1));; cache) ;; *) unknown=$((unknown + 1));; esac
  sleep 0.2
done
label=$(drill_label)
T_HEAL=$(date +%s.%N)
drill_hijack_heal
r=$(relapses "$T_FAULT" "$T_HEAL")
check "restart: still failed over while the fault lasts after the restart ($upstream of $samples samples in upstream mode, $unknown unknown; $r failbacks during the fault)" \
  [ "$upstream" = 0 -a "$unknown" = 0 -a "$r" = 0 ]
check "restart: the node label is still set after the restart, during the fault" [ "$label" = true ]
check "restart: failed back to the upstream after healing" wait_for $((DRILL_FAILBACK_S + 20)) drill_mode_is upstream
wait $GAP; wait $STUB
gap=$(cat "$LAB_DIR/gap.json")
stub=$(py 'import json,sys; r=json.load(open(sys.argv[1])); print(json.dumps({k: r[k] for k in ("sent","correct","wrong","failed","correct_share")}))' "$LAB_DIR/restart.stub.json")
diag "restart: direct probe (20 ms, one 300 ms try each): $gap"
diag "restart: stub resolver (1 s timeout, 2 retries): $stub"
# The restart's gap: unanswered runs that begin between the kill and 1 s after
# ready; later ones (a relapse to the hijacked upstream) are reported apart.
RESTART_JSON=$(py '
import json, sys
g, s = json.loads(sys.argv[1]), json.loads(sys.argv[2])
tk, tr = float(sys.argv[3]), float(sys.argv[4])
during = [x for x in g["gaps"] if tk - 0.35 <= x[0] <= tr + 1]
later = [x for x in g["gaps"] if x[0] > tr + 1]
print(json.dumps({"kill_to_ready_s": round(tr - tk, 3),
  "restart_unanswered": sum(x[2] for x in during), "restart_unanswered_s": round(sum(x[1] for x in during), 3),
  "answered_again_s_after_ready": round(max([x[0] + x[1] - tr for x in during] or [0]), 3),
  "probe_sent": g["sent"], "probe_unanswered": g["unanswered"], "later_gaps": len(later),
  "later_unanswered": sum(x[2] for x in later), "probe_wrong": g["wrong"],
  "stub_sent": s["sent"], "stub_failed": s["failed"], "stub_wrong": s["wrong"],
  "relapses": int(sys.argv[5]), "upstream_samples": int(sys.argv[6])}))' \
  "$gap" "$stub" "$t_kill" "$t_ready" "$r" "$upstream")
echo "$RESTART_JSON" >"$DRILL_OUT/pod_restart.json"
diag "restart figures: $RESTART_JSON"
rj() { py 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$RESTART_JSON" "$1"; }
diag "restart: $(rj restart_unanswered) probe queries unanswered, $(rj restart_unanswered_s) s without answers (kill -9 to ready $(rj kill_to_ready_s) s; the cache lives in its own container); stub resolver: $(rj stub_failed) of $(rj stub_sent) failed"
check "restart: DNS answered throughout the agent container's restart: every probe answered ($(rj probe_unanswered) of $(rj probe_sent) unanswered), no stub resolver query failed ($(rj stub_failed) of $(rj stub_sent))" \
  [ "$(rj probe_unanswered)" = 0 -a "$(rj stub_failed)" = 0 ]
check "restart: no forged answer reached the app during the restart (probe wrong $(rj probe_wrong), stub wrong $(rj stub_wrong))" \
  [ "$(rj probe_wrong)" = 0 -a "$(rj stub_wrong)" = 0 ]
# --- cache container restart while failed over -------------------------------------
# dnsmasq and the responder die with their container. The agent must say its
# spawner is unreachable, not redirect DNS to the dead cache (the redirect is
# lifted within the gate's bound), and once the container is back start both
# again through it and fail over again while the fault lasts.
wait_for 20 drill_mode_is upstream
ip netns exec "$LAB_NS_APP" "$PY3" "$LAB_ROOT/tests/lib/dnsq.py" $LAB_DNS4 stub 40 "$DRILL_RATE" "$LAB_DIR/cache.stub.json" \
  <"$LAB_DIR/stub.txt" >/dev/null 2>&1 &
STUB=$!; netns_track_pid $STUB
T_FAULT=$(date +%s.%N)
drill_hijack
check "cache restart: hijack injected, the node failed over" wait_for 10 drill_mode_is cache
dm_pid=$(cst 'c["dnsmasq"]["pid"]') rs_pid=$(cst 'c["responder"]["pid"]')
t_ckill=$(date +%s.%N)
pod_cache_kill
check "cache restart: dnsmasq and the responder died with the cache container (processes left in it: $(pod_procs cache))" \
  [ "$(pod_procs cache)" = 0 ]
sp_reachable() { [ "$(cst 'c["spawner"]["reachable"]')" = "$1" ]; }
check "cache restart: dns status says the spawner is unreachable ($(cst 'c["spawner"]["problem"]'))" wait_for 10 sp_reachable False
spawner_metric() { lab_metrics | grep -qx "edgeplane_cache_spawner_up $1"; }
check "cache restart: the metric says so too (edgeplane_cache_spawner_up 0)" wait_for 10 spawner_metric 0
check "cache restart: the agent logged that the cache's spawner is unreachable" \
  wait_for 10 grep -q "the cache's spawner at /run/edgeplane/spawner.sock is unreachable" "$LAB_LOG"
check "cache restart: the redirect to the dead cache was lifted (queries go to the upstream; the datapath still drops forged answers)" \
  wait_for 15 drill_mode_is upstream
t_lifted=$(date +%s.%N)
pod_cache_start || not_ok "cache restart: the cache container started again"
t_cstart=$(date +%s.%N)
helpers_back() {
  [ "$(cst '(c["dnsmasq"]["state"], c["responder"]["state"], c["dnsmasq"]["pid"] not in (0, '"$dm_pid"'), c["responder"]["pid"] not in (0, '"$rs_pid"'))')" = "('answering', 'answering', True, True)" ]
}
check "cache restart: the agent reconnected and started dnsmasq and the responder again through the new server" \
  wait_for 40 helpers_back
t_back=$(date +%s.%N)
check "cache restart: dns status says the spawner is reachable again" sp_reachable True
check "cache restart: and the metric (edgeplane_cache_spawner_up 1)" wait_for 5 spawner_metric 1
dm_host=$(host_pid "$(cst 'c["dnsmasq"]["pid"]')") server=$(pod_cache_pid)
check "cache restart: the new dnsmasq is a child of the new spawner server (pid $server)" \
  bash -c "[ -n '$dm_host' ] && [ '$(ppid_of "$dm_host")' = '$server' ]"
check "cache restart: failed over again while the fault lasts" wait_for 20 drill_mode_is cache
t_again=$(date +%s.%N)
drill_hijack_heal
check "cache restart: failed back to the upstream after healing" wait_for $((DRILL_FAILBACK_S + 20)) drill_mode_is upstream
wait $STUB
stub=$(py 'import json,sys; r=json.load(open(sys.argv[1])); print(json.dumps({k: r[k] for k in ("sent","correct","wrong","failed","correct_share")}))' "$LAB_DIR/cache.stub.json")
diag "cache restart: stub resolver (1 s timeout, 2 retries): $stub"
CACHE_JSON=$(py '
import json, sys
s = json.loads(sys.argv[1]); tk, tl, ts, tb, ta = map(float, sys.argv[2:7])
print(json.dumps({"kill_to_redirect_lifted_s": round(tl - tk, 3), "start_to_helpers_answering_s": round(tb - ts, 3),
  "start_to_failed_over_again_s": round(ta - ts, 3), "stub_sent": s["sent"], "stub_failed": s["failed"],
  "stub_wrong": s["wrong"]}))' "$stub" "$t_ckill" "$t_lifted" "$t_cstart" "$t_back" "$t_again")
echo "$CACHE_JSON" >"$DRILL_OUT/pod_cache_restart.json"
diag "cache restart figures (build/drills/pod_cache_restart.json): $CACHE_JSON"
check "cache restart: no forged answer reached the app ($(py 'import json,sys; print(json.loads(sys.argv[1])["wrong"])' "$stub") wrong)" \
  py 'import json,sys; sys.exit(0 if json.loads(sys.argv[1])["wrong"] == 0 else 1)' "$stub"
# --- agent container stopped (SIGTERM, as the kubelet does) while failed over ----------
wait_for 20 drill_mode_is upstream
drill_hijack
check "stop: hijack injected, the node failed over" wait_for 10 drill_mode_is cache
ip netns exec "$LAB_NS_APP" "$PY3" "$LAB_DIR/gapq.py" $LAB_DNS4 "$gname" "$gwant" 10 "$LAB_DIR/gap-stop.json" &
GAP=$!; netns_track_pid $GAP
sleep 2
pod_stop
check "stop: the agent container stopped on SIGTERM; the cache container's dnsmasq kept running" \
  bash -c "[ -z '$(pod_pid)' ] && kill -0 '$dm_host'"
pod_runner start || not_ok "stop: the agent container started again"
wait $GAP
drill_hijack_heal
gap=$(cat "$LAB_DIR/gap-stop.json")
diag "stop: direct probe (20 ms, one 300 ms try each): $gap"
check "stop: DNS answered throughout the agent container's stop and start: every probe answered" \
  py 'import json,sys; g=json.loads(sys.argv[1]); sys.exit(0 if g["unanswered"] == 0 and g["wrong"] == 0 and g["sent"] > 0 else 1)' "$gap"
check "stop: failed back to the upstream after healing" wait_for $((DRILL_FAILBACK_S + 20)) drill_mode_is upstream
# What the container's limits refused (capabilities, read-only root), as logged.
grep -E 'Operation not permitted|Permission denied|Read-only file system' "$LAB_LOG" | sort -u -k3 | head -5 |
  sed 's/^/pod: refused in the container: /' | while read -r l; do diag "$l"; done
diag "relapses: blackhole ${RELAPSES[blackhole]}, hijack ${RELAPSES[hijack]}, restart $r"
tap_done
