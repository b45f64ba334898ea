#!/usr/bin/env bash
# Drill: the agent lost while the node is failed over, seen by an Alpine-like
# pod. musl's getaddrinfo (tests/tools/musl/ep_musl_resolve.c, static) asks A
# and AAAA together and fails the lookup when either goes unanswered, so an
# IPv4-only name resolves only when the cache gives A and a NODATA for AAAA.
# With the upstream blackholed and the node answering from the cache, the
# agent is killed (-9), stopped (SIGTERM) and crash-looped (started and killed
# again and again, before and after it is ready); the pod's lookups must not
# fail in any of these, and the node fails back once the upstream is healed
# and an agent runs again.
set -u
cd "$(dirname "$0")/../.." || exit 1
source tests/lib/drills.sh

MUSL=${EP_BUILD:-$LAB_ROOT/build}/tests/tools/ep_musl_resolve
[ -x "$MUSL" ] || { not_ok "$MUSL is built (make tests-bin; musl-gcc from musl-tools)"; tap_done; exit 1; }

drill_setup
# The pod's resolv.conf: the upstream, as a ClusterFirst pod on a node whose
# resolver is the upstream; musl's own timeout and attempts.
printf 'nameserver %s\noptions timeout:1 attempts:2\n' "$LAB_DNS4" >"$LAB_DIR/musl-resolv.conf"
# Names in the snapshot with IPv4 addresses only (AAAA must come back NODATA),
# and a few with both. Not the lab's 100-address name: its answer needs TCP,
# which Debian 12's musl (1.2.3) never falls back to, upstream or cache.
awk '$2 == "resolved" && NF <= 10 { v6 = 0; for (i = 3; i <= NF; i++) if ($i ~ /:/) v6 = 1; if (!v6) print $1 }' \
  "$LAB_ZONE_DIR/expected.txt" | sed -n '3,42p' >"$LAB_DIR/musl-names"
awk '$2 == "resolved" && NF <= 10 { v6 = 0; for (i = 3; i <= NF; i++) if ($i ~ /:/) v6 = 1; if (v6) print $1 }' \
  "$LAB_ZONE_DIR/expected.txt" | head -10 >>"$LAB_DIR/musl-names"
n_names=$(wc -l <"$LAB_DIR/musl-names")

# musl reads /etc/resolv.conf only: a mount namespace of its own gives it the pod's.
musl() {
  ip netns exec "$LAB_NS_APP" unshare --mount sh -c 'mount --bind "$0" /etc/resolv.conf && shift && exec "$@"' \
    "$LAB_DIR/musl-resolv.conf" - "$MUSL" "$@"
}
musl_ok() { pyj 'import json,sys; j=json.loads(sys.argv[1]); sys.exit(0 if j["lookups"] > 0 and j["failed"] == 0 else 1)' "$1"; }
# musl_round TAG: every name once; a TAP check
musl_round() {
  local out
  out=$(musl --file "$LAB_DIR/musl-names" 2>&1)
  diag "$1: $out"
  check "$1: the musl pod resolved all $n_names names (A and AAAA asked together)" musl_ok "$out"
}
redirected() { lab_cli dns status -o json | pyj 'import json,sys; d=json.load(sys.stdin); sys.exit(0 if d["failover"]["mode"] == "cache" else 1)'; }

# Static: no program interpreter (dynamic loader) in its program headers.
check "the musl client is static (no loader in the pod needed)" bash -c "readelf -lW '$MUSL' | grep -q LOAD && ! readelf -lW '$MUSL' | grep -q INTERP"
musl_round "healthy upstream"

dns_upstream_blackhole "$LAB_NS_DNS"
t0=$(date +%s.%N)
# The pod's own traffic is part of what the node watches: keep some flowing.
musl --rounds 30 --interval-ms 20 --file "$LAB_DIR/musl-names" >/dev/null 2>&1 &
W=$!; netns_track_pid $W
check "blackholed upstream: the node fails over to the cache" wait_for 20 drill_mode_is cache
kill "$W" 2>/dev/null; wait "$W" 2>/dev/null
diag "failed over $(pyj "print(round($(date +%s.%N) - $t0, 2))") s after the blackhole"
musl_round "failed over, agent running"

# --- kill -9 -------------------------------------------------------------------
lab_agent_kill9
check "kill -9: no agent process left" bash -c "$(declare -f lab_agent_pid); LAB_NS_NODE=$LAB_NS_NODE LAB_CONFIG=$LAB_CONFIG; ! lab_agent_pid"
musl_round "failed over, agent killed (kill -9)"

# --- restart, then SIGTERM ---------------------------------------------------------
if lab_agent_start; then
  check "the agent restarted with the upstream still blackholed stays failed over" wait_for 10 drill_mode_is cache
  lab_agent_stop
  musl_round "failed over, agent stopped (SIGTERM)"
else
  not_ok "agent restart after kill -9"
fi

# --- crash loop: started and killed, before and after it is ready -------------
musl --duration 14 --interval-ms 20 --file "$LAB_DIR/musl-names" >"$LAB_DIR/musl-loop.json" 2>&1 &
L=$!; netns_track_pid $L
crashes=0
for i in 1 2 3 4 5 6; do
  if [ $((i % 2)) = 1 ]; then
    # killed while it starts, before READY
    lab_agent_start >/dev/null 2>&1 &
    S=$!
    sleep 0.$((2 + i))
  else
    # killed once ready
    lab_agent_start >/dev/null 2>&1
    S=
    sleep 0.5
  fi
  lab_agent_kill9 >/dev/null 2>&1
  # Killed before its process existed, it would start after all: kill what is left.
  sleep 0.2
  p=$(lab_agent_pid 2>/dev/null) && kill -9 $p 2>/dev/null
  [ -n "$S" ] && wait "$S" 2>/dev/null
  p=$(lab_agent_pid 2>/dev/null) && kill -9 $p 2>/dev/null
  crashes=$((crashes + 1))
  sleep 0.3
done
check "crash loop: $crashes agent starts, each killed (-9); none left running" \
  bash -c "$(declare -f lab_agent_pid); LAB_NS_NODE=$LAB_NS_NODE LAB_CONFIG=$LAB_CONFIG; [ $crashes = 6 ] && ! lab_agent_pid"
wait "$L" 2>/dev/null
out=$(cat "$LAB_DIR/musl-loop.json")
diag "musl lookups across the crash loop: $out"
check "crash loop: the musl pod's lookups across it all resolved" musl_ok "$out"
musl_round "failed over, after the crash loop, no agent"

# --- heal, an agent again, fail back -----------------------------------------------
dns_upstream_heal "$LAB_NS_DNS"
drill_ct_flush "$LAB_NS_DNS"
if lab_agent_start; then
  check "healed upstream and a running agent: the node fails back" wait_for $((DRILL_FAILBACK_S + 25)) drill_mode_is upstream
  musl_round "failed back"
else
  not_ok "agent start after the crash loop"
fi
tap_done
