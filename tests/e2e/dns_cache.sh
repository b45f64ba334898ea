#!/usr/bin/env bash
# End to end: the local DNS cache the agent supervises. A real nsd upstream in
# the lab, a preload built by `edgeplane cache build`, dnsmasq started by the
# agent; answers checked with real queries (exact addresses and TTLs, NODATA
# for a missing type, SERVFAIL - never NXDOMAIN - outside the snapshot);
# dnsmasq killed and hung; the preload swapped under continuous queries; the
# loss guard refusing a broken refresh; agent restarts adopting dnsmasq;
# dns.cache.fallback, plain and DNSSEC-validated (a signed zone, then forged).
set -u
cd "$(dirname "$0")/../.."
source tests/lib/tap.sh
source tests/lib/netns.sh
source tests/lab/lab.sh

N=${N_NAMES:-2000}
py() { /usr/bin/python3 -c "$@"; }
dnsq() { ip netns exec "$LAB_NS_NODE" "$PY3" tests/lib/dnsq.py "$LAB_CACHE_IP" "$@"; }
dns_json() { lab_cli dns status -o json; }
dnsmasq_pid() { dns_json | py 'import json,sys; print(json.load(sys.stdin)["cache"]["dnsmasq"]["pid"])'; }
responder_pid() { dns_json | py 'import json,sys; print(json.load(sys.stdin)["cache"]["responder"]["pid"])'; }
# The responder's own address, read from its command line (the port is the
# responder's to choose), as dnsq.py takes it: ADDR#PORT.
responder_addr() { tr '\0' '\n' <"/proc/$1/cmdline" | sed -n 's/^--listen=\(.*\):\([0-9]*\)$/\1#\2/p'; }
answers_health() { printf 'edgeplane-health.invalid A\n' | dnsq batch | grep -q '"addrs": \["127.0.0.2"\]'; }

lab_up 1 || { not_ok "lab setup"; tap_done; exit 1; }
lab_dns_up "$N" || { not_ok "lab upstream DNS (nsd)"; tap_done; exit 1; }
DOMAINS=$LAB_DIR/domains.txt
cp "$LAB_ZONE_DIR/domains.txt" "$DOMAINS"
ip netns exec "$LAB_NS_NODE" "$LAB_CLI_BIN" cache build --domains "$DOMAINS" --resolver $LAB_DNS4 \
  --out "$LAB_DIR/preload.hosts" --quiet 2>"$LAB_DIR/build.log"
check "edgeplane cache build wrote the preload from the lab upstream" test -s "$LAB_DIR/preload.hosts"
LAB_EXTRA_YAML=$(lab_cache_yaml 0 | sed "s|domains: .*|domains: $DOMAINS|")
lab_config_write
# dnsmasq drops to nobody: an agent without CAP_KILL could never signal it
# (a new preload, a restart), so it refuses the dns section at start.
nokill=$(ip netns exec "$LAB_NS_NODE" setpriv --bounding-set -kill -- \
  timeout 20 "$LAB_AGENT_BIN" --config "$LAB_CONFIG" 2>&1); rc=$?
check "without CAP_KILL the agent refuses the dns cache at start and says why (rc=$rc)" \
  bash -c '[ "$1" != 0 ] && [ "$1" != 124 ] && grep -q "needs CAP_KILL" <<<"$2"' _ "$rc" "$nokill"
grep -m1 "CAP_KILL" <<<"$nokill" | sed 's/^/#   /'
lab_agent_start || { not_ok "agent start"; tap_done; exit 1; }
check "dnsmasq started by the agent answers on $LAB_CACHE_IP:53" wait_for 10 answers_health

# --- nobody else can take dnsmasq's forwarded queries --------------------------
# The policy responder's port is privileged and its UDP socket has no
# SO_REUSEADDR: a local user cannot bind it (EACCES), and not even root can
# bind next to the running agent (EADDRINUSE), with SO_REUSEADDR or not.
RESP_PORT=$(sed -n 's/^server=127\.0\.0\.1#\([0-9]*\)$/\1/p' "$(dirname "$LAB_SOCK")/dnsmasq.conf")
diag "policy responder port (from dnsmasq.conf): $RESP_PORT"
check "the policy responder's port ($RESP_PORT) is privileged" test "${RESP_PORT:-99999}" -lt 1024
try_bind() { # try_bind PROTO WANT_ERRNO [setpriv args...]: the bind fails with WANT_ERRNO
  local proto=$1 want=$2; shift 2
  ip netns exec "$LAB_NS_NODE" "$@" "$PY3" -c '
import errno, socket, sys
t = socket.SOCK_DGRAM if sys.argv[1] == "udp" else socket.SOCK_STREAM
s = socket.socket(socket.AF_INET, t)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[2])))
except OSError as e:
    print(errno.errorcode.get(e.errno, e.errno)); sys.exit(0 if errno.errorcode.get(e.errno) == sys.argv[3] else 1)
print("bound"); sys.exit(1)' "$proto" "$RESP_PORT" "$want"
}
for proto in udp tcp; do
  check "user nobody cannot bind 127.0.0.1:$RESP_PORT/$proto while the agent runs (EACCES)" \
    try_bind $proto EACCES setpriv --reuid=nobody --regid=nogroup --clear-groups
  check "root cannot bind 127.0.0.1:$RESP_PORT/$proto next to the agent, even with SO_REUSEADDR (EADDRINUSE)" \
    try_bind $proto EADDRINUSE
done

# --- answers: exactly the snapshot, TTL 30 ------------------------------------
awk '$2 == "resolved" {print $1 " A"; print $1 " AAAA"}' "$LAB_ZONE_DIR/expected.txt" >"$LAB_DIR/q.txt"
ip netns exec "$LAB_NS_NODE" nstat -n
dnsq batch <"$LAB_DIR/q.txt" >"$LAB_DIR/answers.jsonl"
ip netns exec "$LAB_NS_NODE" nstat | grep -iE "udp|drop" | sed 's/^/# nstat: /'
res=$(py '
import json, sys, ipaddress
exp = {}
for line in open(sys.argv[1]):
    p = line.split()
    if len(p) > 2 and p[1] == "resolved":
        exp[p[0]] = p[2:]
bad = {"wrong": 0, "ttl": 0, "nodata_wrong": 0, "timeouts": 0}
nodata = answered = 0
for line in open(sys.argv[2]):
    r = json.loads(line)
    if r["timeout"]:
        bad["timeouts"] += 1
        continue
    want = sorted(a for a in exp[r["name"]] if (":" in a) == (r["type"] == "AAAA"))
    want = sorted(str(ipaddress.ip_address(a)) for a in want)
    if want:
        answered += 1
        if r["rcode"] != "NOERROR" or r["addrs"] != want:
            bad["wrong"] += 1
        elif r["ttl"] != 30:
            bad["ttl"] += 1
    else:
        nodata += 1
        if not (r["rcode"] == "NOERROR" and r["addrs"] == [] and r["soa"]):
            bad["nodata_wrong"] += 1
print(json.dumps({"answered": answered, "nodata": nodata, **bad}))' "$LAB_ZONE_DIR/expected.txt" "$LAB_DIR/answers.jsonl")
grep '"timeout": true' "$LAB_DIR/answers.jsonl" | head -5 | sed 's/^/# timed out: /'
diag "answers: $res"
check "every preloaded name answers with exactly its snapshot addresses" \
  py 'import json,sys; j=json.loads(sys.argv[1]); sys.exit(0 if j["answered"]>1000 and j["wrong"]==0 and j["timeouts"]==0 else 1)' "$res"
check "every answer carries TTL 30 (dns.cache.ttl)" \
  py 'import json,sys; j=json.loads(sys.argv[1]); sys.exit(0 if j["ttl"]==0 else 1)' "$res"
check "a missing type of a known name is NODATA (NOERROR, empty, SOA) - never REFUSED" \
  py 'import json,sys; j=json.loads(sys.argv[1]); sys.exit(0 if j["nodata"]>100 and j["nodata_wrong"]==0 else 1)' "$res"

# Names the snapshot does not have: names the upstream says do not exist,
# names without addresses, names of another zone.
{ awk '$2 == "nxdomain" || $2 == "nodata" {print $1 " A"}' "$LAB_ZONE_DIR/expected.txt" | head -100
  for i in 1 2 3 4 5; do echo "unknown$i.example.org A"; echo "sub.n1.edge.test A"; done; } >"$LAB_DIR/q2.txt"
out=$(dnsq batch <"$LAB_DIR/q2.txt" | py 'import json,sys; from collections import Counter; print(json.dumps(Counter(json.loads(l)["rcode"] for l in sys.stdin)))')
diag "outside the snapshot: $out"
check "names outside the snapshot get SERVFAIL (never NXDOMAIN, never a timeout)" \
  py 'import json,sys; j=json.loads(sys.argv[1]); sys.exit(0 if list(j)==["SERVFAIL"] else 1)' "$out"

# The agent learns that dnsmasq answers from its own periodic check, which on
# a loaded machine may not have run yet: polled, bounded.
cache_status_ok() {
  dns_json | py 'import json,sys; c=json.load(sys.stdin)["cache"]; sys.exit(0 if c["dnsmasq"]["state"]=="answering" and c["snapshot"]["names"]>1000 and c["snapshot"]["records"]>=c["snapshot"]["names"] and c["ttl"]==30 else 1)'
}
check "edgeplane dns status: dnsmasq answering, snapshot names and records, TTL" \
  wait_for 10 cache_status_ok
recs=$(grep -cvE '^\s*(#|$)' "$LAB_DIR/preload.hosts")
check "metric edgeplane_cache_records equals the preload's $recs records" \
  sh -c "ip netns exec $LAB_NS_NODE curl -s http://127.0.0.1:9464/metrics | grep -qx 'edgeplane_cache_records $recs'"
lab_cli dns status | sed 's/^/# /'

# --- dnsmasq dies, or hangs ----------------------------------------------------
pid=$(dnsmasq_pid)
t0=$(date +%s.%N)
kill -9 "$pid"
if wait_for 10 answers_health; then
  t=$(py "print('%.2f' % ($(date +%s.%N) - $t0))")
  diag "dnsmasq answered again ${t}s after kill -9"
  check "killed dnsmasq (kill -9) is restarted and answers within 3 s (took ${t}s)" py "import sys; sys.exit(0 if $t <= 3 else 1)"
else
  not_ok "killed dnsmasq is restarted and answers again"
fi
check "the first death restarts it at once, no backoff (log: restarting now)" \
  grep -q "dnsmasq died (signal 9): restarting now" "$LAB_LOG"
check "the restart is a new process and counted" \
  sh -c "[ \$(ip netns exec $LAB_NS_NODE $LAB_CLI_BIN --socket $LAB_SOCK dns status -o json | /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin)[\"cache\"][\"dnsmasq\"]; print(d[\"restarts\"] >= 1 and d[\"pid\"] != $pid)') = True ]"
pid=$(dnsmasq_pid)
kill -STOP "$pid"
t0=$(date +%s.%N)
sleep 0.5
if wait_for 15 answers_health; then
  t=$(py "print('%.2f' % ($(date +%s.%N) - $t0))")
  diag "hung dnsmasq replaced; answering again ${t}s after SIGSTOP"
  check "a hung dnsmasq (SIGSTOP) fails 3 health checks, is replaced and answers within 6 s (took ${t}s)" \
    py "import sys; sys.exit(0 if $t <= 6 else 1)"
else
  not_ok "a hung dnsmasq is replaced"
fi
check "the agent log says why dnsmasq was restarted" grep -q "stopped answering health checks" "$LAB_LOG"

# --- the preload swapped under continuous queries ---------------------------
head -400 "$LAB_DIR/q.txt" | grep ' A$' >"$LAB_DIR/loop.txt"
dnsq loop 6 400 <"$LAB_DIR/loop.txt" >"$LAB_DIR/loop.json" &
LOOP=$!
sleep 1
for round in 1 2 3; do
  ip netns exec "$LAB_NS_NODE" "$LAB_CLI_BIN" cache build --domains "$DOMAINS" --resolver $LAB_DNS4 \
    --out "$LAB_DIR/preload.hosts" --force --quiet 2>/dev/null
  sleep 1
done
wait $LOOP
j=$(cat "$LAB_DIR/loop.json")
diag "queries during 3 preload swaps: $j"
check "every query sent while the preload was swapped 3 times got an answer" \
  py 'import json,sys; j=json.loads(sys.argv[1]); sys.exit(0 if j["sent"]>1500 and j["unanswered"]==0 else 1)' "$j"
check "... and no answer changed for a name during the swaps" \
  py 'import json,sys; j=json.loads(sys.argv[1]); sys.exit(0 if j["wrong"]==0 and list(j["rcodes"])==["NOERROR"] else 1)' "$j"
check "dnsmasq re-read the preload (SIGHUP), no restart for a swap" grep -c "read $LAB_DIR/preload.hosts" "$LAB_LOG"

# --- refresh: new data arrives; a broken upstream is refused ---------------
# The upstream grows by 50 names; the domains list learns them.
kill "$(ip netns pids "$LAB_NS_DNS" | head -1)" 2>/dev/null
for p in $(ip netns pids "$LAB_NS_DNS"); do kill "$p"; done
sleep 0.5
mkdir -p "$LAB_DIR/zone2"
dns_zone_generate "$LAB_DIR/zone2" edge.test $((N + 50)) >/dev/null
dns_upstream_start "$LAB_NS_DNS" $LAB_DNS4 "$LAB_DIR/zone2" >/dev/null
new=$(awk -v n=$((N + 1)) '$2 == "resolved" && $1 ~ /^n[0-9]+\.edge\.test$/ {split($1, a, "."); sub("n", "", a[1]); if (a[1] + 0 >= n) {print $1; exit}}' "$LAB_DIR/zone2/expected.txt")
cp "$LAB_DIR/zone2/domains.txt" "$DOMAINS"
check "a name the upstream gained ($new) is not in the cache yet" \
  sh -c "printf '$new A\n' | ip netns exec $LAB_NS_NODE $PY3 tests/lib/dnsq.py $LAB_CACHE_IP batch | grep -q SERVFAIL"
lab_cli dns refresh >/dev/null
refreshed() { dns_json | py 'import json,sys; r=json.load(sys.stdin)["cache"]["refresh"]; sys.exit(0 if r["last_result"]!="none" and not r["running"] else 1)'; }
wait_for 30 refreshed
check "edgeplane dns refresh rebuilt the snapshot (result ok)" \
  sh -c "ip netns exec $LAB_NS_NODE $LAB_CLI_BIN --socket $LAB_SOCK dns status -o json | grep -q '\"last_result\": \"ok\"'"
sleep 1.5
check "after the refresh the new name ($new) is answered" \
  sh -c "printf '$new A\n' | ip netns exec $LAB_NS_NODE $PY3 tests/lib/dnsq.py $LAB_CACHE_IP batch | grep -q NOERROR"

# The upstream loses half its names (a broken or hijacked zone).
for p in $(ip netns pids "$LAB_NS_DNS"); do kill "$p"; done
sleep 0.5
mkdir -p "$LAB_DIR/zone3"
dns_zone_generate "$LAB_DIR/zone3" edge.test $((N / 2)) >/dev/null
dns_upstream_start "$LAB_NS_DNS" $LAB_DNS4 "$LAB_DIR/zone3" >/dev/null
before=$(md5sum <"$LAB_DIR/preload.hosts")
lab_cli dns refresh >/dev/null
sleep 0.5
wait_for 30 refreshed
check "a refresh against an upstream that lost half the names is refused by the loss guard" \
  sh -c "ip netns exec $LAB_NS_NODE $LAB_CLI_BIN --socket $LAB_SOCK dns status -o json | grep -q '\"last_result\": \"refused\"'"
check "... the preload file is untouched" test "$before" = "$(md5sum <"$LAB_DIR/preload.hosts")"
late=$(awk -v n=$((N / 2 + 10)) '$2 == "resolved" {split($1, a, "."); sub("n", "", a[1]); if (a[1] + 0 > n) {print $1; exit}}' "$LAB_DIR/zone2/expected.txt")
check "... and the old snapshot keeps serving names the broken upstream lost ($late)" \
  sh -c "printf '$late A\n' | ip netns exec $LAB_NS_NODE $PY3 tests/lib/dnsq.py $LAB_CACHE_IP batch | grep -q NOERROR"

# --- the policy responder: a process of its own, restarted when it dies -----
rpid=$(responder_pid)
raddr=$(responder_addr "$rpid")
diag "policy responder: pid $rpid on $raddr"
check "the policy responder is a process of its own (not the agent)" \
  sh -c "[ -n '$raddr' ] && [ '$rpid' != '$(lab_agent_pid)' ] && grep -q -- --cache-responder /proc/$rpid/cmdline"
new_responder() {
  dns_json | py 'import json,sys; r=json.load(sys.stdin)["cache"]["responder"]; sys.exit(0 if r["pid"] not in (0, int(sys.argv[1])) and r["restarts"] >= 1 else 1)' "$1"
}
# kill -9, then ask the responder's address every 20 ms (50 ms timeout)
# until it answers SERVFAIL again: the time it did not answer, without the
# CLI's or a stub's 1 s retry in the measurement.
t=$(ip netns exec "$LAB_NS_NODE" "$PY3" - "$raddr" "$rpid" <<'EOT'
import os, socket, struct, sys, time
host, port = sys.argv[1].split("#")
q = struct.pack("!HHHHHH", 0x4242, 0x0100, 1, 0, 0, 0) + \
    b"\x0dunknown-probe\x07example\x03org\x00" + struct.pack("!HH", 1, 1)
os.kill(int(sys.argv[2]), 9)
t0 = time.monotonic()
while time.monotonic() - t0 < 10:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.05)
    try:
        s.sendto(q, (host, int(port)))
        if s.recv(512)[3] & 15 == 2:
            print("%.2f" % (time.monotonic() - t0))
            sys.exit(0)
    except OSError:
        pass
    finally:
        s.close()
    time.sleep(0.02)
print(99)
EOT
)
diag "responder answering again ${t}s after kill -9"
check "a killed responder (kill -9) is restarted and answers within 1 s (took ${t}s)" py "import sys; sys.exit(0 if $t <= 1 else 1)"
check "... a new process, counted as a restart" wait_for 5 new_responder "$rpid"
check "the agent log says why the responder was restarted" grep -q "cache responder died (signal 9)" "$LAB_LOG"

# --- agent restarts adopt the running dnsmasq -------------------------------
pid=$(dnsmasq_pid)
rpid=$(responder_pid)
dnsq loop 5 300 <"$LAB_DIR/loop.txt" >"$LAB_DIR/loop2.json" &
LOOP=$!
sleep 0.5
lab_agent_kill9
sleep 0.5
lab_agent_start || not_ok "agent restart"
lab_agent_stop
lab_agent_start || not_ok "agent second restart"
wait $LOOP
j=$(cat "$LAB_DIR/loop2.json")
diag "queries across kill -9, restart, SIGTERM, restart: $j"
check "queries keep being answered across agent kill -9, SIGTERM and restarts" \
  py 'import json,sys; j=json.loads(sys.argv[1]); sys.exit(0 if j["sent"]>1000 and j["unanswered"]==0 else 1)' "$j"
check "the restarted agent adopted the same dnsmasq (pid $pid)" test "$(dnsmasq_pid)" = "$pid"
check "the agent log says it adopted dnsmasq" grep -q "adopted the running dnsmasq" "$LAB_LOG"
check "the restarted agent adopted the same policy responder (pid $rpid)" test "$(responder_pid)" = "$rpid"
check "the agent log says it adopted the responder" grep -q "adopted the running cache responder" "$LAB_LOG"

# --- no agent at all: the cache still answers every name, every type -------
# A of a name with an A record (dnsmasq), AAAA of an IPv4-only name (NODATA:
# the responder), a name outside the snapshot (SERVFAIL: the responder).
py '
import sys
v4only = []
for line in open(sys.argv[1]):
    p = line.split()
    if len(p) > 2 and p[1] == "resolved" and all(":" not in a for a in p[2:]):
        v4only.append(p[0])
for n in v4only[:100]:
    print(n, "A"); print(n, "AAAA")
for i in range(100):
    print("outside%d.example.org A" % i)' "$LAB_ZONE_DIR/expected.txt" >"$LAB_DIR/dead.txt"
grade_dead() {
  dnsq batch <"$LAB_DIR/dead.txt" | py '
import json, sys
bad = {"timeouts": 0, "wrong": 0}; n = 0
for line in sys.stdin:
    r = json.loads(line); n += 1
    if r["timeout"]:
        bad["timeouts"] += 1
    elif r["name"].startswith("outside"):
        bad["wrong"] += r["rcode"] != "SERVFAIL"
    elif r["type"] == "AAAA":
        bad["wrong"] += not (r["rcode"] == "NOERROR" and r["addrs"] == [] and r["soa"])
    else:
        bad["wrong"] += not (r["rcode"] == "NOERROR" and r["addrs"])
print(json.dumps({"queries": n, **bad}))'
}
dead_ok() { py 'import json,sys; j=json.loads(sys.argv[1]); sys.exit(0 if j["queries"]==300 and j["timeouts"]==0 and j["wrong"]==0 else 1)' "$1"; }
# The stub loop with every kind of query, while the agent is killed and
# stays dead for 3 s.
cat "$LAB_DIR/dead.txt" >"$LAB_DIR/loop3.txt"
dnsq loop 5 300 <"$LAB_DIR/loop3.txt" >"$LAB_DIR/loop3.json" &
LOOP=$!
sleep 1
lab_agent_kill9
t0=$(date +%s.%N)
j=$(grade_dead)
t=$(py "print('%.2f' % ($(date +%s.%N) - $t0))")
diag "agent killed (kill -9), not restarted: $j in ${t}s"
check "no agent (kill -9): A answered, AAAA of IPv4-only names NODATA, outside names SERVFAIL; none unanswered" dead_ok "$j"
check "... promptly: 300 queries in under 3 s (took ${t}s)" py "import sys; sys.exit(0 if $t < 3 else 1)"
wait $LOOP
j=$(cat "$LAB_DIR/loop3.json")
diag "stub loop (A, AAAA, outside names) across the agent's kill -9: $j"
check "... a stub resolver loop across the kill -9 had no unanswered query" \
  py 'import json,sys; j=json.loads(sys.argv[1]); sys.exit(0 if j["sent"]>1000 and j["unanswered"]==0 else 1)' "$j"
lab_agent_start || not_ok "agent restart"
lab_agent_stop
j=$(grade_dead)
diag "agent stopped (SIGTERM), not restarted: $j"
check "no agent (SIGTERM): every query answered right" dead_ok "$j"
check "the agent log says it left the responder running" grep -q "cache responder (pid $rpid) left running" "$LAB_LOG"
lab_agent_start || not_ok "agent restart"

# --- --detach-on-exit stops dnsmasq and removes the cache address -------------
lab_agent_stop
LAB_AGENT_ARGS=--detach-on-exit lab_agent_start
LAB_AGENT_ARGS=--detach-on-exit lab_agent_stop
# (Not kill -0: where PID 1 does not reap, a killed orphan lingers as a zombie.)
alive() { [ -e "/proc/$1" ] && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }
check "--detach-on-exit stops dnsmasq" sh -c "! { [ -e /proc/$pid ] && ! grep -q '^State:.*Z' /proc/$pid/status; }"
check "--detach-on-exit stops the policy responder" sh -c "! { [ -e /proc/$rpid ] && ! grep -q '^State:.*Z' /proc/$rpid/status; }"
check "--detach-on-exit removes $LAB_CACHE_IP from lo" \
  sh -c "! ip -n $LAB_NS_NODE addr show dev lo | grep -q $LAB_CACHE_IP"

# --- started without a preload: the first refresh writes it, dnsmasq serves it --
# (dnsmasq reads its hosts file at start and on SIGHUP only: the agent must
# tell it about the first file, or every name would be NODATA.)
rm -f "$LAB_DIR/preload.hosts"
LAB_EXTRA_YAML=$(lab_cache_yaml 3600 | sed "s|domains: .*|domains: $DOMAINS|")
lab_config_write
lab_agent_start || not_ok "agent start without a preload"
answers_n1() {
  printf 'n1.edge.test A\n' | dnsq batch |
    py 'import json,sys; r=json.loads(sys.stdin.readline()); sys.exit(0 if r["rcode"]=="NOERROR" and r["addrs"] else 1)'
}
check "started without a preload: the first refresh writes one" wait_for 30 test -s "$LAB_DIR/preload.hosts"
check "... and dnsmasq answers from it (it was told to re-read)" wait_for 10 answers_n1

# --- dns.cache.fallback: names outside the snapshot from a trusted resolver -------
# A resolver of the test on the node (127.0.0.53:53) answers every name with
# 192.0.2.77, so an answer with that address came through the fallback.
lab_agent_stop
FB=127.0.0.53
dns_responder_start "$LAB_NS_NODE" "$FB:53" --mode wrong-answer 192.0.2.77 >/dev/null ||
  not_ok "the fallback resolver starts"
FBPID=$DNS_RESPONDER_PID
LAB_EXTRA_YAML="$(lab_cache_yaml 0 | sed "s|domains: .*|domains: $DOMAINS|")
    fallback: [$FB]"
lab_config_write
lab_agent_start || not_ok "agent start with dns.cache.fallback"
outside_via_fallback() {
  printf 'outside-fb1.example.org A\n' | dnsq batch |
    py 'import json,sys; r=json.loads(sys.stdin.readline()); sys.exit(0 if r["rcode"]=="NOERROR" and r["addrs"]==["192.0.2.77"] else 1)'
}
check "with dns.cache.fallback, a name outside the snapshot gets the fallback's answer through dnsmasq" \
  wait_for 10 outside_via_fallback
j=$(printf 'n1.edge.test A\nn1.edge.test AAAA\n' | dnsq batch)
check "... while snapshot names keep their snapshot answers, never the fallback's ($(tr '\n' ' ' <<<"$j" | cut -c1-160))" \
  py 'import json,sys; rs=[json.loads(l) for l in sys.argv[1].splitlines()]; sys.exit(0 if all("192.0.2.77" not in r["addrs"] and r["rcode"]=="NOERROR" for r in rs) and rs[0]["addrs"] else 1)' "$j"
fb_json() { dns_json | py 'import json,sys; print(json.dumps(json.load(sys.stdin)["cache"]["fallback"]))'; }
fb_counted() { fb_json | py 'import json,sys; f=json.load(sys.stdin); sys.exit(0 if f["resolvers"]==[sys.argv[1]] and f["answered"]>=1 else 1)' "$FB"; }
# (The responder publishes its counters every 100 ms; the agent reads them as often.)
check "dns status names the fallback and counts its answers" wait_for 5 fb_counted
diag "dns status cache.fallback: $(fb_json)"
check "metric edgeplane_cache_fallback_total{result=\"answered\"} counts them" \
  sh -c "ip netns exec $LAB_NS_NODE curl -s http://127.0.0.1:9464/metrics | grep -Eq '^edgeplane_cache_fallback_total\\{result=\"answered\"\\} [1-9]'"
kill "$FBPID" 2>/dev/null
wait "$FBPID" 2>/dev/null
t0=$(date +%s.%N)
j=$(printf 'outside-fb2.example.org A\n' | dnsq batch)
t=$(py "print('%.2f' % ($(date +%s.%N) - $t0))")
diag "fallback resolver gone: $j in ${t}s"
check "the fallback gone: a name outside the snapshot gets SERVFAIL again, not silence" \
  py 'import json,sys; r=json.loads(sys.argv[1]); sys.exit(0 if r["rcode"]=="SERVFAIL" and not r["timeout"] else 1)' "$j"
check "metric edgeplane_cache_fallback_total{result=\"failed\"} counts it" \
  wait_for 5 sh -c "ip netns exec $LAB_NS_NODE curl -s http://127.0.0.1:9464/metrics | grep -Eq '^edgeplane_cache_fallback_total\\{result=\"failed\"\\} [1-9]'"

# --- dns.cache.fallback with a trust anchor: answers of the zone validated -----
# edge.test signed with ldnsutils (dns_zone_sign), with names the snapshot
# does not have (fb-*), served signed by the lab upstream (the probes validate
# with the same anchor) and by a second nsd on the node, the fallback. An
# unsigned zone there (plain.test) is outside the anchor. Then the fallback's
# copy is tampered with (an address changed under its old RRSIG): SERVFAIL,
# counted bogus.
lab_agent_stop
FBZ=$LAB_DIR/fbzone
FB2=127.0.0.54
mkdir -p "$FBZ"
cp "$LAB_ZONE_DIR/edge.test.zone" "$FBZ/"
printf 'fb-good\tA\t198.18.77.1\nfb-good2\tA\t198.18.77.3\nfb-bad\tA\t198.18.77.2\nfb-nodata\tTXT\t"text only"\n' >>"$FBZ/edge.test.zone"
printf '$ORIGIN plain.test.\n$TTL 300\n@\tSOA\tns.plain.test. h.plain.test. 1 3600 600 86400 30\n@\tNS\tns.plain.test.\nns\tA\t198.19.255.253\nwww\tA\t198.18.78.8\n' \
  >"$FBZ/plain.test.zone"
printf 'edge.test.zone edge.test\nplain.test.zone plain.test\n' >"$FBZ/zones"
signed_ok=0
if dns_zone_sign "$FBZ" edge.test; then
  dns_upstream_stop "$LAB_ZONE_DIR"
  cp "$FBZ/edge.test.zone.signed" "$LAB_ZONE_DIR/"
  awk '$1 == "edge.test.zone" { $1 = "edge.test.zone.signed" } { print }' "$LAB_ZONE_DIR/zones" >"$LAB_ZONE_DIR/zones.tmp" &&
    mv "$LAB_ZONE_DIR/zones.tmp" "$LAB_ZONE_DIR/zones"
  dns_upstream_start "$LAB_NS_DNS" $LAB_DNS4 "$LAB_ZONE_DIR" >/dev/null &&
    dns_upstream_start "$LAB_NS_NODE" $FB2 "$FBZ" >/dev/null && signed_ok=1
fi
check "edge.test signed (ldns-signzone), served by the upstream and by the fallback nsd on $FB2" [ $signed_ok -eq 1 ]
awk '$2 == "resolved" && $3 !~ /:/ && NF == 3' "$LAB_ZONE_DIR/expected.txt" | head -2 >"$LAB_DIR/fb-canaries"
LAB_EXTRA_YAML="$(lab_cache_yaml 0 | sed "s|domains: .*|domains: $DOMAINS|")
    fallback: [$FB2]
  health:
    trust_anchor: $FBZ/trust-anchor
    canaries:
$(awk '{printf "      - {name: %s, expect: [%s]}\n", $1, $3}' "$LAB_DIR/fb-canaries")"
lab_config_write
lab_agent_start || not_ok "agent start with dns.cache.fallback and dns.health.trust_anchor"
# rcode_addrs NAME TYPE : "RCODE ADDR..." of the cache's answer
rcode_addrs() {
  printf '%s %s\n' "$1" "$2" | dnsq batch |
    py 'import json,sys; r=json.loads(sys.stdin.readline()); print(" ".join([r["rcode"]] + r["addrs"]))'
}
answers_as() { [ "$(rcode_addrs "$1" A)" = "$2" ]; }
rpid=$(responder_pid)
check "the responder runs with the anchor on its command line" \
  sh -c "tr '\\0' '\\n' </proc/$rpid/cmdline | grep -qx -- '--trust-anchor=$FBZ/trust-anchor'"
check "a signed name of the zone outside the snapshot: the fallback's validated answer" \
  wait_for 10 answers_as fb-good.edge.test "NOERROR 198.18.77.1"
j=$(rcode_addrs fb-nodata.edge.test A)
check "NODATA of the zone is relayed as it is (no denial proof checked): $j" [ "$j" = "NOERROR" ]
j=$(rcode_addrs nx-fb.edge.test A)
check "NXDOMAIN of the zone is relayed as it is: $j" [ "$j" = "NXDOMAIN" ]
j=$(rcode_addrs www.plain.test A)
check "a name outside the anchored zone is relayed unvalidated: $j" [ "$j" = "NOERROR 198.18.78.8" ]

# The fallback's copy tampered with: fb-bad's address changed, RRSIG kept.
awk '$1 == "fb-bad.edge.test." && $4 == "A" { $5 = "198.18.66.66" } { print }' "$FBZ/edge.test.zone.signed" \
  >"$FBZ/tampered" && mv "$FBZ/tampered" "$FBZ/edge.test.zone.signed"
dns_upstream_reload "$FBZ"
fb_serves_forged() {
  [ "$(ip netns exec "$LAB_NS_NODE" kdig +short +retry=0 +time=1 @$FB2 fb-bad.edge.test A)" = 198.18.66.66 ]
}
check "the fallback nsd now serves fb-bad.edge.test A 198.18.66.66 under the old RRSIG" wait_for 10 fb_serves_forged
j=$(rcode_addrs fb-bad.edge.test A)
check "the forged answer never reaches the client: SERVFAIL ($j)" [ "$j" = "SERVFAIL" ]
bogus_counted() {
  ip netns exec "$LAB_NS_NODE" curl -s http://127.0.0.1:9464/metrics |
    grep -Eq '^edgeplane_cache_fallback_total\{result="bogus"\} [1-9]'
}
check "metric edgeplane_cache_fallback_total{result=\"bogus\"} counts it" wait_for 5 bogus_counted
diag "dns status cache.fallback: $(fb_json)"
fb_bogus_shown() {
  fb_json | py 'import json,sys; f=json.load(sys.stdin); sys.exit(0 if f["trust_anchor"]==sys.argv[1] and f["bogus"]>=1 else 1)' "$FBZ/trust-anchor"
}
check "dns status shows the anchor and the bogus count" wait_for 5 fb_bogus_shown
# The responder runs detached (stderr on /dev/null); the agent follows its
# log file and logs its lines, so the reason is in the agent's log too.
check "the agent's log carries the responder's reason (DNSSEC validation failed)" \
  wait_for 5 grep -q "cache fallback: resolver .* DNSSEC validation failed" "$LAB_LOG"
grep -m1 "cache fallback: resolver .* DNSSEC validation failed" "$LAB_LOG" | sed 's/^/#   /'
j=$(rcode_addrs fb-good.edge.test A)
check "the untampered names keep their validated answers: $j" [ "$j" = "NOERROR 198.18.77.1" ]

# The anchor file rewritten in place (as in a KSK rollover), then a reload:
# the responder is restarted with it and validates again.
rpid0=$(responder_pid)
printf '; rewritten in place\n' >>"$FBZ/trust-anchor"
lab_cli reload >/dev/null 2>&1
responder_replaced() { local p; p=$(responder_pid); [ -n "$p" ] && [ "$p" != 0 ] && [ "$p" != "$rpid0" ]; }
check "the anchor file rewritten in place: a reload restarts the responder (pid $rpid0 -> $(responder_pid))" \
  wait_for 10 responder_replaced
check "... which validates with it: fb-good2.edge.test answered" \
  wait_for 10 answers_as fb-good2.edge.test "NOERROR 198.18.77.3"
tap_done
