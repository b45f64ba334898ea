#!/usr/bin/env bash
# Drill (c): SERVFAIL storm. The upstream answers SERVFAIL to every query
# (a broken recursor behind it); stubs retry in vain, the node fails over on
# the SERVFAIL ratio and answers from the cache.
set -u
cd "$(dirname "$0")/../.." || exit 1
source tests/lib/tap.sh
source tests/lib/netns.sh
source tests/lab/lab.sh
source tests/lib/drills.sh

inject() { drill_divert servfail; }
heal() { drill_divert_heal; }

drill_setup || { not_ok "drill setup"; tail -20 "$LAB_LOG" 2>/dev/null | sed 's/^/# /'; tap_done; exit 1; }
drill_run servfail inject heal servfail
tap_done
