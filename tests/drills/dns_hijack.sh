#!/usr/bin/env bash
# Drill (d): hijack. An nftables rule on the WAN path DNATs the upstream's
# DNS to a rogue resolver that answers every name with a wrong address. The
# datapath drops answers that contradict the trusted snapshot (so the stub
# retries instead of taking them), the canary probes get wrong answers, the
# node fails over and answers from the cache.
set -u
cd "$(dirname "$0")/../.." || exit 1
source tests/lib/drills.sh

inject() { drill_hijack; }
heal() { drill_hijack_heal; }

drill_setup
drill_run hijack inject heal divergent_dropped
tap_done
