#!/usr/bin/env bash
# The secret source of certificate sync (agent/certs/cert_secret.c) against
# the fake kube-apiserver (tests/k8s/fake_apiserver.py), on the certs
# module's own loop (ep_certs_drive run):
#   - list then watch, with RBAC limited to list and watch of secrets, and
#     every request naming the one Secret (fieldSelector metadata.name);
#   - a change of the Secret is installed in milliseconds (the distribution
#     of 50 rotations is printed; tests/bench/certs_sync.sh keeps it);
#   - bookmarks advance the resourceVersion; a 410 Gone (compacted history)
#     makes it list again and pick up the change; a dropped watch resumes;
#   - an invalid Secret is refused, the installed set stays; a deleted
#     Secret changes nothing on the node;
#   - restarted while the Secret changed, it installs the change (no lost
#     update);
#   - no usable API: the set reports why.
set -u
cd "$(dirname "$0")/../.."
source tests/lib/tap.sh
source tests/lib/certs.sh
B=${EP_BUILD:-$PWD/build}
DRIVE=$B/tests/tools/ep_certs_drive
PY3=/usr/bin/python3
ROT=${EP_CERTS_SECRET_ROTATIONS:-50}
[ -x "$DRIVE" ] || { echo "1..0 # SKIP $DRIVE not built (make tests-bin)"; exit 0; }
T=$(mktemp -d /tmp/ep-certs-secret.XXXXXX)
SRV_PID= DPID=
cleanup() {
  [ -n "$DPID" ] && kill "$DPID" 2>/dev/null && wait "$DPID" 2>/dev/null
  [ -n "$SRV_PID" ] && kill "$SRV_PID" 2>/dev/null && wait "$SRV_PID" 2>/dev/null
  rm -rf "$T"
}
trap cleanup EXIT
certs_init "$T/ca"; C=$T/ca
certs_ca ca || { not_ok "openssl makes the CA"; tap_done; exit 1; }
for i in $(seq 1 6); do
  d=$T/sets/v$i; mkdir -p "$d"
  certs_leaf ca "$d/leaf" payments.edge.example && mv "$d/leaf.crt" "$d/tls.crt" && mv "$d/leaf.key" "$d/tls.key" &&
    cp "$C/ca.crt" "$d/ca.crt" && rm -f "$d"/leaf.* || { not_ok "openssl makes set v$i"; tap_done; exit 1; }
done
d=$T/sets/expired; mkdir -p "$d"
certs_leaf ca "$d/leaf" payments.edge.example "" "$(certs_stamp -864000)" "$(certs_stamp -3600)" &&
  mv "$d/leaf.crt" "$d/tls.crt" && mv "$d/leaf.key" "$d/tls.key" && cp "$C/ca.crt" "$d/ca.crt" && rm -f "$d"/leaf.*
serial() { openssl x509 -in "$T/sets/$1/tls.crt" -noout -serial | sed 's/serial=//'; }

echo tok-S >"$T/token"
"$PY3" tests/k8s/fake_apiserver.py --token tok-S --allow "list secrets,watch secrets,patch nodes,create events" --workdir "$T/pki" \
  >"$T/server.out" 2>"$T/server.err" & SRV_PID=$!
for _ in $(seq 100); do grep -q '^ready ' "$T/server.out" 2>/dev/null && break; sleep 0.1; done
read -r _ PORT CPORT CA <"$T/server.out" || { not_ok "fake apiserver starts"; tap_done; exit 1; }
CTL=http://127.0.0.1:$CPORT/_control
# put_secret SET|-delete: the Secret edge/payments-tls with SET's files
put_secret() {
  if [ "$1" = -delete ]; then
    curl -s -XPOST "$CTL/secrets" -d '{"namespace": "edge", "name": "payments-tls", "delete": true}' >/dev/null
    return
  fi
  curl -s -XPOST "$CTL/secrets" -d "{\"namespace\": \"edge\", \"name\": \"payments-tls\", \"type\": \"kubernetes.io/tls\",
    \"data\": {\"tls.crt\": \"$(base64 -w0 "$T/sets/$1/tls.crt")\", \"tls.key\": \"$(base64 -w0 "$T/sets/$1/tls.key")\",
    \"ca.crt\": \"$(base64 -w0 "$T/sets/$1/ca.crt")\"}}" >/dev/null
}
put_secret v1
cat >"$T/config.yaml" <<YAML
node: {name: edge-01}
kubernetes:
  enabled: true
  api_server: https://127.0.0.1:$PORT
  token_file: $T/token
  ca_file: $CA
certs:
  - name: api
    source: {secret: edge/payments-tls}
    target: $T/target
    expect: {san: [payments.edge.example]}
YAML
start_drive() { "$DRIVE" run --config "$T/config.yaml" --status "$T/status.json" 2>>"$T/log" & DPID=$!; }
stop_drive() { kill "$DPID"; wait "$DPID" 2>/dev/null; DPID=; }
st() {
  "$PY3" - "$T/status.json" "$1" <<'PY' 2>/dev/null
import json, sys
s = json.load(open(sys.argv[1]))["sets"][0]
v = eval(sys.argv[2]); print(v); sys.exit(0 if v else 1)
PY
}
wait_st() { local i; for i in $(seq 1 $((${2:-10} * 20))); do st "$1" >/dev/null && return 0; sleep 0.05; done; st "$1"; return 1; }
tgt_serial() { openssl x509 -in "$T/target/tls.crt" -noout -serial 2>/dev/null | sed 's/serial=//'; }

start_drive
check "listed and installed: $(serial v1)" wait_st "s['serial'] == '$(serial v1)' and s['source'] == 'secret:edge/payments-tls'"
check "then watching (state says so)" wait_st "s['watch']['state'].startswith('watching from resourceVersion')"
put_secret v2
check "a change of the Secret installed: $(serial v2)" wait_st "s['serial'] == '$(serial v2)'"
annotation() { curl -s "$CTL/state" | "$PY3" -c 'import json,sys; print(json.load(sys.stdin)["nodes"]["edge-01"]["metadata"].get("annotations", {}).get("edgeplane.io/cert-serials", ""))'; }
check "the node annotation edgeplane.io/cert-serials says api=$(serial v2)" \
  bash -c "for i in \$(seq 50); do [ \"\$($(declare -f annotation); CTL=$CTL PY3=$PY3 annotation)\" = 'api=$(serial v2)' ] && exit 0; sleep 0.1; done; exit 1"
check "bookmarks arrive and are counted" wait_st "s['watch']['bookmarks'] >= 1" 5
watches=$(st "s['watch']['watches']")
curl -s -XPOST "$CTL/close_watches" >/dev/null
check "a watch stream that ends is resumed (watches: $watches -> more)" wait_st "s['watch']['watches'] > $watches"
check "... from the last resourceVersion, without a new list" st "s['watch']['lists'] == 1"
stop_drive
put_secret v3
curl -s -XPOST "$CTL/compact" >/dev/null
start_drive
check "restarted: listed, $(serial v3) installed" wait_st "s['serial'] == '$(serial v3)'"
lists=$(st "s['watch']['lists']")
# The resumed watch is held back 1.5 s; meanwhile the Secret changes and
# history is compacted, so it resumes from a resourceVersion that is gone.
curl -s -XPOST "$CTL/faults" -d '{"method": "GET", "path_regex": "secrets", "delay_ms": 1500}' >/dev/null
curl -s -XPOST "$CTL/close_watches" >/dev/null
sleep 0.3
put_secret v2; curl -s -XPOST "$CTL/compact" >/dev/null; put_secret v3
check "history compacted while the watch was away: resume gets 410 Gone, it lists again" \
  wait_st "s['watch']['expired'] >= 1 and s['watch']['lists'] > $lists" 10
check "... and holds the latest version ($(serial v3))" wait_st "s['serial'] == '$(serial v3)'"
curl -s -XPOST "$CTL/faults" -d '{"method": "GET", "path_regex": "secrets", "drop_connection": true, "count": 2}' >/dev/null
curl -s -XPOST "$CTL/close_watches" >/dev/null
put_secret v4
check "connections dropped twice by the server: retried with backoff, $(serial v4) installed" wait_st "s['serial'] == '$(serial v4)'" 15
diag "watch: $(st "s['watch']")"
put_secret v3
put_secret expired
check "an expired certificate in the Secret is refused" wait_st "s['state'] == 'refused' and 'has expired' in s['refused']['reason']"
check "... the installed set stays ($(serial v3))" [ "$(tgt_serial)" = "$(serial v3)" ]
events_refused() { curl -s "$CTL/state" | "$PY3" -c 'import json,sys; e=[x for x in json.load(sys.stdin)["events"] if x["reason"] == "CertificateRefused"]; print(len(e), e[-1]["type"] if e else "", e[-1]["involvedObject"]["name"] if e else "", e[-1]["message"] if e else "")'; }
check "... and a Warning Event CertificateRefused about the Node says why" \
  bash -c "for i in \$(seq 50); do $(declare -f events_refused); CTL=$CTL PY3=$PY3 events_refused | grep -q '^1 Warning edge-01 certs api: new set from edge/payments-tls refused .*has expired' && exit 0; sleep 0.1; done; exit 1"
put_secret -delete
sleep 1
check "the Secret deleted: the installed set stays" bash -c "[ '$(tgt_serial)' = '$(serial v3)' ]"
put_secret v4
check "recreated: $(serial v4) installed" wait_st "s['serial'] == '$(serial v4)'"

# Restart while the Secret changes.
stop_drive
put_secret v5
start_drive
check "restarted after a change made while it was down: $(serial v5) installed (no lost update)" \
  wait_st "s['serial'] == '$(serial v5)'"

# Latency: the Secret written (the control call returns) -> the target's
# ..data points at a new generation holding the new serial; and the agent's
# own share, source event received -> installed (its log).
lat=()
for i in $(seq 1 "$ROT"); do
  v=v$(( i % 6 + 1 )); [ "$(serial "$v")" = "$(tgt_serial)" ] && v=v$(( (i + 1) % 6 + 1 ))
  want=$(serial "$v"); old=$(readlink "$T/target/..data")
  body="{\"namespace\": \"edge\", \"name\": \"payments-tls\", \"data\": {\"tls.crt\": \"$(base64 -w0 "$T/sets/$v/tls.crt")\", \"tls.key\": \"$(base64 -w0 "$T/sets/$v/tls.key")\", \"ca.crt\": \"$(base64 -w0 "$T/sets/$v/ca.crt")\"}}"
  t0=$(date +%s%N)
  curl -s -XPOST "$CTL/secrets" -d "$body" >/dev/null
  for _ in $(seq 4000); do [ "$(readlink "$T/target/..data")" != "$old" ] && break; sleep 0.001; done
  t1=$(date +%s%N)
  if [ "$(tgt_serial)" = "$want" ]; then lat+=($(( (t1 - t0) / 1000 )))
  else diag "rotation $i: $want not installed; status: $(st "s['last_result'], s['watch']")"; fi
done
stats=$(printf '%s\n' "${lat[@]}" | sort -n | awk '{a[NR]=$1} END {printf "%d %.1f %.1f %.1f", NR, a[int(NR*0.5)+1]/1000, a[int(NR*0.95)]/1000, a[NR]/1000}')
read -r n med p95 max <<<"$stats"
own=$(grep -oE 'installed in .*\(([0-9.]+) ms\)$' "$T/log" | tail -n "$ROT" | grep -oE '[0-9.]+ ms\)$' | tr -d ' ms)' | sort -n |
  awk '{a[NR]=$1} END {printf "%.1f %.1f", a[int(NR*0.5)+1], a[int(NR*0.95)]}')
read -r omed op95 <<<"$own"
diag "Secret written -> installed: $n rotations, median $med ms, p95 $p95 ms, max $max ms (with curl's own time to write it); the agent's share (event received -> installed): median $omed ms, p95 $op95 ms"
check "every rotation installed ($n of $ROT, max $max ms)" bash -c "[ '$n' = '$ROT' ] && awk 'BEGIN {exit !($max < 4000)}'"
[ -n "${EP_CERTS_BENCH_SECRET_JSON:-}" ] &&
  printf '{"source": "secret", "consumer": "none (installed in the target)", "rotations": %d, "median_ms": %s, "p95_ms": %s, "max_ms": %s, "agent_median_ms": %s, "agent_p95_ms": %s}\n' \
    "$n" "$med" "$p95" "$max" "$omed" "$op95" >"$EP_CERTS_BENCH_SECRET_JSON"

reqs=$(curl -s "$CTL/requests")
check "every API request was a list or watch of secrets naming the one Secret (RBAC can name it), or the annotation patch of its own Node" \
  "$PY3" -c 'import json,sys; r=[x for x in json.loads(sys.argv[1]) if x["path"].startswith("/api/")]; bad=[x for x in r if not (x["method"] == "GET" and x["path"] == "/api/v1/namespaces/edge/secrets" and "fieldSelector=metadata.name%3Dpayments-tls" in x["query"]) and not (x["method"] == "PATCH" and x["path"] == "/api/v1/nodes/edge-01" and list(x["body"]["metadata"]["annotations"]) == ["edgeplane.io/cert-serials"]) and not (x["method"] == "POST" and x["path"] == "/api/v1/namespaces/default/events" and x["body"]["reason"] == "CertificateRefused")]; print(len(r), "requests,", len(bad), "other"); sys.exit(1 if bad or not r else 0)' "$reqs"
check "one Event per refusal (the refused Secret was said once)" bash -c "$(declare -f events_refused); CTL=$CTL PY3=$PY3 events_refused | grep -q '^1 '"
check "the annotation follows the installed set to the end" bash -c "[ \"\$($(declare -f annotation); CTL=$CTL PY3=$PY3 annotation)\" = \"api=\$(openssl x509 -in '$T/target/tls.crt' -noout -serial | sed s/serial=//)\" ]"
check "watches ask for bookmarks and resume from a resourceVersion" \
  "$PY3" -c 'import json,sys; r=[x for x in json.loads(sys.argv[1]) if "watch=1" in x["query"]]; sys.exit(0 if r and all("allowWatchBookmarks=true" in x["query"] and "resourceVersion=" in x["query"] for x in r) else 1)' "$reqs"
stop_drive

# Without a usable API (token file missing): the set says why.
rm "$T/token"
start_drive
check "no token: the set reports the API unusable" wait_st "s['state'] == 'error' or 'Kubernetes API' in s['last_result']" 5
diag "$(st "s['last_result']")"
stop_drive
tap_done
