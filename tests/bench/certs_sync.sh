#!/usr/bin/env bash
# Certificate sync, source change -> consumer serving the new certificate:
# the nginx mTLS run of tests/e2e/certs_nginx.sh (dir source, the kubelet's
# ..data swap; SIGHUP via pidfile; verify by handshake) over N rotations,
# timed from the ..data rename to the first client handshake that shows the
# new serial. Then the secret source against the fake kube-apiserver
# (tests/e2e/certs_secret.sh): the Secret written -> the target holding it.
# Then the csr source (tests/e2e/certs_csr.sh): 20 renewals, new key ->
# installed, against the fake API server's approver and signer.
# Writes build/bench/certs_sync.json, certs_sync_secret.json, certs_sync_csr.json.
#
#   tests/bench/certs_sync.sh [ROTATIONS]     (default 100)
set -u
cd "$(dirname "$0")/../.."
B=${EP_BUILD:-$PWD/build}
mkdir -p "$B/bench"
out=$(EP_CERTS_ROTATIONS=${1:-100} EP_CERTS_BENCH_JSON=$B/bench/certs_sync.json bash tests/e2e/certs_nginx.sh 2>&1)
grep -E '^(not ok|# source change)' <<<"$out"
[ -s "$B/bench/certs_sync.json" ] || { echo "certs_sync: the run produced no numbers"; echo "$out" | tail -20; exit 1; }
out=$(EP_CERTS_SECRET_ROTATIONS=${1:-100} EP_CERTS_BENCH_SECRET_JSON=$B/bench/certs_sync_secret.json bash tests/e2e/certs_secret.sh 2>&1)
grep -E '^(not ok|# Secret written)' <<<"$out"
out=$(EP_CERTS_CSR_ISSUANCES=20 EP_CERTS_BENCH_CSR_JSON=$B/bench/certs_sync_csr.json bash tests/e2e/certs_csr.sh 2>&1)
grep -E '^(not ok|# CSR renewal)' <<<"$out"
/usr/bin/python3 - "$B/bench/certs_sync.json" "$B/bench/certs_sync_secret.json" "$B/bench/certs_sync_csr.json" <<'PY'
import json, os, sys
print("%-8s %-48s %9s %8s %8s %8s %10s" % ("source", "consumer", "rotations", "median", "p95", "max", "hs failed"))
r = json.load(open(sys.argv[1]))
print("%-8s %-48s %9d %6.1fms %6.1fms %6.1fms %10d" % (r["source"], r["consumer"], r["measured"], r["median_ms"],
      r["p95_ms"], r["max_ms"], r["failed_handshakes"]))
if os.path.exists(sys.argv[2]):
    r = json.load(open(sys.argv[2]))
    print("%-8s %-48s %9d %6.1fms %6.1fms %6.1fms %10s" % (r["source"], r["consumer"], r["rotations"], r["median_ms"],
          r["p95_ms"], r["max_ms"], "-"))
    print("         (the agent's share of the secret path, event received -> installed: median %.1f ms, p95 %.1f ms)"
          % (r["agent_median_ms"], r["agent_p95_ms"]))
if os.path.exists(sys.argv[3]):
    r = json.load(open(sys.argv[3]))
    print("%-8s %-48s %9d %6.1fms %6.1fms %6.1fms %10s" % (r["source"], "renewal: new key -> installed (fake signer)",
          r["issuances"], r["median_ms"], r["p95_ms"], r["max_ms"], "-"))
PY
