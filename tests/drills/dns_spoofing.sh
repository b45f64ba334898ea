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

inject() { drill_forge spoof.py "$SPOOF_RATE" "$LAB_DIR/spoof.out"; }
heal() { wait "${DRILL_FORGE_PID:-}" 2>/dev/null; diag "spoofer sent $(cat "$LAB_DIR/spoof.out")"; }

drill_setup
drill_run_steady spoofing inject heal unmatched_dropped
tap_done
