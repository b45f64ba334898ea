#!/usr/bin/env bash
# Drill (e): spoofing. An off-path host on the WAN floods the app pod's stub
# port with forged answers "from" the upstream, random transaction ids,
# wrong addresses. The datapath counts answers that match no query; the
# agent calls it spoofing and has the datapath drop unmatched answers (a
# forgery that guessed a pending id contradicts the snapshot and is dropped
# as divergent). The upstream itself is fine, so the node must NOT fail over:
# a flood anyone can send would otherwise take away every name outside the
# snapshot. The stub's real queries keep being answered right.
set -u
cd "$(dirname "$0")/../.." || exit 1
source tests/lib/drills.sh

SPOOF_RATE=${SPOOF_RATE:-3000}

stub_port() {
  ip netns exec "$LAB_NS_APP" ss -Hunap | awk '/python3/ {n = split($4, a, ":"); print a[n]; exit}'
}
inject() {
  local port
  port=$(stub_port)
  [ -n "$port" ] || { diag "no stub socket found in the app namespace"; return 1; }
  diag "spoofing $LAB_APP4:$port at $SPOOF_RATE answers/s"
  ip netns exec "$LAB_NS_CLIENT" "$PY3" tests/drills/spoof.py $LAB_DNS4 $LAB_APP4 "$port" \
    "$DRILL_FAULT_S" "$SPOOF_RATE" "$LAB_DIR/stub.txt" >"$LAB_DIR/spoof.out" 2>&1 &
  SPOOF_PID=$!
  netns_track_pid $SPOOF_PID
}
heal() { wait "${SPOOF_PID:-}" 2>/dev/null; diag "spoofer sent $(cat "$LAB_DIR/spoof.out")"; }

drill_setup
drill_run_steady spoofing inject heal unmatched_dropped
tap_done
