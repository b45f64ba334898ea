#!/usr/bin/env bash
# Drill (b): slow upstream. Every answer arrives 1000 ms late, twice the
# configured dns.health.timeout_ms (500): queries count as timeouts, the
# node fails over, late answers are counted as late (not as spoofing), and
# it fails back when answers are fast again.
set -u
cd "$(dirname "$0")/../.." || exit 1
source tests/lib/tap.sh
source tests/lib/netns.sh
source tests/lab/lab.sh
source tests/lib/drills.sh

inject() { drill_divert delay 1000; }
heal() { drill_divert_heal; }

drill_setup || { not_ok "drill setup"; tail -20 "$LAB_LOG" 2>/dev/null | sed 's/^/# /'; tap_done; exit 1; }
drill_run slow inject heal late_answers
tap_done
