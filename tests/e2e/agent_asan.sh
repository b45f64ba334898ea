#!/usr/bin/env bash
# The agent built with AddressSanitizer + LeakSanitizer (make asan) runs the
# lab through start, traffic, good and bad reloads, CLI commands, metrics
# scrapes and SIGTERM, with the cache's responder (a fallback with a trust
# anchor) the same binary; any ASan error or leak report fails the test.
set -u
cd "$(dirname "$0")/../.."
source tests/lib/tap.sh
source tests/lib/netns.sh
source tests/lab/lab.sh

ASAN_BIN=${EP_BUILD:-build}/asan/edgeplane-agent
if [ ! -x "$ASAN_BIN" ]; then
  not_ok "ASan agent not built ($ASAN_BIN; run make asan)"; tap_done; exit 1
fi
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=23:log_path=stderr
export LSAN_OPTIONS=report_objects=1
LAB_AGENT_BIN=$ASAN_BIN
LAB_AGENT_WAIT=60

lab_up 2 || { not_ok "lab setup"; tap_done; exit 1; }
lab_backends_start 8080 || { not_ok "backends"; tap_done; exit 1; }
# Reports to files (one per process): the responder and dnsmasq are started
# with stderr on /dev/null, and the responder is this ASan binary too.
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=23:log_path=$LAB_DIR/asan
# The DNS cache too: the agent's side of dnsmasq and of the policy
# responder, and the responder process itself (this same ASan binary).
printf '198.18.0.1 n1.edge.test\n198.18.0.2 n2.edge.test\n' >"$LAB_DIR/preload.hosts"
: >"$LAB_DIR/domains.txt"
LAB_DOMAINS=$LAB_DIR/domains.txt
# Certificate sync too: one set from a directory, rotated and refused below.
source tests/lib/certs.sh
certs_init "$LAB_DIR/certs-ca"; certs_ca ca
for v in v1 v2; do
  mkdir -p "$LAB_DIR/certs-sets/$v"
  certs_leaf ca "$LAB_DIR/certs-sets/$v/leaf" asan.edge.example &&
    mv "$LAB_DIR/certs-sets/$v/leaf.crt" "$LAB_DIR/certs-sets/$v/tls.crt" &&
    mv "$LAB_DIR/certs-sets/$v/leaf.key" "$LAB_DIR/certs-sets/$v/tls.key" &&
    cp "$CERTS_DIR/ca.crt" "$LAB_DIR/certs-sets/$v/" && rm -f "$LAB_DIR/certs-sets/$v"/leaf.*
done
mkdir -p "$LAB_DIR/certs-src"; certs_k8s_write "$LAB_DIR/certs-src" "$LAB_DIR/certs-sets/v1"
# The responder's DNSSEC side too: a fallback with a trust anchor, and
# nobody at the fallback's address, so the key fetch times out.
mkdir -p "$LAB_DIR/keys"
ksk=$(cd "$LAB_DIR/keys" && ldns-keygen -a ECDSAP256SHA256 -k edge.test) &&
  ldns-key2ds -n -2 "$LAB_DIR/keys/$ksk.key" >"$LAB_DIR/anchor.ds"
LAB_EXTRA_YAML="$(lab_cache_yaml 0)
    fallback: [127.0.0.55]
  health:
    trust_anchor: $LAB_DIR/anchor.ds
certs:
  - {name: asan, source: {dir: $LAB_DIR/certs-src}, target: $LAB_DIR/certs-target, reload: {command: 'true'}}"
lab_config_write
lab_agent_start || { not_ok "ASan agent start"; tap_done; exit 1; }
ok "ASan agent started and ready"

out=$(lab_load --target "$LAB_VIP4:80" --mode tcp-conns --count 300 --concurrency 8 2>/dev/null)
check "traffic through the ASan agent's datapath" grep -q '"failed":0' <<<"$out"
nodata() {
  printf 'n1.edge.test AAAA\n' | ip netns exec "$LAB_NS_NODE" "$PY3" tests/lib/dnsq.py "$LAB_CACHE_IP" batch |
    grep -q '"rcode": "NOERROR", "ttl": null, "addrs": \[\], "soa": true'
}
check "the cache answers NODATA through the ASan policy responder" wait_for 10 nodata
anchored_servfail() {
  printf 'fb.edge.test A\n' | ip netns exec "$LAB_NS_NODE" "$PY3" tests/lib/dnsq.py "$LAB_CACHE_IP" batch |
    grep -q '"rcode": "SERVFAIL"'
}
check "a name of the anchored zone whose keys cannot be fetched: SERVFAIL from the ASan responder" \
  wait_for 10 anchored_servfail
check "... which runs with the fallback and the anchor" \
  sh -c "tr '\\0' '\\n' </proc/\$(cat '$LAB_DIR/policy.pid')/cmdline | grep -qx -- '--trust-anchor=$LAB_DIR/anchor.ds'"
for c in status services dns certs; do lab_cli $c >/dev/null; lab_cli $c -o json >/dev/null; done
certs_k8s_write "$LAB_DIR/certs-src" "$LAB_DIR/certs-sets/v2"
check "certificate sync in the ASan agent: rotation installed" \
  wait_for 10 bash -c "[ \"\$(openssl x509 -in '$LAB_DIR/certs-target/tls.crt' -noout -serial)\" = \"\$(openssl x509 -in '$LAB_DIR/certs-sets/v2/tls.crt' -noout -serial)\" ]"
mkdir -p "$LAB_DIR/certs-bad"; cp "$LAB_DIR/certs-sets/v1/tls.crt" "$LAB_DIR/certs-sets/v1/ca.crt" "$LAB_DIR/certs-bad/"
cp "$LAB_DIR/certs-sets/v2/tls.key" "$LAB_DIR/certs-bad/"
certs_k8s_write "$LAB_DIR/certs-src" "$LAB_DIR/certs-bad"
check "certificate sync in the ASan agent: a mismatched set refused" \
  wait_for 10 bash -c "ip netns exec $LAB_NS_NODE $LAB_CLI_BIN --socket $LAB_SOCK certs | grep -q 'does not match'"
lab_cli backend drain web "$(lab_be4 1):8080" >/dev/null
lab_cli backend undrain web "$(lab_be4 1):8080" >/dev/null
lab_cli backend drain nosuch 1.2.3.4:5 >/dev/null 2>&1
for _ in 1 2 3; do lab_metrics >/dev/null; done
ip netns exec "$LAB_NS_NODE" curl -s --max-time 5 http://127.0.0.1:9464/nope >/dev/null
# A malformed control request must be answered, not crash the agent.
ip netns exec "$LAB_NS_NODE" sh -c "printf 'not json\n' | timeout 5 socat - UNIX-CONNECT:$LAB_SOCK" >/dev/null 2>&1

# Good reload (a backend removed), bad reload, then the original again.
cp "$LAB_CONFIG" "$LAB_DIR/orig.yaml"
LAB_N=1 lab_config_write "$LAB_DIR/one.yaml"; cp "$LAB_DIR/one.yaml" "$LAB_CONFIG"; lab_agent_signal HUP; sleep 1
printf 'services: [\n' >"$LAB_CONFIG"; lab_agent_signal HUP; sleep 1
cp "$LAB_DIR/orig.yaml" "$LAB_CONFIG"; lab_agent_signal HUP; sleep 3   # one conntrack pass releases removed ids
out=$(lab_load --target "[$LAB_VIP6]:80" --mode tcp-conns --count 200 --concurrency 8 2>/dev/null)
check "traffic after the reloads" grep -q '"failed":0' <<<"$out"

lab_agent_stop
# The responder outlives a plain stop; stop it to get its own leak report.
rpid=$(cat "$LAB_DIR/policy.pid" 2>/dev/null)
check "the ASan policy responder outlived the agent's SIGTERM" kill -0 "${rpid:-0}"
[ -n "$rpid" ] && kill -TERM "$rpid" 2>/dev/null
for _ in $(seq 1 50); do kill -0 "${rpid:-0}" 2>/dev/null || break; sleep 0.1; done
check "ASan agent exits 0 on SIGTERM (status ${LAB_AGENT_RC:-?}; 23 = sanitizer report)" [ "${LAB_AGENT_RC:-1}" = 0 ]
reports=("$LAB_LOG" "$LAB_DIR"/asan.*)
if grep -qsE "ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:" "${reports[@]}"; then
  not_ok "no AddressSanitizer/LeakSanitizer/UBSan report"
  grep -sA30 -E "ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:" "${reports[@]}" | head -60 | sed 's/^/# /'
else
  ok "no AddressSanitizer/LeakSanitizer/UBSan report"
fi
tap_done
