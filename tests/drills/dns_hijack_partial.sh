#!/usr/bin/env bash
# Drill (d'): partial hijack. 30% of the upstream's answers (chosen at random
# per query) are replaced on the path by a wrong address, the rest are
# relayed untouched: a middlebox that tampers with some answers only. The
# datapath drops the answers that contradict the trusted snapshot (the stub
# retries), and their count alone moves the node to the cache, without
# waiting for a wrong canary answer.
set -u
cd "$(dirname "$0")/../.." || exit 1
source tests/lib/drills.sh

prepare_fault() { drill_divert_prepare wrong-answer 198.51.100.66 --share 30 --mode forward; }
inject() { drill_divert_apply; }
heal() { drill_divert_heal; }

drill_setup
drill_run hijack_partial inject heal divergent_dropped
tap_done
