#!/usr/bin/env bash
# Drill (c): SERVFAIL storm. The upstream answers SERVFAIL to every query
# (a broken recursor behind it); stubs retry in vain, the node fails over on
# the SERVFAIL ratio and answers from the cache.
set -u
cd "$(dirname "$0")/../.." || exit 1
source tests/lib/drills.sh

prepare_fault() { drill_divert_prepare servfail; }
inject() { drill_divert_apply; }
heal() { drill_divert_heal; }

drill_setup
drill_run servfail inject heal servfail
tap_done
