#!/usr/bin/env bash
# The csr source of certificate sync (agent/certs/cert_csr.c) against the
# fake kube-apiserver's CertificateSigningRequest API and its test signer
# (tests/k8s/fake_apiserver.py), on the certs module's own loop
# (ep_certs_drive run):
#   - first issuance: key made on the node, CSR with signerName and usages,
#     the issued certificate validated against trust and installed with the
#     key (0600); the key never appears in a request; the next renewal is
#     reported at renew_at..renew_at+renew_jitter of the lifetime;
#   - short-lived certificates (the signer issues 60 s ones) are renewed
#     automatically with a new serial and the consumer reloaded;
#   - a Denied CSR is reported with its reason (status, log, a Warning Event
#     about the Node); the installed set stays;
#   - restarted while a CSR waits for approval: the same CSR is resumed (no
#     lost issuance, no second CSR, one key in the target).
set -u
cd "$(dirname "$0")/../.."
source tests/lib/tap.sh
B=${EP_BUILD:-$PWD/build}
DRIVE=$B/tests/tools/ep_certs_drive
PY3=/usr/bin/python3
[ -x "$DRIVE" ] || { echo "1..0 # SKIP $DRIVE not built (make tests-bin)"; exit 0; }
"$PY3" -c 'import cryptography' 2>/dev/null || { echo "1..0 # SKIP python3-cryptography missing (tests/lib/deps.sh)"; exit 0; }
T=$(mktemp -d /tmp/ep-certs-csr.XXXXXX)
SRV_PID= DPID=
cleanup() {
  [ -n "$DPID" ] && kill "$DPID" 2>/dev/null && wait "$DPID" 2>/dev/null
  [ -n "$SRV_PID" ] && kill "$SRV_PID" 2>/dev/null && wait "$SRV_PID" 2>/dev/null
  rm -rf "$T"
}
trap cleanup EXIT

echo tok-C >"$T/token"
"$PY3" tests/k8s/fake_apiserver.py --token tok-C --csr-signer --workdir "$T/pki" \
  --allow "create certificatesigningrequests,get certificatesigningrequests,patch nodes,create events" \
  >"$T/server.out" 2>"$T/server.err" & SRV_PID=$!
for _ in $(seq 100); do grep -q '^ready ' "$T/server.out" 2>/dev/null && break; sleep 0.1; done
read -r _ PORT CPORT CA <"$T/server.out" || { not_ok "fake apiserver starts"; tap_done; exit 1; }
CTL=http://127.0.0.1:$CPORT/_control
policy() { curl -s -XPOST "$CTL/csr_policy" -d "$1" >/dev/null; }
# 60 s certificates, NotBefore backdated 5 minutes as Kubernetes' signer does.
policy '{"mode": "auto", "cert_seconds": 60, "backdate_seconds": 300}'
cat >"$T/config.yaml" <<YAML
node: {name: edge-01}
kubernetes:
  enabled: true
  api_server: https://127.0.0.1:$PORT
  token_file: $T/token
  ca_file: $CA
certs:
  - name: node-id
    source:
      csr: {signer_name: example.com/edge-mtls, common_name: edge-01, renew_at: 0.05, renew_jitter: 0.02}
    target: $T/target
    trust: $T/pki/csr-signer-ca.crt
    expect: {san: [edge-01.edge.example, "spiffe://edge.example/node/edge-01"]}
    reload: {command: "echo r >>$T/reloads", timeout_ms: 2000}
YAML
start_drive() { "$DRIVE" run --config "$T/config.yaml" --status "$T/status.json" 2>>"$T/log" & DPID=$!; }
stop_drive() { kill "$DPID"; wait "$DPID" 2>/dev/null; DPID=; }
st() {
  "$PY3" - "$T/status.json" "$1" <<'PY' 2>/dev/null
import json, sys, time
s = json.load(open(sys.argv[1]))["sets"][0]
v = eval(sys.argv[2]); print(v); sys.exit(0 if v else 1)
PY
}
wait_st() { local i; for i in $(seq 1 $((${2:-10} * 20))); do st "$1" >/dev/null && return 0; sleep 0.05; done; st "$1"; return 1; }
# The installed pair read through ..data once, so a renewal cannot split it.
gen() { echo "$T/target/$(readlink "$T/target/..data")"; }
tgt_serial() { openssl x509 -in "$T/target/tls.crt" -noout -serial 2>/dev/null | sed 's/serial=//'; }
csrs() { curl -s "$CTL/csrs"; }

start_drive
check "first issuance installed (serial in the status, source csr:SIGNER)" \
  wait_st "s['state'] == 'installed' and s['serial'] and s['source'] == 'csr:example.com/edge-mtls'" 15
S1=$(st "s['serial']")
G=$(gen)
check "the key is the target's, mode 0600, and matches the certificate" \
  bash -c "[ \"\$(stat -c %a '$G/tls.key')\" = 600 ] && [ \"\$(openssl pkey -in '$G/tls.key' -pubout)\" = \"\$(openssl x509 -in '$G/tls.crt' -noout -pubkey)\" ]"
check "an EC P-256 key" bash -c "openssl pkey -in '$G/tls.key' -noout -text | grep -q 'prime256v1\|P-256'"
check "the signer's CA installed as ca.crt; the chain verifies to it" \
  bash -c "cmp -s '$G/ca.crt' '$T/pki/csr-signer-ca.crt' && openssl verify -CAfile '$G/ca.crt' '$G/tls.crt' >/dev/null"
check "subject CN and the expected SANs are in the issued certificate" \
  bash -c "openssl x509 -in '$G/tls.crt' -noout -subject -ext subjectAltName | tr -d ' ' | grep -q 'CN=edge-01' && openssl x509 -in '$G/tls.crt' -noout -ext subjectAltName | grep -q 'DNS:edge-01.edge.example, URI:spiffe://edge.example/node/edge-01'"
check "the next renewal is at 5-7 % of the lifetime, counted from the issuance, not from the backdated NotBefore" \
  st "s['installed_at'] - s['not_before'] > 290 and s['installed_at'] + 0.05 * (s['not_after'] - s['installed_at']) - 1 <= s['next_renewal'] <= s['installed_at'] + 0.07 * (s['not_after'] - s['installed_at']) + 1"
check "no pending key left in the target" [ ! -e "$T/target/.csr-pending.key" ]
check "the CSR: signerName, usages digital signature + client auth, a PEM request of the installed key" \
  "$PY3" - "$(csrs)" "$S1" "$(openssl pkey -in "$G/tls.key" -pubout)" <<'PY'
import base64, json, subprocess, sys
csrs, serial, pub = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
c = csrs[0]
req = base64.b64decode(c["spec"]["request"]).decode()
p = subprocess.run(["openssl", "req", "-noout", "-pubkey", "-verify"], input=req, capture_output=True, text=True)
ok = (c["spec"]["signerName"] == "example.com/edge-mtls" and c["spec"]["usages"] == ["digital signature", "client auth"]
      and "BEGIN CERTIFICATE REQUEST" in req and p.returncode == 0 and p.stdout.strip() == pub.strip()
      and c["metadata"]["name"].startswith("edgeplane-edge-01-node-id-"))
print(c["metadata"]["name"], c["spec"]["usages"]); sys.exit(0 if ok else 1)
PY
check "the consumer was reloaded once (no renewal at once of a fresh certificate)" bash -c "[ \$(wc -l <'$T/reloads') = 1 ]"

check "a 60 s certificate is renewed automatically: a new serial" wait_st "s['serial'] != '$S1' and s['state'] == 'installed'" 20
check "... the consumer reloaded again, the CSR counted" \
  bash -c "[ \$(wc -l <'$T/reloads') -ge 2 ] && $(declare -f st); T=$T PY3=$PY3 st \"s['csr']['issued'] >= 2 and s['rotations']['ok'] >= 2\""
G=$(gen)
check "... with a new key (0600), matching" \
  bash -c "[ \"\$(stat -c %a '$G/tls.key')\" = 600 ] && [ \"\$(openssl pkey -in '$G/tls.key' -pubout)\" = \"\$(openssl x509 -in '$G/tls.crt' -noout -pubkey)\" ]"

policy '{"mode": "deny", "reason": "NodeNotRecognized", "message": "edge-01 is not in the inventory"}'
check "a Denied CSR is reported with its reason" \
  wait_st "'denied' in s['last_result'] and 'NodeNotRecognized: edge-01 is not in the inventory' in s['last_result'] and s['csr']['denied'] >= 1" 20
SD=$(st "s['serial']")
check "... the installed set stays (state installed, the target holds $SD)" \
  bash -c "[ '$(tgt_serial)' = '$SD' ] && $(declare -f st); T=$T PY3=$PY3 st \"s['state'] == 'installed'\""
diag "$(st "s['last_result']")"
events_denied() { curl -s "$CTL/state" | "$PY3" -c 'import json,sys; e=[x for x in json.load(sys.stdin)["events"] if x["reason"] == "CertificateRefused" and "denied: NodeNotRecognized" in x["message"]]; print(len(e), e[0]["type"] if e else "", e[0]["involvedObject"]["name"] if e else "", e[0]["message"] if e else "")'; }
check "... and a Warning Event about the Node says so" \
  bash -c "for i in \$(seq 50); do $(declare -f events_denied); CTL=$CTL PY3=$PY3 events_denied | grep -q '^[1-9][0-9]* Warning edge-01 certs node-id: CSR edgeplane-edge-01-node-id-[0-9a-f]* for example.com/edge-mtls denied: NodeNotRecognized' && exit 0; sleep 0.1; done; exit 1"

policy '{"mode": "hold"}'
check "held by the approver: a CSR waits" wait_st "s['csr']['state'].startswith('CSR ') and 'waiting for example.com/edge-mtls' in s['csr']['state']" 20
NAME=$(st "s['csr']['name']")
n_before=$(csrs | "$PY3" -c 'import json,sys; print(len(json.load(sys.stdin)))')
check "... its key waits in the target, mode 0600" bash -c "[ \"\$(stat -c %a '$T/target/.csr-pending.key')\" = 600 ]"
stop_drive
start_drive
check "restarted mid-wait: the same CSR is resumed ($NAME)" \
  bash -c "for i in \$(seq 100); do grep -q 'resuming CSR $NAME' '$T/log' && exit 0; sleep 0.1; done; exit 1"
policy '{"mode": "auto"}'
check "approved after the restart: its certificate installed" \
  wait_st "s['csr']['name'] == '$NAME' and s['csr']['state'].endswith('issued and installed')" 20
G=$(gen)
check "... no second CSR was made for it, and the installed key is the resumed CSR's" \
  "$PY3" - "$(csrs)" "$NAME" "$n_before" "$(openssl pkey -in "$G/tls.key" -pubout)" <<'PY'
import base64, json, subprocess, sys
csrs, name, n, pub = json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
c = [x for x in csrs if x["metadata"]["name"] == name][0]
req = base64.b64decode(c["spec"]["request"]).decode()
p = subprocess.run(["openssl", "req", "-noout", "-pubkey"], input=req, capture_output=True, text=True)
# Renewals after it may add CSRs, each with a new name; none before it.
idx = [x["metadata"]["name"] for x in csrs].index(name)
print(len(csrs), "CSRs;", name, "is number", idx + 1, "of", n); sys.exit(0 if idx + 1 == n and p.stdout.strip() == pub.strip() else 1)
PY
check "... and no pending key remains (one key in the target)" \
  bash -c "[ ! -e '$T/target/.csr-pending.key' ] && [ \"\$(ls '$G')\" = \"\$(printf 'ca.crt\ntls.crt\ntls.key')\" ]"
stop_drive

reqs=$(curl -s "$CTL/requests")
check "every API request was a create of a CSR or a get of one by name (RBAC: create/get certificatesigningrequests)" \
  "$PY3" -c 'import json,sys; r=[x for x in json.loads(sys.argv[1]) if x["path"].startswith("/api")]; P="/apis/certificates.k8s.io/v1/certificatesigningrequests"; bad=[x for x in r if not ((x["method"] == "POST" and x["path"] == P) or (x["method"] == "GET" and x["path"].startswith(P + "/edgeplane-edge-01-node-id-")) or x["path"].startswith("/api/v1/nodes/") or x["path"].startswith("/api/v1/namespaces/default/events"))]; print(len(r), "requests,", len(bad), "other"); sys.exit(1 if bad or not r else 0)' "$reqs"
keys=$(for g in "$T"/target/..2*; do grep -v -- ----- "$g/tls.key"; done | tr -d '\n')
check "no private key (PEM or any line of an installed key's base64) in any request the server saw" \
  "$PY3" -c 'import sys; body=sys.argv[1]; keys=sys.argv[2]; lines=[keys[i:i+64] for i in range(0, len(keys), 64) if len(keys[i:i+64]) >= 32]; sys.exit(1 if "PRIVATE KEY" in body or not lines or any(l in body for l in lines) else 0)' "$reqs" "$keys"

# Bench (tests/bench/certs_sync.sh): N renewals, 10 s certificates renewed
# at 5-6 % of their lifetime; each timed by the agent
# from the new key to the set installed (key and request, CSR created ->
# issued, issued -> validated and installed).
N=${EP_CERTS_CSR_ISSUANCES:-0}
if [ "$N" -gt 0 ]; then
  policy '{"mode": "auto", "cert_seconds": 10}'
  sed -i 's/renew_at: 0.05, renew_jitter: 0.02/renew_at: 0.05, renew_jitter: 0.01/' "$T/config.yaml"
  : >"$T/log"
  start_drive
  for _ in $(seq $((N * 50))); do [ "$(grep -c 'issued and installed in' "$T/log")" -ge "$N" ] && break; sleep 0.1; done
  stop_drive
  stats=$(grep -oE 'issued and installed in [0-9.]+ ms \(key and request [0-9.]+ ms, created -> issued [0-9.]+ ms' "$T/log" | head -n "$N" |
    "$PY3" -c '
import statistics, sys
r = [l.split() for l in sys.stdin]
t, k, i = (sorted(float(x[j]) for x in r) for j in (4, 9, 14))
n = len(t)
print(n, *(("%.1f" % v) for v in (statistics.median(t), t[max(0, int(n * 0.95) - 1)], t[-1], statistics.median(k), statistics.median(i))) if n else "0 0 0 0 0 0")')
  read -r n med p95 max kmed imed <<<"$stats"
  diag "CSR renewal, new key -> installed: $n issuances, median $med ms, p95 $p95 ms, max $max ms (median: key and request $kmed ms, created -> issued $imed ms)"
  check "every renewal of the bench run issued and installed ($n of $N)" [ "$n" = "$N" ]
  [ -n "${EP_CERTS_BENCH_CSR_JSON:-}" ] &&
    printf '{"source": "csr", "consumer": "command (echo)", "issuances": %d, "median_ms": %s, "p95_ms": %s, "max_ms": %s, "key_median_ms": %s, "issue_median_ms": %s}\n' \
      "$n" "$med" "$p95" "$max" "$kmed" "$imed" >"$EP_CERTS_BENCH_CSR_JSON"
fi

# Without a usable API (token file missing): the set says why.
rm "$T/token"
rm -rf "$T/target"
start_drive
check "no token: the set reports why" wait_st "s['state'] in ('error', 'waiting') and 'token' in s['last_result']" 10
diag "$(st "s['last_result']")"
stop_drive
tap_done
