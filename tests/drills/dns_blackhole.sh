#!/usr/bin/env bash
# Drill (a): blackhole. The upstream resolver stops answering (nftables drops
# every DNS query reaching it); the node must notice from its own pods'
# queries and probes timing out, answer from the local cache, label itself,
# and fail back once the upstream answers again.
set -u
cd "$(dirname "$0")/../.." || exit 1
source tests/lib/drills.sh

inject() { dns_upstream_blackhole "$LAB_NS_DNS"; }
heal() { dns_upstream_heal "$LAB_NS_DNS"; }

drill_setup
drill_run blackhole inject heal timeouts
tap_done
