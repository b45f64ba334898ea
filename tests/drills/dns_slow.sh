#!/usr/bin/env bash
# Drill (b): slow upstream. Every answer arrives 1000 ms late, twice the
# configured dns.health.timeout_ms (500): queries count as timeouts, the
# node fails over, late answers are counted as late (not as spoofing), and
# it fails back when answers are fast again.
set -u
cd "$(dirname "$0")/../.." || exit 1
source tests/lib/drills.sh

prepare_fault() { drill_divert_prepare delay 1000; }
inject() { drill_divert_apply; }
heal() { drill_divert_heal; }

drill_setup
drill_run slow inject heal late_answers
tap_done
