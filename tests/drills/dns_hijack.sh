#!/usr/bin/env bash
# Drill (d): hijack. An nftables rule on the WAN path DNATs the upstream's
# DNS to a rogue resolver that answers every name with a wrong address. The
# datapath drops answers that contradict the trusted snapshot (so the stub
# retries instead of taking them), the canary probes get wrong answers, the
# node fails over and answers from the cache.
set -u
cd "$(dirname "$0")/../.." || exit 1
source tests/lib/tap.sh
source tests/lib/netns.sh
source tests/lab/lab.sh
source tests/lib/drills.sh

inject() { drill_hijack; }
heal() { drill_hijack_heal; }

drill_setup || { not_ok "drill setup"; tail -20 "$LAB_LOG" 2>/dev/null | sed 's/^/# /'; tap_done; exit 1; }
drill_run hijack inject heal divergent_dropped
tap_done
