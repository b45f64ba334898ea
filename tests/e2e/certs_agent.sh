#!/usr/bin/env bash
# Certificate sync inside the real agent, in the lab, confined by seccomp:
#   - a certs section is accepted and the initial set installed; rotation
#     through the kubelet's ..data swap; the consumer reloaded by a signal
#     via pidfile and, for a second set, by a command that the spawner runs
#     (its parent is the spawner, and it is not under the agent's filter);
#   - `edgeplane certs` (text and -o json), `edgeplane status` and /metrics
#     report serial, NotAfter, state, refusals and the three cert metrics;
#   - a refused set keeps the installed one and is shown with its reason;
#   - a restarted agent finds the installed set, does not reinstall it and
#     does not signal the consumer again; a change made while it was down
#     is installed at start;
#   - a config reload adding a set starts it (a bundle, a secret source and a
#     csr source against the fake API server); no seccomp violation throughout.
set -u
cd "$(dirname "$0")/../.."
source tests/lib/tap.sh
source tests/lib/netns.sh
source tests/lab/lab.sh
source tests/lib/certs.sh

lab_up 1 || { not_ok "lab setup"; tap_done; exit 1; }
W=$LAB_DIR/certs
mkdir -p "$W"
certs_init "$W/ca"; C=$W/ca
certs_ca ca || { not_ok "openssl makes the CA"; tap_done; exit 1; }
for i in 1 2 3 4 5; do
  d=$W/sets/v$i; mkdir -p "$d"
  certs_leaf ca "$d/leaf" payments.edge.example && mv "$d/leaf.crt" "$d/tls.crt" && mv "$d/leaf.key" "$d/tls.key" &&
    cp "$C/ca.crt" "$d/ca.crt" && rm -f "$d"/leaf.* || { not_ok "openssl makes set v$i"; tap_done; exit 1; }
done
d=$W/sets/expired; mkdir -p "$d"
certs_leaf ca "$d/leaf" payments.edge.example "" "$(certs_stamp -864000)" "$(certs_stamp -3600)" &&
  mv "$d/leaf.crt" "$d/tls.crt" && mv "$d/leaf.key" "$d/tls.key" && cp "$C/ca.crt" "$d/ca.crt" && rm -f "$d"/leaf.*
serial() { openssl x509 -in "$W/sets/$1/tls.crt" -noout -serial | sed 's/serial=//'; }

netns_bg_log "$W/consumer.log" "$LAB_NS_NODE" "$PY3" tests/lib/hup_counter.py "$W/hups" "$W/consumer.pid" >/dev/null
wait_for 5 test -s "$W/consumer.pid"
mkdir -p "$W/src" "$W/src2"
certs_k8s_write "$W/src" "$W/sets/v1"
certs_k8s_write "$W/src2" "$W/sets/v1"
certs_yaml() {
  echo "certs:"
  echo "  - name: payments"
  echo "    source: {dir: $W/src}"
  echo "    target: $W/target"
  echo "    expect: {san: [payments.edge.example]}"
  echo "    warn_before_s: 31536000"
  echo "    reload: {signal: HUP, pidfile: $W/consumer.pid}"
  echo "  - name: bycommand"
  echo "    source: {dir: $W/src2}"
  echo "    target: $W/target2"
  echo "    reload: {command: 'echo \$PPID >$W/cmd.ppid; grep Seccomp: /proc/self/status >$W/cmd.seccomp', timeout_ms: 3000}"
  echo "  - name: verified"
  echo "    source: {dir: $W/src3}"
  echo "    target: $W/target3"
  echo "    reload: {command: 'true', verify: '127.0.0.1:$VPORT', timeout_ms: 1000}"
  if [ "${1:-}" = more ]; then
    printf '  - name: roots\n    bundle: {dir: %s}\n    target: %s\n' "$W/src2" "$W/roots"
    printf '  - name: watched\n    source: {secret: edge/api-tls}\n    target: %s\n' "$W/target4"
    printf '  - name: identity\n    source: {csr: {signer_name: example.com/edge-mtls}}\n    target: %s\n    trust: %s\n' \
      "$W/target5" "$W/k8s-pki/csr-signer-ca.crt"
    printf 'kubernetes:\n  enabled: true\n  api_server: https://127.0.0.1:%s\n  token_file: %s\n  ca_file: %s\n' \
      "$KPORT" "$W/k8s-token" "$KCA"
  fi
}
# The fake API server in the node's namespace, for a secret source added by a reload.
echo tok-C >"$W/k8s-token"
netns_bg_log "$W/apiserver.out" "$LAB_NS_NODE" /usr/bin/python3 tests/k8s/fake_apiserver.py --token tok-C \
  --allow "list secrets,watch secrets,patch nodes,create certificatesigningrequests,get certificatesigningrequests" \
  --csr-signer --node lab-node --workdir "$W/k8s-pki" >/dev/null
wait_for 15 grep -q '^ready ' "$W/apiserver.out"
read -r _ KPORT KCPORT KCA < <(grep '^ready ' "$W/apiserver.out")
put_secret() {
  ip netns exec "$LAB_NS_NODE" curl -s -XPOST "http://127.0.0.1:$KCPORT/_control/secrets" -d "{\"namespace\": \"edge\", \"name\": \"api-tls\",
    \"data\": {\"tls.crt\": \"$(base64 -w0 "$W/sets/$1/tls.crt")\", \"tls.key\": \"$(base64 -w0 "$W/sets/$1/tls.key")\",
    \"ca.crt\": \"$(base64 -w0 "$W/sets/$1/ca.crt")\"}}" >/dev/null
}
put_secret v3
# A TLS server that never reloads: the verify step must say so.
VPORT=8443
mkdir -p "$W/src3"; certs_k8s_write "$W/src3" "$W/sets/v1"
netns_bg_log "$W/s_server.log" "$LAB_NS_NODE" openssl s_server -quiet -accept "127.0.0.1:$VPORT" \
  -cert "$W/sets/v5/tls.crt" -key "$W/sets/v5/tls.key" >/dev/null
LAB_EXTRA_YAML=$(certs_yaml) lab_config_write
check "--check-config accepts the certs section" bash -c "'$LAB_AGENT_BIN' --check-config --config '$LAB_CONFIG' >/dev/null 2>&1"
lab_agent_start || { not_ok "agent start"; tap_done; exit 1; }
AGENT=$(lab_agent_pid)
certs_json() { lab_cli certs -o json; }
cj() { json_get "$(certs_json)" "[s for s in j['sets'] if s['name'] == '$1'][0]$2"; }
check "the agent is confined (Seccomp: 2)" [ "$(awk '/^Seccomp:/ {print $2}' /proc/"$AGENT"/status)" = 2 ]
check "initial set installed: serial $(serial v1)" wait_for 10 bash -c "[ \"\$(openssl x509 -in '$W/target/tls.crt' -noout -serial 2>/dev/null)\" = 'serial=$(serial v1)' ]"
check "edgeplane certs -o json: payments installed with serial $(serial v1)" \
  wait_for 5 bash -c "[ \"\$(ip netns exec $LAB_NS_NODE $LAB_CLI_BIN --socket $LAB_SOCK certs -o json | /usr/bin/python3 -c 'import json,sys; s=json.load(sys.stdin)[\"sets\"][0]; print(s[\"state\"], s[\"serial\"])')\" = 'installed $(serial v1)' ]"
check "the consumer got SIGHUP" wait_for 5 bash -c "[ \"\$(cat $W/hups 2>/dev/null)\" = 1 ]"
check "the reload command ran, as the spawner's child" wait_for 5 test -s "$W/cmd.ppid"
SP=$(cat "$W/cmd.ppid" 2>/dev/null)
check "... whose parent ($SP) is the spawner, not the agent ($AGENT)" \
  bash -c "[ '$SP' != '$AGENT' ] && [ \"\$(cat /proc/$SP/comm 2>/dev/null)\" = ep-spawner ]"
check "... and not under the agent's seccomp filter ($(cat "$W/cmd.seccomp" 2>/dev/null | tr -s '\t ' ' '))" grep -qE 'Seccomp:\s+0' "$W/cmd.seccomp"

check "verify under seccomp: a consumer still serving another serial is reported as a failed reload" \
  wait_for 10 bash -c "ip netns exec $LAB_NS_NODE $LAB_CLI_BIN --socket $LAB_SOCK certs -o json | /usr/bin/python3 -c 'import json,sys; s=[x for x in json.load(sys.stdin)[\"sets\"] if x[\"name\"] == \"verified\"][0]; assert s[\"rotations\"][\"reload_failed\"] == 1 and \"127.0.0.1:$VPORT still shows serial $(serial v5)\" in s[\"last_result\"], s[\"last_result\"]'"
certs_k8s_write "$W/src" "$W/sets/v2"
check "rotation: $(serial v2) installed and reported" wait_for 10 bash -c "[ \"\$(ip netns exec $LAB_NS_NODE $LAB_CLI_BIN --socket $LAB_SOCK certs -o json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)[\"sets\"][0][\"serial\"])')\" = '$(serial v2)' ]"
check "rotation: second SIGHUP" wait_for 5 bash -c "[ \"\$(cat $W/hups)\" = 2 ]"
certs_k8s_write "$W/src" "$W/sets/expired"
check "expired set refused, reason shown" wait_for 10 bash -c "ip netns exec $LAB_NS_NODE $LAB_CLI_BIN --socket $LAB_SOCK certs | grep -q 'refused .*tls.crt has expired'"
out=$(lab_cli certs)
check "edgeplane certs text: state refused, serial $(serial v2) still installed" \
  bash -c "grep -q '^  state        refused' <<<'$out' && grep -q '^  serial       $(serial v2)' <<<'$out'"
check "edgeplane certs text: NotAfter, the expiry warning, reload kind, rotations, next renewal" \
  bash -c "grep -qE '^  not after    20[0-9-]+ [0-9:]+Z \(in .*\)  EXPIRING SOON' <<<'$out' && grep -q '^  reload       signal' <<<'$out' && grep -q '^  rotations    2 ok, 1 refused' <<<'$out' && grep -q '^  next renewal when the source changes' <<<'$out'"
echo "$out" | sed -n '1,12p' | sed 's/^/# /'
warned=$(grep -oE 'payments: installed serial [0-9A-F]+ .* within the warning threshold' "$LAB_LOG" | awk '{print $4}')
check "the expiry warning is logged once per installed serial ($(wc -l <<<"$warned") lines)" \
  bash -c "[ -n '$warned' ] && [ \"\$(sort <<<'$warned' | uniq -d)\" = '' ]"
check "edgeplane status: the certs line" bash -c "lab_cli() { ip netns exec $LAB_NS_NODE $LAB_CLI_BIN --socket $LAB_SOCK \"\$@\"; }; lab_cli status | grep -q '^certs       3 sets, 3 installed, 1 refused or failing'"
check "edgeplane status -o json: certs are the per-set objects" \
  bash -c "ip netns exec $LAB_NS_NODE $LAB_CLI_BIN --socket $LAB_SOCK status -o json | /usr/bin/python3 -c 'import json,sys; c=json.load(sys.stdin)[\"certs\"]; assert [s[\"name\"] for s in c] == [\"payments\", \"bycommand\", \"verified\"]'"
m=$(lab_metrics)
check "metrics: cert_expiry_timestamp_seconds{name=payments}" grep -qE '^edgeplane_cert_expiry_timestamp_seconds\{name="payments"\} [0-9]{10}$' <<<"$m"
check "metrics: cert_rotations_total ok 2" grep -q '^edgeplane_cert_rotations_total{name="payments",result="ok"} 2$' <<<"$m"
check "metrics: cert_rotations_total refused 1" grep -q '^edgeplane_cert_rotations_total{name="payments",result="refused"} 1$' <<<"$m"
check "metrics: cert_sync_seconds histogram" grep -q '^edgeplane_cert_sync_seconds_count{name="payments"} 2$' <<<"$m"

# Restart: the installed set is the baseline.
lab_agent_stop
certs_k8s_write "$W/src2" "$W/sets/v3"   # changed while the agent is down
certs_k8s_write "$W/src" "$W/sets/v2"    # back to what is installed
rm -f "$W/cmd.ppid"
lab_agent_start || { not_ok "agent restart"; tap_done; exit 1; }
check "restart: the set changed while down ($(serial v3)) is installed at start" \
  wait_for 10 bash -c "[ \"\$(openssl x509 -in '$W/target2/tls.crt' -noout -serial)\" = 'serial=$(serial v3)' ]"
sleep 1
check "restart: the unchanged installed set is not reinstalled (0 rotations) nor signalled (2 SIGHUPs)" \
  bash -c "[ \"\$(cat $W/hups)\" = 2 ] && [ \"\$(ip netns exec $LAB_NS_NODE $LAB_CLI_BIN --socket $LAB_SOCK certs -o json | /usr/bin/python3 -c 'import json,sys; s=json.load(sys.stdin)[\"sets\"][0]; print(s[\"rotations\"][\"ok\"], s[\"serial\"])')\" = '0 $(serial v2)' ]"

# Reload adding a bundle set.
LAB_EXTRA_YAML=$(certs_yaml more) lab_config_write
lab_agent_signal HUP
check "config reload: the bundle set added and installed" \
  wait_for 10 bash -c "ip netns exec $LAB_NS_NODE $LAB_CLI_BIN --socket $LAB_SOCK certs -o json | /usr/bin/python3 -c 'import json,sys; s=[x for x in json.load(sys.stdin)[\"sets\"] if x[\"name\"] == \"roots\"][0]; assert s[\"state\"] == \"installed\" and s[\"kind\"] == \"bundle\"'"
check "... and the sets that did not change kept their state (payments: serial $(serial v2))" \
  bash -c "ip netns exec $LAB_NS_NODE $LAB_CLI_BIN --socket $LAB_SOCK certs -o json | /usr/bin/python3 -c 'import json,sys; s=json.load(sys.stdin)[\"sets\"][0]; assert s[\"serial\"] == \"$(serial v2)\" and s[\"state\"] == \"installed\"'"
check "config reload: a secret source added under seccomp lists and installs $(serial v3)" \
  wait_for 10 bash -c "[ \"\$(openssl x509 -in '$W/target4/tls.crt' -noout -serial 2>/dev/null)\" = 'serial=$(serial v3)' ]"
put_secret v5
check "... and its watch delivers the next version: $(serial v5)" \
  wait_for 10 bash -c "[ \"\$(openssl x509 -in '$W/target4/tls.crt' -noout -serial 2>/dev/null)\" = 'serial=$(serial v5)' ]"
check "config reload: a csr source added under seccomp: key made, CSR issued, installed (key 0600, matching)" \
  wait_for 15 bash -c "[ \"\$(stat -c %a \$(readlink -f '$W/target5/tls.key') 2>/dev/null)\" = 600 ] && [ \"\$(openssl pkey -in '$W/target5/tls.key' -pubout 2>/dev/null)\" = \"\$(openssl x509 -in '$W/target5/tls.crt' -noout -pubkey 2>/dev/null)\" ]"
out=$(ip netns exec "$LAB_NS_NODE" "$LAB_CLI_BIN" --socket "$LAB_SOCK" certs 2>&1)
check "edgeplane certs: the csr set shows its serial, source and next renewal (a time, 70-90 % into its lifetime)" \
  bash -c "grep -A20 '^identity (source)' <<<'$out' | grep -q '^  source       csr:example.com/edge-mtls' && grep -A20 '^identity (source)' <<<'$out' | grep -qE '^  next renewal 20[0-9-]+ [0-9:]+Z \(in (3[6-9]|4[0-9]|5[0-4])m' && grep -A20 '^identity (source)' <<<'$out' | grep -qE '^  serial       [0-9A-F]+$'"
check "... and no expiry warning for it: a csr set warns only when its renewal is overdue" \
  bash -c "! grep -A5 '^identity (source)' <<<'$out' | grep -q 'EXPIRING SOON'"
grep -A12 '^identity (source)' <<<"$out" | sed 's/^/# /'
ann_has() {
  ip netns exec "$LAB_NS_NODE" curl -s "http://127.0.0.1:$KCPORT/_control/state" |
    /usr/bin/python3 -c 'import json,sys; a=json.load(sys.stdin)["nodes"]["lab-node"]["metadata"].get("annotations", {}).get("edgeplane.io/cert-serials", ""); sys.exit(0 if sys.argv[1] in a.split(",") else 1)' "$1"
}
check "the node annotation lists every installed serial (watched=$(serial v5))" wait_for 10 ann_has "watched=$(serial v5)"
check "... payments=$(serial v2) too" ann_has "payments=$(serial v2)"
certs_k8s_write "$W/src" "$W/sets/v4"
check "after the reload, rotation still follows: $(serial v4)" \
  wait_for 10 bash -c "[ \"\$(openssl x509 -in '$W/target/tls.crt' -noout -serial)\" = 'serial=$(serial v4)' ]"
AGENT=$(lab_agent_pid)
check "the agent is alive and confined" [ "$(awk '/^Seccomp:/ {print $2}' /proc/"$AGENT"/status 2>/dev/null)" = 2 ]
check "no seccomp violation in the log" bash -c "! grep -q 'seccomp: forbidden' '$LAB_LOG'"
grep -E 'seccomp: forbidden|certs' "$LAB_LOG" | tail -12 | sed 's/^/# /'
lab_agent_stop
tap_done
