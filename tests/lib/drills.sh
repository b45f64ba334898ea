# DNS failover drills: the lab with an upstream resolver behind the WAN, a
# rogue resolver, an app pod running a stub-resolver loop, the agent with
# DNS failover and the Kubernetes client (against the API-faithful test server
# in tests/k8s), a fault injected and healed, and the figures every drill
# reports. Sourcing it also sources tests/lib/tap.sh, tests/lib/netns.sh and
# tests/lab/lab.sh where the caller has not.
#
#   drill_setup                 everything up, agent healthy; on failure a TAP
#                               failure with the agent's last log lines, and exit
#   drill_dns_prepare           the DNS part of it on a lab already up (the demo)
#   drill_run NAME INJECT HEAL  stub loop + fault + heal; figures in DRILL_* and
#                               build/drills/NAME.json; TAP checks
#
# DRILL_FAULT_S (default 6) seconds of fault, DRILL_RATE (default 60) queries/s,
# DRILL_FAILBACK_S (default 3) dns.failover.failback_after_s for the drills.

_drills_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
declare -F tap_done >/dev/null || source "$_drills_dir/tests/lib/tap.sh"
declare -F netns_add >/dev/null || source "$_drills_dir/tests/lib/netns.sh"
declare -F lab_up >/dev/null || source "$_drills_dir/tests/lab/lab.sh"

DRILL_FAULT_S=${DRILL_FAULT_S:-6}
DRILL_RATE=${DRILL_RATE:-60}
DRILL_FAILBACK_S=${DRILL_FAILBACK_S:-3}
DRILL_OUT=${DRILL_OUT:-${EP_BUILD:-$LAB_ROOT/build}/drills}
mkdir -p "$DRILL_OUT"

pyj() { /usr/bin/python3 -c "$@"; }

drill_status() { lab_cli dns status -o json 2>/dev/null; }
drill_mode() { drill_status | pyj 'import json,sys; print(json.load(sys.stdin)["failover"]["mode"])' 2>/dev/null; }
drill_mode_is() { [ "$(drill_mode)" = "$1" ]; }

# Kubernetes test API server in the node namespace (loopback).
drill_k8s_up() {
  local ready
  K8S_DIR=$LAB_DIR/k8s
  mkdir -p "$K8S_DIR"
  echo "drill-token-$$" >"$K8S_DIR/token"
  netns_bg_log "$K8S_DIR/server.log" "$LAB_NS_NODE" /usr/bin/python3 "$LAB_ROOT/tests/k8s/fake_apiserver.py" \
    --listen 127.0.0.1 --port 0 --control-port 0 --node lab-node --token-file "$K8S_DIR/token" \
    --allow '*' --workdir "$K8S_DIR" >/dev/null
  wait_for 10 grep -q '^ready' "$K8S_DIR/server.log" || { echo "k8s test server did not start" >&2; return 1; }
  ready=$(grep '^ready' "$K8S_DIR/server.log" | head -1)
  K8S_PORT=$(awk '{print $2}' <<<"$ready")
  K8S_CTL=$(awk '{print $3}' <<<"$ready")
  K8S_CA=$(awk '{print $4}' <<<"$ready")
}

# Is the dns-unhealthy label on the node in the test API server? (true/false)
drill_label() {
  ip netns exec "$LAB_NS_NODE" curl -s --max-time 3 "http://127.0.0.1:$K8S_CTL/_control/state" |
    pyj 'import json,sys
s = json.load(sys.stdin)
n = [x for x in s["nodes"] if x["metadata"]["name"] == "lab-node"][0] if isinstance(s.get("nodes"), list) else s["nodes"]["lab-node"]
print("true" if n["metadata"].get("labels", {}).get("edgeplane.io/dns-unhealthy") == "true" else "false")'
}

drill_events() {
  ip netns exec "$LAB_NS_NODE" curl -s --max-time 3 "http://127.0.0.1:$K8S_CTL/_control/state" |
    pyj 'import json,sys
s = json.load(sys.stdin)
ev = s.get("events", [])
if isinstance(ev, dict): ev = list(ev.values())
print(" ".join(e.get("reason", "?") for e in ev))'
}

drill_setup() {
  if ! { lab_up 1 && drill_dns_prepare && lab_config_write && lab_agent_start; }; then
    not_ok "drill setup"
    tail -20 "$LAB_LOG" 2>/dev/null | sed 's/^/# /'
    tap_done
    exit 1
  fi
  # Healthy before any drill starts: probes have passed.
  wait_for 10 drill_mode_is upstream
}

# drill_dns_prepare: on a lab that is up, everything DNS: upstream, rogue,
# app pod, backends on 8080, the Kubernetes test server, the preload, the
# canaries and the stub's name list; sets LAB_EXTRA_YAML. The caller writes
# the config and starts the agent.
drill_dns_prepare() {
  lab_dns_up "${DRILL_NAMES:-1000}" || return 1
  lab_rogue_up || return 1
  lab_app_up || return 1
  lab_backends_start 8080 || return 1
  drill_k8s_up || return 1
  ip netns exec "$LAB_NS_NODE" "$LAB_CLI_BIN" cache build --domains "$LAB_ZONE_DIR/domains.txt" \
    --resolver $LAB_DNS4 --out "$LAB_DIR/preload.hosts" --quiet 2>/dev/null || return 1
  # Canaries: two names with known IPv4 answers; the stub asks ~300 others.
  awk '$2 == "resolved" && $3 !~ /:/ && NF == 3' "$LAB_ZONE_DIR/expected.txt" | head -2 >"$LAB_DIR/canaries"
  awk '$2 == "resolved" {printf "%s A", $1; for (i = 3; i <= NF; i++) if ($i !~ /:/) printf " %s", $i; print ""}' \
    "$LAB_ZONE_DIR/expected.txt" | awk 'NF >= 3 && NF <= 10' | sed -n '3,302p' >"$LAB_DIR/stub.txt"
  LAB_EXTRA_YAML="$(lab_cache_yaml 0)
  health:
    probe_interval_ms: 200
    timeout_ms: 500
    canaries:
$(awk '{printf "      - {name: %s, expect: [%s]}\n", $1, $3}' "$LAB_DIR/canaries")
  failover:
    timeout_ratio: 0.2
    servfail_ratio: 0.2
    window_ms: 1000
    min_samples: 5
    failback_after_s: $DRILL_FAILBACK_S
kubernetes:
  enabled: true
  api_server: https://127.0.0.1:$K8S_PORT
  token_file: $K8S_DIR/token
  ca_file: $K8S_CA"
}

# drill_log_count T0 T1 REGEX: agent log lines matching REGEX with a timestamp
# in [T0, T1] (epoch s), e.g. failbacks while a fault lasts (relapses).
drill_log_count() {
  pyj '
import re, sys, datetime
t0, t1, rx, n = float(sys.argv[1]), float(sys.argv[2]), re.compile(sys.argv[3]), 0
for line in open(sys.argv[4]):
    if not rx.search(line):
        continue
    try:
        t = datetime.datetime.strptime(line.split()[0], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc).timestamp()
    except ValueError:
        continue
    n += t0 <= t <= t1
print(n)' "$1" "$2" "$3" "$LAB_LOG"
}

# Wall-clock time of the first agent log line after T matching REGEX (epoch s).
drill_log_time() {
  pyj '
import re, sys, datetime
t0, rx = float(sys.argv[1]), re.compile(sys.argv[2])
for line in open(sys.argv[3]):
    if not rx.search(line):
        continue
    ts = line.split()[0]
    try:
        t = datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc).timestamp()
    except ValueError:
        continue
    if t >= t0:
        print("%.3f" % t); break' "$1" "$2" "$LAB_LOG"
}

# Upstream counters of `dns status` (first upstream) as one JSON object.
drill_counters() {
  drill_status | pyj 'import json,sys
u = json.load(sys.stdin)["failover"]["upstream_health"][0]
print(json.dumps({k: u[k] for k in ("queries", "answers", "timeouts", "late_answers", "unmatched_answers",
  "unmatched_dropped", "divergent_answers", "divergent_dropped", "redirected_to_cache")} |
  {"servfail": u["rcodes"]["SERVFAIL"]}))'
}

# drill_delta BEFORE AFTER: counters (drill_counters) AFTER - BEFORE as JSON,
# null when either is missing.
drill_delta() {
  pyj 'import json,sys
try:
    b, a = json.loads(sys.argv[1]), json.loads(sys.argv[2])
    print(json.dumps({k: a[k] - b[k] for k in a}))
except (ValueError, KeyError):
    print("null")' "$1" "$2"
}

# drill_run NAME INJECT_FN HEAL_FN [EVIDENCE]
# EVIDENCE: an upstream counter (see drill_counters) that the fault must have
# moved, so a fault that silently did nothing fails the drill. A function
# prepare_fault, when the drill defines one, runs before the fault's clock
# starts (e.g. drill_divert_prepare).
drill_run() {
  local name=$1 inject=$2 heal=$3 evidence=${4:-} t_fault t_heal t_detect t_redirect t_failback label_during label_after
  local c_before c_after reason
  local pre=3 post=$((DRILL_FAILBACK_S + 6)) dur out report
  dur=$((pre + DRILL_FAULT_S + post))
  report=$DRILL_OUT/$name.stub.json
  ip netns exec "$LAB_NS_APP" "$PY3" "$LAB_ROOT/tests/lib/dnsq.py" $LAB_DNS4 stub "$dur" "$DRILL_RATE" "$report" \
    <"$LAB_DIR/stub.txt" >/dev/null 2>&1 &
  local stub_pid=$!
  netns_track_pid $stub_pid
  sleep $pre
  if declare -F prepare_fault >/dev/null; then prepare_fault || diag "$name: prepare_fault failed"; fi
  c_before=$(drill_counters)
  t_fault=$(date +%s.%N)
  $inject
  wait_for 10 drill_mode_is cache
  label_during=$(drill_label)
  reason=$(drill_status | pyj 'import json,sys; print(json.load(sys.stdin)["failover"]["reason"])' 2>/dev/null)
  sleep "$DRILL_FAULT_S"
  t_heal=$(date +%s.%N)
  $heal
  wait_for $((DRILL_FAILBACK_S + 20)) drill_mode_is upstream
  sleep 1
  label_after=$(drill_label)
  wait $stub_pid
  c_after=$(drill_counters)
  t_detect=$(drill_log_time "$t_fault" 'DNS state: healthy -> ')
  t_redirect=$(drill_log_time "$t_fault" 'now answered by the local cache')
  t_failback=$(drill_log_time "$t_heal" 'queries go to the upstreams again')
  out=$(pyj '
import json, sys
r = json.load(open(sys.argv[1]))
def f(x): return float(x) if x else None
tf, th = float(sys.argv[2]), float(sys.argv[3])
td, tr, tb = f(sys.argv[4]), f(sys.argv[5]), f(sys.argv[6])
d = {
  "drill": sys.argv[7],
  "detection_s": round(td - tf, 3) if td else None,
  "time_to_redirect_s": round(tr - tf, 3) if tr else None,
  "failback_s": round(tb - th, 3) if tb else None,
  "queries": r["sent"], "correct": r["correct"], "wrong": r["wrong"], "failed": r["failed"],
  "correct_share": round(r["correct_share"], 5),
  "forged_after_redirect": sum(1 for t in r["wrong_at"] if tr and t > tr),
  "wrong_before_redirect": sum(1 for t in r["wrong_at"] if not tr or t <= tr),
  "label_during_failover": sys.argv[8] == "true",
  "label_after_failback": sys.argv[9] == "true",
  "failover_reason": sys.argv[11],
}
d["upstream_counters"] = json.loads(sys.argv[12])
json.dump(d, open(sys.argv[10], "w"), indent=1)
print(json.dumps(d))' "$report" "$t_fault" "$t_heal" "${t_detect:-}" "${t_redirect:-}" "${t_failback:-}" \
    "$name" "$label_during" "$label_after" "$DRILL_OUT/$name.json" "${reason:-}" "$(drill_delta "${c_before:-}" "${c_after:-}")")
  DRILL_JSON=$out
  diag "$name: $out"
  check "$name: the stub's queries were redirected to the cache by the datapath" \
    pyj 'import json,sys; d=json.loads(sys.argv[1]); sys.exit(0 if (d["upstream_counters"] or {}).get("redirected_to_cache", 0) > 0 else 1)' "$out"
  if [ -n "$evidence" ]; then
    check "$name: the fault took effect ($evidence moved)" \
      pyj 'import json,sys; d=json.loads(sys.argv[1]); sys.exit(0 if (d["upstream_counters"] or {}).get(sys.argv[2], 0) > 0 else 1)' "$out" "$evidence"
  fi
  check "$name: detected and redirected to the cache" \
    pyj 'import json,sys; d=json.loads(sys.argv[1]); sys.exit(0 if d["time_to_redirect_s"] is not None else 1)' "$out"
  check "$name: no forged answer reached the client after the redirect" \
    pyj 'import json,sys; d=json.loads(sys.argv[1]); sys.exit(0 if d["forged_after_redirect"]==0 else 1)' "$out"
  check "$name: >= 99% of the stub's queries answered correctly (got $(pyj 'import json,sys; print(json.loads(sys.argv[1])["correct_share"])' "$out"))" \
    pyj 'import json,sys; d=json.loads(sys.argv[1]); sys.exit(0 if d["correct_share"]>=0.99 else 1)' "$out"
  check "$name: node label set on the test API server during failover" [ "$label_during" = true ]
  check "$name: node label removed after failback" [ "$label_after" = false ]
  check "$name: failed back to the upstream after healing" \
    pyj 'import json,sys; d=json.loads(sys.argv[1]); sys.exit(0 if d["failback_s"] is not None else 1)' "$out"
}

# ---- faults -------------------------------------------------------------------

# Connections already tracked keep their old NAT verdict: every fault that adds
# or removes a NAT rule forgets the namespace's conntrack too.
drill_ct_flush() { ip netns exec "$1" conntrack -F >/dev/null 2>&1 || true; }

# drill_divert MODE [ARG]: the upstream's DNS (UDP and TCP) goes to
# ep_dns_responder on $LAB_DNS4:5353 in the DNS namespace, which relays to
# nsd as MODE says (delay MS, servfail, ...). In two steps for drill_run:
# drill_divert_prepare MODE... starts the relay (before the fault's clock
# starts: a process start is no part of the time to detect), and
# drill_divert_apply diverts the traffic to it (the fault's onset).
drill_divert() { drill_divert_prepare "$@" && drill_divert_apply; }

drill_divert_prepare() {
  DNS_RESPONDER_LOG=$LAB_DIR/responder.log dns_responder_start "$LAB_NS_DNS" "$LAB_DNS4:5353" \
    --upstream "$LAB_DNS4:53" --mode "$@" >/dev/null || return 1
  DRILL_RESPONDER_PID=$DNS_RESPONDER_PID
}

drill_divert_apply() {
  ip netns exec "$LAB_NS_DNS" nft -f - <<EOT || return 1
table ip ep_drill {
  chain pre {
    type nat hook prerouting priority -100;
    ip daddr $LAB_DNS4 udp dport 53 redirect to :5353
    ip daddr $LAB_DNS4 tcp dport 53 redirect to :5353
  }
}
EOT
  drill_ct_flush "$LAB_NS_DNS"
}

drill_divert_heal() {
  ip netns exec "$LAB_NS_DNS" nft delete table ip ep_drill 2>/dev/null
  drill_ct_flush "$LAB_NS_DNS"
  [ -n "${DRILL_RESPONDER_PID:-}" ] && kill "$DRILL_RESPONDER_PID" 2>/dev/null
  DRILL_RESPONDER_PID=
  return 0
}

# drill_hijack: on the WAN path (the client namespace routes the node's
# traffic), DNAT the upstream's DNS to the rogue resolver, which answers
# every name with a wrong address.
drill_hijack() {
  ip netns exec "$LAB_NS_CLIENT" nft -f - <<EOT || return 1
table ip ep_drill {
  chain pre {
    type nat hook prerouting priority -100;
    ip daddr $LAB_DNS4 udp dport 53 dnat to $LAB_ROGUE4
    ip daddr $LAB_DNS4 tcp dport 53 dnat to $LAB_ROGUE4
  }
}
EOT
  drill_ct_flush "$LAB_NS_CLIENT"
}

drill_hijack_heal() {
  ip netns exec "$LAB_NS_CLIENT" nft delete table ip ep_drill 2>/dev/null
  drill_ct_flush "$LAB_NS_CLIENT"
  return 0
}

# ---- faults the node must NOT fail over for ------------------------------------

# drill_run_steady NAME INJECT_FN HEAL_FN EVIDENCE [NO_TIMEOUTS]
# The stub loop runs while the fault is injected and healed; the node must stay
# on the upstream the whole time (mode sampled twice a second, no state change
# in the log, no label), the stub's queries answered right (>= 99%, no forged
# answer), and EVIDENCE (an upstream counter of drill_counters) must have moved
# so a fault that did nothing fails. NO_TIMEOUTS=1: no query may have been
# counted as timed out either. Figures in DRILL_JSON and build/drills/NAME.json.
drill_run_steady() {
  local name=$1 inject=$2 heal=$3 evidence=$4 no_timeouts=${5:-0}
  local pre=3 post=3 dur report stub_pid t_fault c_before c_after left=0 samples=0 out label=false end
  dur=$((pre + DRILL_FAULT_S + post))
  report=$DRILL_OUT/$name.stub.json
  ip netns exec "$LAB_NS_APP" "$PY3" "$LAB_ROOT/tests/lib/dnsq.py" $LAB_DNS4 stub "$dur" "$DRILL_RATE" "$report" \
    <"$LAB_DIR/stub.txt" >/dev/null 2>&1 &
  stub_pid=$!
  netns_track_pid $stub_pid
  sleep $pre
  c_before=$(drill_counters)
  t_fault=$(date +%s.%N)
  $inject
  end=$(( $(date +%s) + DRILL_FAULT_S ))
  while [ "$(date +%s)" -lt "$end" ]; do
    samples=$((samples + 1))
    drill_mode_is upstream || left=$((left + 1))
    [ "$(drill_label)" = true ] && label=true
    sleep 0.5
  done
  $heal
  wait $stub_pid
  sleep 1 # the last timeouts (timeout_ms) are counted
  c_after=$(drill_counters)
  out=$(pyj '
import json, sys
r = json.load(open(sys.argv[1]))
d = {
  "drill": sys.argv[2],
  "queries": r["sent"], "correct": r["correct"], "wrong": r["wrong"], "failed": r["failed"],
  "correct_share": round(r["correct_share"], 5),
  "mode_samples": int(sys.argv[3]), "mode_not_upstream": int(sys.argv[4]),
  "state_changes": int(sys.argv[5]), "label_set": sys.argv[6] == "true",
}
d["upstream_counters"] = json.loads(sys.argv[7])
json.dump(d, open(sys.argv[8], "w"), indent=1)
print(json.dumps(d))' "$report" "$name" "$samples" "$left" \
    "$(awk -v t="$(date -u -d @"${t_fault%.*}" +%Y-%m-%dT%H:%M:%S)" '$1 >= t && /DNS state: /' "$LAB_LOG" | wc -l)" \
    "$label" "$(drill_delta "${c_before:-}" "${c_after:-}")" "$DRILL_OUT/$name.json")
  DRILL_JSON=$out
  diag "$name: $out"
  check "$name: the fault took effect ($evidence moved)" \
    pyj 'import json,sys; d=json.loads(sys.argv[1]); sys.exit(0 if (d["upstream_counters"] or {}).get(sys.argv[2], 0) > 0 else 1)' "$out" "$evidence"
  check "$name: the node stayed on the upstream (mode sampled $samples times, no state change)" \
    pyj 'import json,sys; d=json.loads(sys.argv[1]); sys.exit(0 if d["mode_not_upstream"]==0 and d["state_changes"]==0 else 1)' "$out"
  check "$name: no dns-unhealthy label on the node" [ "$label" = false ]
  if [ "$no_timeouts" = 1 ]; then
    check "$name: no query counted as timed out" \
      pyj 'import json,sys; d=json.loads(sys.argv[1]); sys.exit(0 if (d["upstream_counters"] or {}).get("timeouts", 1) == 0 else 1)' "$out"
  fi
  check "$name: no forged or wrong answer reached the stub" \
    pyj 'import json,sys; d=json.loads(sys.argv[1]); sys.exit(0 if d["wrong"]==0 else 1)' "$out"
  check "$name: >= 99% of the stub's queries answered correctly (got $(pyj 'import json,sys; print(json.loads(sys.argv[1])["correct_share"])' "$out"))" \
    pyj 'import json,sys; d=json.loads(sys.argv[1]); sys.exit(0 if d["correct_share"]>=0.99 else 1)' "$out"
}

# The port of the stub loop's socket in the app pod.
drill_stub_port() {
  ip netns exec "$LAB_NS_APP" ss -Hunap | awk '/python3/ {n = split($4, a, ":"); print a[n]; exit}'
}

# drill_forge SCRIPT RATE OUT: an off-path sender in the client namespace
# (tests/drills/SCRIPT SRC DST PORT SECONDS RATE NAMES) sends the stub's port
# forged answers "from" the upstream for DRILL_FAULT_S; its output to OUT,
# its pid in DRILL_FORGE_PID.
drill_forge() {
  local port
  port=$(drill_stub_port)
  [ -n "$port" ] || { diag "no stub socket found in the app namespace"; return 1; }
  diag "$1: $LAB_APP4:$port at $2/s"
  ip netns exec "$LAB_NS_CLIENT" "$PY3" "$LAB_ROOT/tests/drills/$1" $LAB_DNS4 $LAB_APP4 "$port" \
    "$DRILL_FAULT_S" "$2" "$LAB_DIR/stub.txt" >"$3" 2>&1 &
  DRILL_FORGE_PID=$!
  netns_track_pid $DRILL_FORGE_PID
}

# The datapath's header and fragment counters of the first upstream (JSON).
drill_headers() {
  drill_status | pyj 'import json,sys
print(json.dumps(json.load(sys.stdin)["failover"]["upstream_health"][0].get("headers", {})))'
}
