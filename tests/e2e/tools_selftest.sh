#!/usr/bin/env bash
# Self-test of the traffic tools ep_echo and ep_load (tests/tools/), which the
# other end-to-end tests and the benchmarks rely on. Two namespaces joined by
# a veth, no load balancer: ep_echo in ns B, ep_load in ns A. Checks that the
# tools measure what they claim AND that they notice failures (a blackholed
# path, a killed backend, a closed port).
set -u
cd "$(dirname "$0")/../.." || exit 1
source tests/lib/tap.sh
source tests/lib/netns.sh

TOOLS=${EP_BUILD:-build}/tests/tools
ECHO=$TOOLS/ep_echo
LOAD=$TOOLS/ep_load
PORT=7000

if [ "$(id -u)" != 0 ]; then
  not_ok "tools self-test needs root (network namespaces)"; tap_done; exit
fi
if [ ! -x "$ECHO" ] || [ ! -x "$LOAD" ]; then
  not_ok "ep_echo and ep_load are built in $TOOLS (run make tests-bin)"; tap_done; exit
fi

if ! NA=$(netns_add a) || ! NB=$(netns_add b); then not_ok "create namespaces"; tap_done; exit; fi
T=$(netns_tmpdir)
netns_veth "$NA" va "$NB" vb || { not_ok "create veth"; tap_done; exit; }
ip -n "$NA" addr add 10.77.250.1/24 dev va
ip -n "$NB" addr add 10.77.250.2/24 dev vb
ip -n "$NB" addr add 10.77.250.3/24 dev vb        # second address: UDP replies must come from it
ip -n "$NA" addr add fd77:250::1/64 dev va nodad
ip -n "$NB" addr add fd77:250::2/64 dev vb nodad
ip -n "$NB" addr add fd77:250::3/64 dev vb nodad
# crr leaves TIME_WAIT sockets on the client: let it reuse them
ip netns exec "$NA" sysctl -qw net.ipv4.tcp_tw_reuse=1
ip netns exec "$NA" sysctl -qw net.ipv4.ip_local_port_range="10000 65000"

# bg_in_b LOGBASE cmd... : starts cmd in ns B, stdout to LOGBASE.out, stderr
# appended to LOGBASE.err; prints its pid (the same process: ip and sh exec)
bg_in_b() {
  # shellcheck disable=SC2016 # expanded by the inner sh
  netns_bg "$NB" sh -c 'b=$1; shift; exec "$@" >"$b.out" 2>>"$b.err"' sh "$@"
}

# start_echo NAME: ep_echo --id NAME in ns B on $PORT; sets ECHO_PID
start_echo() {
  ECHO_PID=$(bg_in_b "$T/echo" "$ECHO" --id "$1" --port "$PORT" --bytes 4m)
  netns_track_pid "$ECHO_PID"
  wait_for 5 grep -qx ready "$T/echo.out"
}

# ns_guard: stop with one clear failure if our namespaces were deleted from
# outside (e.g. a concurrent `ip -all netns delete`): every later check would
# fail for that reason alone.
ns_guard() {
  [ -e "/run/netns/$NA" ] && [ -e "/run/netns/$NB" ] && return 0
  not_ok "namespaces $NA/$NB were deleted by something outside this test; results are void"
  tap_done; exit 1
}

# load OUT ARGS...: runs ep_load in ns A, JSON to $T/OUT.json, stderr to $T/OUT.err
load() {
  local out=$1; shift
  ns_guard
  ip netns exec "$NA" "$LOAD" "$@" >"$T/$out.json" 2>"$T/$out.err"
}

# jcheck "description" OUT 'python expression over d (the JSON)'
jcheck() {
  local desc=$1 out=$2 expr=$3
  if "$PY3" -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if eval(sys.argv[2]) else 1)' \
      "$T/$out.json" "$expr" 2>"$T/$out.pyerr"; then
    ok "$desc"
  else
    not_ok "$desc"
    diag "expected: $expr"
    diag "json: $(head -c 1500 "$T/$out.json")"
    diag "stderr: $(tail -n 5 "$T/$out.err" | tr '\n' '|')"
    [ -s "$T/$out.pyerr" ] && diag "python: $(tail -n 1 "$T/$out.pyerr")"
    if [ ! -e "/run/netns/$NA" ] || [ ! -e "/run/netns/$NB" ]; then
      diag "namespaces $NA/$NB were deleted by something outside this test"
    fi
  fi
}

quiet() { "$@" >/dev/null 2>&1; }
check "ep_echo --help" quiet "$ECHO" --help
check "ep_load --help" quiet "$LOAD" --help
"$LOAD" --mode bogus --target 1.2.3.4:5 >/dev/null 2>&1; rc=$?
check "ep_load: bad usage exits 2 (got $rc)" test "$rc" = 2
"$LOAD" --mode rr --target fd77::1:80 >/dev/null 2>&1; rc=$?
check "ep_load: IPv6 target without brackets is bad usage (got $rc)" test "$rc" = 2

check "ep_echo be1 is ready in ns B" start_echo be1

# ---- healthy path ------------------------------------------------------------
ALL_OK='d["ok"]==500 and d["failed"]==0 and d["backends"]=={"be1":500} and sum(d["errors"].values())==0'
load tc4 --target 10.77.250.2:$PORT --mode tcp-conns --count 500 --concurrency 50
jcheck "tcp-conns 500 over IPv4: all ok from be1" tc4 "$ALL_OK"
load tc6 --target "[fd77:250::2]:$PORT" --mode tcp-conns --count 500 --concurrency 50
jcheck "tcp-conns 500 over IPv6: all ok from be1" tc6 "$ALL_OK"
jcheck "tcp-conns JSON shape" tc6 \
  'set(d)>={"mode","target","count","ok","failed","errors","backends","seconds","latency_us"} and set(d["errors"])>={"connect","timeout","reset","short"} and d["mode"]=="tcp-conns"'

load ur4 --target 10.77.250.2:$PORT --mode udp-rr --count 500 --concurrency 50
jcheck "udp-rr 500 over IPv4: all ok from be1" ur4 "$ALL_OK"
jcheck "udp-rr reports latency" ur4 'd["latency_us"]["samples"]==500 and 0<d["latency_us"]["p50"]<=d["latency_us"]["p99"]<=d["latency_us"]["max"]'
load ur6 --target "[fd77:250::2]:$PORT" --mode udp-rr --count 500 --concurrency 50
jcheck "udp-rr 500 over IPv6: all ok from be1" ur6 "$ALL_OK"
# ep_load's UDP sockets are connected: a reply from the wrong source is dropped
# (retries only cover drops: a wrong-source reply is dropped on every attempt)
load ur4b --target 10.77.250.3:$PORT --mode udp-rr --count 200 --timeout-ms 300
jcheck "udp-rr to a secondary IPv4 address: replies come from it" ur4b 'd["ok"]==200'
load ur6b --target "[fd77:250::3]:$PORT" --mode udp-rr --count 200 --timeout-ms 300
jcheck "udp-rr to a secondary IPv6 address: replies come from it" ur6b 'd["ok"]==200'

load get --target 10.77.250.2:$PORT --mode tcp-conns --count 10 --concurrency 5 --get 1000000
jcheck "GET 1 MB x10: payload verified" get 'd["ok"]==10 and d["bytes"]==10*1000000'

# --bind on both sides: a second backend bound to the secondary addresses only
BE2=$(bg_in_b "$T/be2" "$ECHO" --id be2 --port 7001 --bind 10.77.250.3 --bind fd77:250::3)
netns_track_pid "$BE2"
check "ep_echo be2 with --bind is ready" wait_for 5 grep -qx ready "$T/be2.out"
load bind4 --target 10.77.250.3:7001 --mode tcp-conns --count 50 --bind 10.77.250.1
jcheck "tcp-conns --bind to the bound backend: all from be2" bind4 'd["ok"]==50 and d["backends"]=={"be2":50}'
load bind6 --target "[fd77:250::3]:7001" --mode udp-rr --count 50 --bind fd77:250::1
jcheck "udp-rr --bind over IPv6 to the bound backend: all from be2" bind6 'd["ok"]==50 and d["backends"]=={"be2":50}'
load bindx --target 10.77.250.2:7001 --mode tcp-conns --count 5
jcheck "be2 does not answer on an address it is not bound to" bindx 'd["ok"]==0 and d["errors"]["connect"]==5'

load hold --target 10.77.250.2:$PORT --mode hold --conns 10 --duration 3 --interval-ms 100
jcheck "hold 10 conns for 3 s: alive 10, broken 0" hold \
  'd["alive"]==10 and d["broken"]==0 and d["backend_changed"]==0 and d["ping_failures"]==0 and d["backends"]=={"be1":10}'
jcheck "hold pinged every round" hold 'd["rounds"]>=20 and d["pings"]==10*d["rounds"] and d["first_failure"] is None'

load rr --target 10.77.250.2:$PORT --mode rr --duration 2 --conns 2
jcheck "rr 2 s: tps > 0, p50 <= p99" rr \
  'd["tps"]>0 and d["transactions"]>0 and d["failed"]==0 and d["latency_us"]["p50"]<=d["latency_us"]["p90"]<=d["latency_us"]["p99"]<=d["latency_us"]["p999"]<=d["latency_us"]["max"]'
jcheck "rr: tps matches transactions/seconds" rr 'abs(d["tps"]-d["transactions"]/d["seconds"])<=0.01*d["tps"]+1 and 1.9<=d["seconds"]<=2.1'
load rrc --target "[fd77:250::2]:$PORT" --mode rr --count 1000 --conns 4
jcheck "rr --count 1000 over IPv6: exactly 1000 transactions" rrc 'd["transactions"]==1000 and d["failed"]==0'

load crr --target 10.77.250.2:$PORT --mode crr --duration 2 --conns 2 --warmup 0.5
jcheck "crr 2 s: tps > 0" crr 'd["tps"]>0 and d["failed"]==0 and d["latency_us"]["p50"]<=d["latency_us"]["p99"] and d["backends"]=={"be1":d["transactions"]}'
load crrate --target 10.77.250.2:$PORT --mode crr --duration 1 --conns 2 --rate 200
jcheck "crr --rate 200 for 1 s: about 200 transactions" crrate '150<=d["transactions"]<=205'

# ---- the tools must notice failures ---------------------------------------------
# replies from B to A are blackholed: every connection times out
ip -n "$NB" route add blackhole 10.77.250.1/32
load bhc --target 10.77.250.2:$PORT --mode tcp-conns --count 20 --concurrency 20 --timeout-ms 300
jcheck "blackhole: tcp-conns counts timeouts" bhc 'd["ok"]==0 and d["errors"]["timeout"]==20 and d["first_failure"]'
load bhu --target 10.77.250.2:$PORT --mode udp-rr --count 20 --timeout-ms 200 --retries 1
jcheck "blackhole: udp-rr counts timeouts" bhu 'd["ok"]==0 and d["errors"]["timeout"]==20'
ip -n "$NB" route del blackhole 10.77.250.1/32

# hold, then blackhole the path mid-run: pings time out
rm -f "$T/ready1"
ns_guard
ip netns exec "$NA" "$LOAD" --target 10.77.250.2:$PORT --mode hold --conns 10 --duration 20 \
  --interval-ms 100 --timeout-ms 300 --ready-file "$T/ready1" >"$T/hbh.json" 2>"$T/hbh.err" &
HP=$!; netns_track_pid "$HP"
if wait_for 10 test -e "$T/ready1"; then
  ok "hold writes its ready file"
  sleep 0.5
  ip -n "$NB" route add blackhole 10.77.250.1/32
  sleep 1
  kill -USR1 "$HP"
else
  not_ok "hold writes its ready file"; kill "$HP"
fi
wait "$HP"; rc=$?
check "hold stopped by SIGUSR1 exits 0 (got $rc)" test "$rc" = 0
jcheck "hold across a blackhole: all 10 broken by timeouts" hbh \
  'd["alive"]==0 and d["broken"]==10 and d["errors"]["timeout"]==10 and d["ping_failures"]==10 and d["interrupted"] and "no reply" in d["first_failure"]'
ip -n "$NB" route del blackhole 10.77.250.1/32

# hold, then kill the backend: connections break (detected even while idle)
rm -f "$T/ready2"
ns_guard
ip netns exec "$NA" "$LOAD" --target "[fd77:250::2]:$PORT" --mode hold --conns 10 --duration 20 \
  --interval-ms 100 --ready-file "$T/ready2" >"$T/hkill.json" 2>"$T/hkill.err" &
HP=$!; netns_track_pid "$HP"
if wait_for 10 test -e "$T/ready2"; then
  sleep 0.5
  kill "$ECHO_PID"
  wait_for 5 sh -c "! kill -0 $ECHO_PID 2>/dev/null"
  sleep 0.5
fi
kill -TERM "$HP"; wait "$HP"; rc=$?
check "hold stopped by SIGTERM exits 0 (got $rc)" test "$rc" = 0
jcheck "hold after killing ep_echo: all 10 broken" hkill \
  'd["established"]==10 and d["alive"]==0 and d["broken"]==10 and d["first_failure"] is not None'
check "ep_echo exited cleanly on SIGTERM" grep -q "signal 15, exiting" "$T/echo.err"

# nothing listens any more
load dead --target 10.77.250.2:$PORT --mode tcp-conns --count 50 --concurrency 10
jcheck "closed port: tcp-conns counts connect failures" dead 'd["ok"]==0 and d["failed"]==50 and d["errors"]["connect"]==50'
load deadu --target 10.77.250.2:$PORT --mode udp-rr --count 50 --timeout-ms 200 --retries 0
jcheck "closed port: udp-rr fails every request" deadu 'd["ok"]==0 and d["failed"]==50'
load deadrr --target 10.77.250.2:$PORT --mode rr --duration 0.5
jcheck "closed port: rr reports failures, no transactions" deadrr 'd["transactions"]==0 and d["failed"]>0 and d["latency_us"]["p50"] is None'

tap_done
