#!/usr/bin/env bash
# End to end: DNSSEC validation of the agent's DNS probes
# (dns.health.trust_anchor, docs/dnssec-probes.md). The lab's nsd serves a
# zone signed with ldnsutils (dns_zone_sign); the agent probes it with two
# canaries and the zone's DS as trust anchor: probes validate. A canary's
# address edited in the signed zone (its old RRSIG kept) makes the probes
# bogus and the upstream is judged hijacked; restored, it recovers. A
# garbage or missing anchor file is refused on reload with an error naming
# the key and the file, and the running config keeps validating; the KSK's
# DNSKEY works as an anchor too; an agent started with a garbage anchor
# exits with that error.
set -u
cd "$(dirname "$0")/../.."
source tests/lib/tap.sh
source tests/lib/netns.sh
source tests/lab/lab.sh

pyj() { /usr/bin/python3 -c "$@"; }
dns_json() { lab_cli dns status -o json 2>/dev/null; }
# upstream_field EXPR : a Python expression on u, the upstream's status object
upstream_field() {
  dns_json | pyj 'import json,sys
d = json.load(sys.stdin)
f = d.get("failover", d)
u = f["upstream_health"][0]
print('"$1"')' 2>/dev/null
}
dns_state() { dns_json | pyj 'import json,sys; d=json.load(sys.stdin); f=d.get("failover", d); print(f["state"], f["mode"])' 2>/dev/null; }
# probes RESULT : edgeplane_dns_probes_total{upstream=the lab upstream,result=RESULT}
probes() {
  lab_metrics | awk -v k="edgeplane_dns_probes_total{upstream=\"$LAB_DNS4\",result=\"$1\"}" \
    '$1 == k { print $2; f = 1 } END { if (!f) print 0 }'
}
at_least() { [ "$(probes "$1")" -ge "$2" ]; }
last_probe_has() { upstream_field 'u["last_probe"]' | grep -q -- "$1"; }
verdict_has() { upstream_field 'u["verdict"]' | grep -q -- "$1"; }
state_is() { [ "$(dns_state)" = "$1" ]; }
not_healthy() { ! state_is "healthy upstream"; }
status_ok() {
  [ "$(upstream_field 'u["verdict"]')" = ok ] && last_probe_has ': ok' && state_is "healthy upstream"
}
# validating N : N more ok probes within 5 s and no new bogus one meanwhile
# (probe counters restart with the prober: an applied reload starts a new one)
validating() {
  local b0 want
  b0=$(probes bogus)
  want=$(($(probes ok) + $1))
  wait_for 5 at_least ok "$want" && [ "$(probes bogus)" -le "$b0" ]
}
nsd_answers() { [ "$(ip netns exec "$LAB_NS_DNS" kdig +short +retry=0 +time=1 @$LAB_DNS4 "$1" A)" = "$2" ]; }

T0=$(date +%s)
lab_up 1 || { not_ok "lab setup"; tap_done; exit 1; }
lab_dns_up 60 || { not_ok "lab upstream DNS (nsd)"; tap_done; exit 1; }
Z=$LAB_ZONE_DIR
dns_upstream_stop "$Z"
if ! dns_zone_sign "$Z" edge.test || ! dns_upstream_start "$LAB_NS_DNS" $LAB_DNS4 "$Z" >/dev/null; then
  not_ok "edge.test signed with ldns-signzone and served by nsd"; tap_done; exit 1
fi
diag "KSK key tag $DNS_ZONE_KSK_TAG; anchor: $(cat "$Z/trust-anchor")"
check "nsd serves the signed zone (an A answer carries its RRSIG with the DO bit)" \
  sh -c "ip netns exec $LAB_NS_DNS kdig +dnssec +retry=0 @$LAB_DNS4 n1.edge.test A | grep -q 'RRSIG.*A 13 3'"

# Canaries: two names with one IPv4 address each (like the drills).
awk '$2 == "resolved" && $3 !~ /:/ && NF == 3' "$Z/expected.txt" | head -2 >"$LAB_DIR/canaries"
read -r C1 A1 <<<"$(awk 'NR == 1 {print $1, $3}' "$LAB_DIR/canaries")"
cp "$Z/trust-anchor" "$LAB_DIR/anchor.ds"
cp "$Z/trust-anchor.dnskey" "$LAB_DIR/anchor.dnskey"
printf 'this is not a trust anchor\n' >"$LAB_DIR/anchor.garbage"

dns_yaml() {
  cat <<EOT
dns:
  upstreams: [$LAB_DNS4]
  health:
    probe_interval_ms: 100
    timeout_ms: 500
    trust_anchor: $1
    canaries:
$(awk '{printf "      - {name: %s, expect: [%s]}\n", $1, $3}' "$LAB_DIR/canaries")
  failover:
    window_ms: 1000
    min_samples: 5
    failback_after_s: 1
EOT
}
LAB_EXTRA_YAML=$(dns_yaml "$LAB_DIR/anchor.ds")
lab_config_write
lab_agent_start || { not_ok "agent start"; tap_done; exit 1; }

# --- a signed zone, a DS anchor: probes validate ------------------------------
check "the agent validates probes for edge.test. with the configured anchor (log)" \
  grep -q "DNSSEC validation for zone edge.test. (1 anchor record(s) from $LAB_DIR/anchor.ds)" "$LAB_LOG"
check "probes pass validation: 20 ok probes within 10 s" wait_for 10 at_least ok 20
check "... and none is bogus (bogus=$(probes bogus), wrong=$(probes wrong))" \
  sh -c "[ $(probes bogus) -eq 0 ] && [ $(probes wrong) -eq 0 ]"
check "dns status: last probe ok, upstream verdict ok, state healthy" wait_for 5 status_ok
diag "last probe: $(upstream_field 'u["last_probe"]')"

# --- a tampered record with its old signature ---------------------------------
cp "$Z/edge.test.zone.signed" "$LAB_DIR/signed.good"
BAD=198.19.66.66
awk -v o="$C1." -v a="$A1" -v b="$BAD" '$1 == o && $3 == "IN" && $4 == "A" && $5 == a { $5 = b } { print }' \
  "$LAB_DIR/signed.good" >"$Z/edge.test.zone.signed"
check "the canary $C1 A $A1 -> $BAD edited in the signed zone (RRSIG untouched)" \
  grep -q "^$C1\.[[:space:]].*A[[:space:]]$BAD\$" "$Z/edge.test.zone.signed"
dns_upstream_reload "$Z"
check "nsd serves the tampered answer" wait_for 10 nsd_answers "$C1" "$BAD"
check "bogus probes are counted (5 within 10 s)" wait_for 10 at_least bogus 5
check "the last bogus probe says why ($C1, A, bogus)" wait_for 5 last_probe_has "$C1 A: bogus"
diag "last probe: $(upstream_field 'u["last_probe"]')"
check "the upstream is judged bad: verdict names bogus DNSSEC" wait_for 5 verdict_has "bogus DNSSEC"
check "... and the node left the healthy state ($(dns_state))" wait_for 5 not_healthy
check "the tampered canary was caught by validation, not by its expected address (wrong=$(probes wrong))" \
  [ "$(probes wrong)" -eq 0 ]
check "the agent logged the validation failure" grep -q "DNSSEC validation failed: $C1 A: bogus" "$LAB_LOG"
check "metric edgeplane_dns_hijack_suspected_total counts it" \
  sh -c "ip netns exec $LAB_NS_NODE curl -s http://127.0.0.1:9464/metrics | grep -q 'edgeplane_dns_hijack_suspected_total{upstream=\"$LAB_DNS4\"} [1-9]'"

# --- restored: validation passes again, the node recovers --------------------
cp "$LAB_DIR/signed.good" "$Z/edge.test.zone.signed"
touch "$Z/edge.test.zone.signed"
dns_upstream_reload "$Z"
wait_for 10 nsd_answers "$C1" "$A1"
check "the good zone restored: back to healthy within 15 s" wait_for 15 state_is "healthy upstream"
b0=$(probes bogus)
o0=$(probes ok)
sleep 1
b1=$(probes bogus)
o1=$(probes ok)
check "... with ok probes and no new bogus ones (ok $o0 -> $o1, bogus $b0 -> $b1)" \
  [ "$b1" -eq "$b0" -a "$o1" -gt "$o0" ]

# --- an unusable anchor is refused; the running config keeps validating ----
state0=$(dns_state)
LAB_EXTRA_YAML=$(dns_yaml "$LAB_DIR/anchor.garbage")
lab_config_write
out=$(lab_cli reload 2>&1)
rc=$?
diag "edgeplane reload: $out"
check "edgeplane reload with a garbage trust anchor fails (exit $rc)" [ "$rc" -ne 0 ]
check "... naming the key, the file and the line" \
  grep -q "dns.health.trust_anchor: $LAB_DIR/anchor.garbage:1: not a DS or DNSKEY record" <<<"$out"
check "edgeplane status shows the refused reload" \
  sh -c "ip netns exec $LAB_NS_NODE $LAB_CLI_BIN --socket $LAB_SOCK status | grep -q 'last reload refused: .*dns.health.trust_anchor: $LAB_DIR/anchor.garbage'"
check "the agent log says the running config keeps serving" \
  sh -c "grep -q '$LAB_CONFIG:[0-9]*: dns.health.trust_anchor: $LAB_DIR/anchor.garbage:1: ' '$LAB_LOG' &&
         grep -q 'refused: the running config keeps serving' '$LAB_LOG'"
check "the DNS state is unchanged ($state0 -> $(dns_state))" [ "$(dns_state)" = "$state0" ]
check "probes keep validating with the running anchor (5 more ok, none bogus)" validating 5

LAB_EXTRA_YAML=$(dns_yaml "$LAB_DIR/no-such-anchor")
lab_config_write
out=$(lab_cli reload 2>&1)
rc=$?
check "a missing anchor file is refused too: $out" \
  grep -q "dns.health.trust_anchor: $LAB_DIR/no-such-anchor: No such file" <<<"$out"
check "... (exit $rc)" [ "$rc" -ne 0 ]

# --- the KSK's DNSKEY as the anchor -------------------------------------------
LAB_EXTRA_YAML=$(dns_yaml "$LAB_DIR/anchor.dnskey")
lab_config_write
out=$(lab_cli reload 2>&1)
check "a reload with the KSK's DNSKEY as anchor is accepted ($out)" grep -q "config reloaded" <<<"$out"
check "DNSKEY-anchored probes validate (10 more ok, none bogus)" validating 10

# --- starting with a garbage anchor -----------------------------------------
lab_agent_stop
LAB_EXTRA_YAML=$(dns_yaml "$LAB_DIR/anchor.garbage")
lab_config_write "$LAB_DIR/bad.yaml"
ip netns exec "$LAB_NS_NODE" timeout 30 "$LAB_AGENT_BIN" --config "$LAB_DIR/bad.yaml" >"$LAB_DIR/bad.log" 2>&1
rc=$?
diag "agent with a garbage anchor: exit $rc: $(grep -m1 'cannot start' "$LAB_DIR/bad.log")"
check "an agent started with a garbage trust anchor exits with an error (exit $rc)" \
  [ "$rc" -ne 0 -a "$rc" -ne 124 ]
check "... naming the key and the file" \
  grep -q "dns.health.trust_anchor: $LAB_DIR/anchor.garbage:1" "$LAB_DIR/bad.log"

[ "$TAP_FAILED" -gt 0 ] && tail -40 "$LAB_LOG" | sed 's/^/# agent: /'
diag "took $(($(date +%s) - T0)) s"
tap_done
