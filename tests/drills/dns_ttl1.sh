#!/usr/bin/env bash
# Drill (g): a pod floods the upstream with queries sent with IP TTL 1 (any
# unprivileged process can). They die on the node (time exceeded) and never
# reach the upstream, which is fine. A query counts as sent only where it
# leaves the node (TC egress), so none of them may count, none may time out,
# and the node must stay on the upstream: were they counted at the pod's
# interface, every one would be a "timeout" and the node would fail over,
# leaving every name outside the snapshot to SERVFAIL.
set -u
cd "$(dirname "$0")/../.." || exit 1
source tests/lib/drills.sh

TTL1_RATE=${TTL1_RATE:-400}

inject() {
  diag "TTL-1 queries from the app pod to $LAB_DNS4 at $TTL1_RATE/s"
  ip netns exec "$LAB_NS_APP" "$PY3" tests/drills/ttl1_flood.py $LAB_DNS4 "$DRILL_FAULT_S" "$TTL1_RATE" \
    "$LAB_DIR/stub.txt" >"$LAB_DIR/ttl1.out" 2>&1 &
  TTL1_PID=$!
  netns_track_pid $TTL1_PID
}
heal() {
  wait "${TTL1_PID:-}" 2>/dev/null
  diag "the pod sent $(cat "$LAB_DIR/ttl1.out") TTL-1 queries"
}
ttl1_evidence() {
  # what the flood did: ICMP time exceeded came back to the pod (the node dropped them)
  ip netns exec "$LAB_NS_APP" nstat -az IcmpInTimeExcds 2>/dev/null | awk '/IcmpInTimeExcds/ {print $2}'
}

ttl1_ran() { [ "${1:-0}" -gt 100 ] && [ "${2:-0}" -gt 0 ]; }

drill_setup
te0=$(ttl1_evidence)
drill_run_steady ttl1 inject heal answers 1
te1=$(ttl1_evidence)
sent=$(cat "$LAB_DIR/ttl1.out" 2>/dev/null || echo 0)
check "ttl1: the flood ran and died on the node ($sent sent, $((${te1:-0} - ${te0:-0})) time-exceeded back)" \
  ttl1_ran "$sent" $((${te1:-0} - ${te0:-0}))
check "ttl1: the datapath counted fewer queries than the flood sent (only the stub's)" \
  pyj 'import json,sys; d=json.loads(sys.argv[1]); sys.exit(0 if (d["upstream_counters"] or {}).get("queries", 1 << 30) < int(sys.argv[2]) else 1)' \
  "$DRILL_JSON" "$sent"
tap_done
