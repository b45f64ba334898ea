#!/usr/bin/env bash
# Drill (h): fragmented forged answers. An off-path host on the WAN sends the
# app pod's stub port forged answers "from" the upstream (random ids, a wrong
# address, padded to ~1700 bytes) as IPv4 fragments. A fragmented answer
# cannot be checked (its records may sit in a later fragment, or a forged
# later fragment may replace them in reassembly), so with drop_divergent in
# force (the default) the datapath drops the first fragment of every
# fragmented answer from an upstream and the datagram never reassembles.
# Asserted: zero forged datagrams reassembled in the pod (an nftables counter
# at the pod's input, after reassembly), the drops counted, the node stays on
# the upstream (forgeries are not an upstream failure), the stub answered
# right.
set -u
cd "$(dirname "$0")/../.." || exit 1
source tests/lib/drills.sh

FRAG_RATE=${FRAG_RATE:-100}

inject() { drill_forge spoof_frag.py "$FRAG_RATE" "$LAB_DIR/frag.out"; }
heal() { wait "${DRILL_FORGE_PID:-}" 2>/dev/null; diag "forger sent $(tail -1 "$LAB_DIR/frag.out") datagrams"; }

# Reassembled datagrams from the upstream's port 53 longer than any real
# answer of the lab, counted at the pod's input (after defragmentation).
pod_counter_up() {
  ip netns exec "$LAB_NS_APP" nft -f - <<EOT
table ip ep_drill_frag {
  chain in {
    type filter hook input priority 0;
    ip saddr $LAB_DNS4 udp sport 53 meta length > 1200 counter
  }
}
EOT
}
pod_forged() {
  ip netns exec "$LAB_NS_APP" nft list table ip ep_drill_frag 2>/dev/null |
    awk '/counter/ {for (i = 1; i <= NF; i++) if ($i == "packets") print $(i + 1)}'
}
frag_dropped() { drill_headers | pyj 'import json,sys; print(json.load(sys.stdin).get("fragments_dropped", 0))'; }
gt0() { [ "${1:-0}" -gt 0 ]; }

drill_setup
pod_counter_up || { not_ok "fragments: nftables counter in the app namespace"; tap_done; exit 1; }
fd0=$(frag_dropped)
drill_run_steady fragments inject heal answers
fd1=$(frag_dropped)
sent=$(tail -1 "$LAB_DIR/frag.out" 2>/dev/null)
forged=$(pod_forged)
diag "fragments: forger sent ${sent:-?}, fragments dropped by the datapath $((${fd1:-0} - ${fd0:-0})), forged datagrams reassembled in the pod ${forged:-?}"
check "fragments: the forger sent fragmented answers (${sent:-0})" gt0 "${sent:-0}"
check "fragments: the datapath dropped and counted them ($((${fd1:-0} - ${fd0:-0})) first fragments)" \
  gt0 $((${fd1:-0} - ${fd0:-0}))
check "fragments: zero forged answers reassembled in the pod (${forged:-?})" [ "${forged:-x}" = 0 ]
tap_done
