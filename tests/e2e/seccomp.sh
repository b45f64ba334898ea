#!/usr/bin/env bash
# End to end: the agent's self-confinement (agent/core/confine.c). In the lab
# with DNS failover and the local cache on:
#   - every thread of the running agent is under a seccomp filter
#     (/proc/PID/task/*/status "Seccomp: 2"), after traffic, a reload that
#     changes services, a dnsmasq restart (spawned, not forked by the agent);
#   - dnsmasq does not run under the agent's filter (Seccomp: 0 here: it was
#     started by the spawner, forked before the filter), and the spawner is
#     unconfined too;
#   - EP_SECCOMP_SELFTEST=1 makes the agent call personality() from a thread
#     after start-up: one error line names the call, and the agent dies by
#     SIGSYS (exit status 159);
#   - --no-seccomp leaves the agent unconfined and says so.
set -u
cd "$(dirname "$0")/../.."
source tests/lib/tap.sh
source tests/lib/netns.sh
source tests/lab/lab.sh

seccomp_of() { awk '/^Seccomp:/ {print $2}' "/proc/$1/status" 2>/dev/null; }
# "2 2 2 ..." for every thread of PID
threads_seccomp() { for t in /proc/"$1"/task/*; do awk '/^Seccomp:/ {printf "%s ", $2}' "$t/status"; done; }
dnsmasq_pid() {
  lab_cli dns status -o json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["cache"]["dnsmasq"]["pid"])'
}
spawner_pid() {
  local p
  for p in $(ip netns pids "$LAB_NS_NODE"); do
    [ "$(cat /proc/$p/comm 2>/dev/null)" = ep-spawner ] && { echo "$p"; return 0; }
  done
  return 1
}
answers_health() {
  printf 'edgeplane-health.invalid A\n' |
    ip netns exec "$LAB_NS_NODE" "$PY3" tests/lib/dnsq.py "$LAB_CACHE_IP" batch | grep -q '"addrs": \["127.0.0.2"\]'
}

lab_up 2 || { not_ok "lab setup"; tap_done; exit 1; }
lab_dns_up 50 || { not_ok "lab upstream DNS (nsd)"; tap_done; exit 1; }
lab_backends_start 8080 || { not_ok "backends"; tap_done; exit 1; }
ip netns exec "$LAB_NS_NODE" "$LAB_CLI_BIN" cache build --domains "$LAB_ZONE_DIR/domains.txt" \
  --resolver $LAB_DNS4 --out "$LAB_DIR/preload.hosts" --quiet 2>/dev/null
LAB_EXTRA_YAML=$(lab_cache_yaml 0)
lab_config_write
lab_agent_start || { not_ok "agent start"; tap_done; exit 1; }
AGENT=$(lab_agent_pid)
check "the agent logs its confinement and the size of its allow-list" \
  grep -qE "seccomp: confined to [0-9]+ system calls" "$LAB_LOG"
diag "$(grep -oE "seccomp: confined to [0-9]+ system calls" "$LAB_LOG" | head -1)"
check "agent (pid $AGENT): Seccomp: 2 (filter mode)" [ "$(seccomp_of "$AGENT")" = 2 ]
check "every agent thread is filtered (TSYNC): $(threads_seccomp "$AGENT")" \
  bash -c "! grep -qv '^2\$' <<<\"\$(echo '$(threads_seccomp "$AGENT")' | tr ' ' '\n' | sed '/^\$/d')\""
check "dnsmasq answers" wait_for 10 answers_health
DM=$(dnsmasq_pid)
check "dnsmasq (pid $DM) is not under the agent's filter (Seccomp: $(seccomp_of "$DM"))" [ "$(seccomp_of "$DM")" = 0 ]
SP=$(spawner_pid)
check "the spawner (pid ${SP:-none}) runs unconfined beside the agent, as 'edgeplane-agent: spawner'" \
  bash -c "[ -n '$SP' ] && [ \"\$(awk '/^Seccomp:/ {print \$2}' /proc/$SP/status)\" = 0 ] && tr '\\0' ' ' </proc/$SP/cmdline | grep -q '^edgeplane-agent: spawner'"
check "dnsmasq is the spawner's child, not the agent's" \
  [ "$(awk '/^PPid:/ {print $2}' /proc/"$DM"/status)" = "$SP" ]

# Run time under the filter: traffic, CLI, metrics, a reload that changes
# services, dnsmasq killed and restarted through the spawner.
out=$(lab_load --target "$LAB_VIP4:80" --mode tcp-conns --count 200 --concurrency 8 2>/dev/null)
check "traffic through the datapath" grep -q '"failed":0' <<<"$out"
for c in status services "dns status"; do lab_cli $c -o json >/dev/null; done
lab_metrics >/dev/null
LAB_EXTRA_YAML=$(lab_cache_yaml 0) LAB_N=1 lab_config_write "$LAB_CONFIG"
lab_agent_signal HUP
check "reload applied under the filter" wait_for 10 grep -q "config reloaded (SIGHUP)" "$LAB_LOG"
grep 'seccomp: forbidden' "$LAB_LOG" | sed 's/^/# /'
kill -9 "$DM"
check "dnsmasq killed: restarted through the spawner and answering" \
  wait_for 15 bash -c "p=\$(ip netns exec $LAB_NS_NODE $LAB_CLI_BIN --socket $LAB_SOCK dns status -o json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)[\"cache\"][\"dnsmasq\"][\"pid\"])'); [ -n \"\$p\" ] && [ \"\$p\" != 0 ] && [ \"\$p\" != $DM ]"
check "dnsmasq answers again" wait_for 10 answers_health
DM2=$(dnsmasq_pid)
check "the new dnsmasq (pid $DM2) is not under the agent's filter either" [ "$(seccomp_of "$DM2")" = 0 ]
check "the agent is still alive and confined" [ "$(seccomp_of "$AGENT")" = 2 ]
check "no seccomp violation in the log" bash -c "! grep -q 'seccomp: forbidden' '$LAB_LOG'"
lab_agent_stop
check "SIGTERM: clean exit 0 under the filter (status ${LAB_AGENT_RC:-?})" [ "${LAB_AGENT_RC:-1}" = 0 ]
check "the spawner exits with the agent" bash -c "! kill -0 ${SP:-0} 2>/dev/null || ! grep -q ep-spawner /proc/${SP:-0}/comm 2>/dev/null"

# --- a violation: logged by name, the agent dies -----------------------------
: >"$LAB_LOG"
LAB_AGENT_WAIT=5 EP_SECCOMP_SELFTEST=1 lab_agent_start 2>/dev/null
for _ in $(seq 1 50); do kill -0 "$LAB_AGENT_PID" 2>/dev/null || break; sleep 0.1; done
wait "$LAB_AGENT_PID" 2>/dev/null; rc=$?
LAB_AGENT_PID=
line=$(grep "seccomp: forbidden system call" "$LAB_LOG" | head -1)
diag "violation: $line"
check "the violation is logged as an error naming the system call (personality)" \
  grep -qE '^[0-9T:.Z-]+ error seccomp: forbidden system call personality \(nr [0-9]+\) in thread [0-9]+' <<<"$line"
check "the agent died by SIGSYS (status $rc, 159 = 128 + SIGSYS)" [ "$rc" = 159 ]

LAB_AGENT_ARGS="--log-format json" LAB_AGENT_WAIT=5 EP_SECCOMP_SELFTEST=1 lab_agent_start 2>/dev/null
for _ in $(seq 1 50); do kill -0 "$LAB_AGENT_PID" 2>/dev/null || break; sleep 0.1; done
wait "$LAB_AGENT_PID" 2>/dev/null; rc=$?
LAB_AGENT_PID=
line=$(grep '"seccomp: forbidden system call' "$LAB_LOG" | tail -1)
check "--log-format json: the violation line is a JSON object with level error (status $rc)" \
  bash -c "[ $rc = 159 ] && /usr/bin/python3 -c 'import json,sys; o=json.loads(sys.argv[1]); assert o[\"level\"]==\"error\" and \"personality\" in o[\"msg\"] and o[\"ts\"].endswith(\"Z\")' '$line'"

# --- --no-seccomp: off, and says so -------------------------------------------
: >"$LAB_LOG"
LAB_AGENT_ARGS="--no-seccomp" EP_SECCOMP_SELFTEST=1 lab_agent_start || not_ok "agent start with --no-seccomp"
AGENT=$(lab_agent_pid)
check "--no-seccomp: Seccomp: 0 and a warning in the log" \
  bash -c "[ \"\$(awk '/^Seccomp:/ {print \$2}' /proc/$AGENT/status)\" = 0 ] && grep -q 'seccomp: off (--no-seccomp)' '$LAB_LOG'"
check "--no-seccomp: the selftest call goes through and the agent keeps running" \
  bash -c "grep -q 'the filter is off' '$LAB_LOG' && kill -0 $AGENT"
lab_agent_stop
tap_done
