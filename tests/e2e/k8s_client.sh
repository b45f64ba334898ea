#!/usr/bin/env bash
# The agent's Kubernetes client (agent/k8s/) against an API-faithful fake
# kube-apiserver (tests/k8s/fake_apiserver.py), through the driver
# tests/tools/ep_k8s_drive.
#
# 1. A self-test of the fake server, so that a lenient server cannot make the
#    client look right: auth, merge patch semantics, preconditions, content
#    types, RBAC, Event validation, the fault injection itself.
# 2. ep_k8s_resolve: in-cluster detection and its errors.
# 3. The client: failover/failback (label, condition with the kubelet's
#    conditions untouched, Events), conflicts, 429, 5xx backoff, timeouts,
#    dropped connections, token rotation, missing RBAC, a hanging server
#    (the caller never blocks; stop is bounded), flapping, restart.
# 4. The client once under valgrind.
# No root needed: everything is on 127.0.0.1.
set -u
cd "$(dirname "$0")/../.." || exit 1
source tests/lib/tap.sh

PY=/usr/bin/python3
BUILD=${EP_BUILD:-build}
DRIVE=$BUILD/tests/tools/ep_k8s_drive
SERVER=tests/k8s/fake_apiserver.py
NODE=edge-01

if [ ! -x "$PY" ] || ! command -v openssl >/dev/null || ! command -v curl >/dev/null; then
  not_ok "needs /usr/bin/python3, openssl and curl (make deps)"; tap_done; exit
fi
if [ ! -x "$DRIVE" ]; then
  not_ok "$DRIVE is built (make tests-bin)"; tap_done; exit
fi

T=$(mktemp -d /tmp/ep-k8s.XXXXXX)
SRV_PID=
DRIVER_PID=
# A driver that died must fail the checks, not kill this script on write.
trap '' PIPE
cleanup() {
  [ -n "$DRIVER_PID" ] && kill "$DRIVER_PID" 2>/dev/null
  [ -n "$SRV_PID" ] && kill "$SRV_PID" 2>/dev/null && wait "$SRV_PID" 2>/dev/null
  rm -rf "$T"
}
trap cleanup EXIT

# --- the fake API server -------------------------------------------------
echo tok-A >"$T/token"
"$PY" "$SERVER" --token tok-A --node "$NODE" --workdir "$T/pki" >"$T/server.out" 2>"$T/server.err" &
SRV_PID=$!
for _ in $(seq 100); do grep -q '^ready ' "$T/server.out" 2>/dev/null && break; sleep 0.1; done
if ! read -r _ PORT CPORT CA <"$T/server.out" || [ -z "${CA:-}" ]; then
  not_ok "fake apiserver starts"; cat "$T/server.err" | sed 's/^/# /'; tap_done; exit
fi
ok "fake apiserver starts (https 127.0.0.1:$PORT, control $CPORT)"
API=https://127.0.0.1:$PORT
CTL=http://127.0.0.1:$CPORT/_control

# ctl METHOD PATH [JSON]
ctl() {
  if [ $# -ge 3 ]; then
    curl -sS -X "$1" -H 'Content-Type: application/json' -d "$3" "$CTL/$2" >/dev/null
  else
    curl -sS -X "$1" "$CTL/$2" >/dev/null
  fi
}

# Assertions about the server's state and request log, in Python. The code
# sees S (state), R (requests since the last `ctl DELETE requests`), N (the
# node), E (events) and helpers; a failed assert prints its message as a
# TAP diagnostic.
cat >"$T/assert.py" <<'EOF'
import json, sys, urllib.request
ctl, code = sys.argv[1], sys.argv[2]
get = lambda p: json.load(urllib.request.urlopen(ctl + p, timeout=10))
S, R = get("/state"), get("/requests")
N = S["nodes"]["edge-01"]
E = S["events"]
def cond(t, node=None):
    cs = [c for c in (node or N)["status"].get("conditions", []) if c["type"] == t]
    assert len(cs) <= 1, "duplicate condition %s" % t
    return cs[0] if cs else None
def labels(): return N["metadata"].get("labels", {})
def reqs(method=None, path=None):
    return [r for r in R if (not method or r["method"] == method)
            and (not path or r["path"].endswith(path))]
def gaps(rs): return [b["t"] - a["t"] for a, b in zip(rs, rs[1:])]
try:
    exec(code)
except AssertionError as e:
    print("# assertion failed: %s" % (e,))
    sys.exit(1)
except Exception as e:
    print("# %s: %s" % (type(e).__name__, e))
    sys.exit(1)
EOF
# pyassert DESCRIPTION CODE
pyassert() { check "$1" "$PY" "$T/assert.py" "$CTL" "$2"; }

# --- 1. self-test of the fake server -------------------------------------
cat >"$T/selftest.py" <<'EOF'
import http.client, json, socket, ssl, sys, time, urllib.request
port, ctl, ca = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ctx = ssl.create_default_context(cafile=ca)
def out(ok, desc): print(("PASS " if ok else "FAIL ") + desc, flush=True)
def call(method, path, body=None, ctype=None, tok="tok-A", raw=None):
    c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
    h = {}
    if tok: h["Authorization"] = "Bearer " + tok
    if ctype: h["Content-Type"] = ctype
    data = raw if raw is not None else (json.dumps(body) if body is not None else None)
    c.request(method, path, body=data, headers=h)
    r = c.getresponse()
    b = r.read()
    c.close()
    return r.status, (json.loads(b) if b else None), r
def control(method, path, body=None):
    req = urllib.request.Request(ctl + path, method=method,
                                 data=json.dumps(body).encode() if body is not None else None)
    return json.load(urllib.request.urlopen(req, timeout=10))
MP, SMP = "application/merge-patch+json", "application/strategic-merge-patch+json"
NP = "/api/v1/nodes/edge-01"
def node(): return call("GET", NP)[1]
def rv(): return node()["metadata"]["resourceVersion"]

st, b, _ = call("GET", NP, tok=None)
out(st == 401 and b == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
    "message": "Unauthorized", "reason": "Unauthorized", "code": 401},
    "server: 401 Status, exactly the apiserver's, without a token")
st, b, _ = call("GET", NP, tok="wrong")
out(st == 401 and b["reason"] == "Unauthorized", "server: 401 with a wrong token")
st, n0, _ = call("GET", NP)
types = [c["type"] for c in n0["status"]["conditions"]]
out(st == 200 and n0["kind"] == "Node" and n0["metadata"]["uid"] and n0["metadata"]["resourceVersion"]
    and types == ["MemoryPressure", "DiskPressure", "PIDPressure", "Ready"],
    "server: GET node returns a realistic Node (uid, resourceVersion, kubelet conditions)")
st, b, _ = call("GET", "/api/v1/nodes/nope")
out(st == 404 and b["reason"] == "NotFound" and b["message"] == 'nodes "nope" not found'
    and b["details"] == {"name": "nope", "kind": "nodes"}, "server: 404 NotFound Status for a missing node")

r0 = rv()
st, b, _ = call("PATCH", NP, {"metadata": {"labels": {"a.example/x": "1", "kubernetes.io/os": None}}}, MP)
lab = b["metadata"]["labels"]
out(st == 200 and lab.get("a.example/x") == "1" and "kubernetes.io/os" not in lab
    and lab.get("kubernetes.io/hostname") == "edge-01" and int(b["metadata"]["resourceVersion"]) > int(r0),
    "server: merge patch adds a key, null deletes one, others stay, resourceVersion bumps")
st, b, _ = call("PATCH", NP, {"spec": {"podCIDRs": ["10.9.0.0/24"]}}, MP)
out(st == 200 and b["spec"]["podCIDRs"] == ["10.9.0.0/24"] and b["spec"]["podCIDR"] == "10.244.1.0/24",
    "server: merge patch replaces lists whole, merges objects")
r1 = rv()
st, b, _ = call("PATCH", NP, {"metadata": {"labels": {"a.example/x": "1"}}}, MP)
out(st == 200 and b["metadata"]["resourceVersion"] == r1, "server: a no-op patch keeps resourceVersion (as etcd)")
st, b, _ = call("PATCH", NP, {"status": {"conditions": []}, "metadata": {"labels": {"b.example/y": "2"}}}, MP)
out(st == 200 and len(b["status"]["conditions"]) == 4 and b["metadata"]["labels"]["b.example/y"] == "2",
    "server: PATCH on the node ignores status")
st, b, _ = call("PATCH", NP + "/status", {"metadata": {"labels": {"c.example/z": "3"}},
                "status": {"conditions": [{"type": "Ready", "status": "True"}]}}, MP)
out(st == 200 and "c.example/z" not in b["metadata"]["labels"] and
    [c["type"] for c in b["status"]["conditions"]] == ["Ready"],
    "server: PATCH on /status changes only status, and a merge patch replaces the conditions list")
control("POST", "/reset")
st, b, _ = call("PATCH", NP + "/status", {"status": {"conditions": [
    {"type": "EdgeplaneDNSHealthy", "status": "False", "reason": "X", "message": "m",
     "lastTransitionTime": "2024-01-01T00:00:00Z"}]}}, SMP)
out(st == 200 and [c["type"] for c in b["status"]["conditions"]] ==
    ["MemoryPressure", "DiskPressure", "PIDPressure", "Ready", "EdgeplaneDNSHealthy"],
    "server: strategic merge patch merges conditions by type")
st, b, _ = call("PATCH", NP + "/status", {"metadata": {"resourceVersion": "1"}, "status": {}}, MP)
out(st == 409 and b["reason"] == "Conflict" and "the object has been modified" in b["message"],
    "server: a stale metadata.resourceVersion in a patch is 409 Conflict")
cur = rv()
st, b, _ = call("PATCH", NP + "/status", {"metadata": {"resourceVersion": cur}, "status": {"phase": "Running"}}, MP)
out(st == 200 and int(b["metadata"]["resourceVersion"]) > int(cur), "server: the current resourceVersion is accepted")
st, b, _ = call("PATCH", NP, {"metadata": {}}, "application/json")
out(st == 415 and b["reason"] == "UnsupportedMediaType", "server: 415 for a PATCH with application/json")
st, b, _ = call("PATCH", NP, raw="{}")
out(st == 415, "server: 415 for a PATCH without Content-Type")
st, b, _ = call("PATCH", NP, {"metadata": {"labels": {"bad key!": "x"}}}, MP)
out(st == 422 and b["reason"] == "Invalid" and b["details"]["causes"][0]["field"] == "metadata.labels",
    "server: 422 for an invalid label key")
st, b, _ = call("PATCH", NP + "/status", {"status": {"conditions": [{"type": "Ready", "status": "True",
                "lastTransitionTime": "yesterday"}]}}, MP)
out(st == 400, "server: 400 for a malformed timestamp")

ev = {"metadata": {"name": "edge-01.1"}, "involvedObject": {"kind": "Node", "name": "edge-01", "apiVersion": "v1"},
      "reason": "Test", "message": "hello", "type": "Normal", "source": {"component": "t"},
      "firstTimestamp": "2024-01-01T00:00:00Z", "lastTimestamp": "2024-01-01T00:00:00Z", "count": 1}
EP = "/api/v1/namespaces/default/events"
st, b, _ = call("POST", EP, ev, "application/json")
out(st == 201 and b["metadata"]["uid"] and b["metadata"]["namespace"] == "default", "server: a valid Event is created (201)")
st, b, _ = call("POST", EP, ev, "application/json")
out(st == 409 and b["reason"] == "AlreadyExists", "server: the same Event name again is 409 AlreadyExists")
bad = dict(ev, metadata={"name": "edge-01.2"}); del bad["reason"]
st, b, _ = call("POST", EP, bad, "application/json")
out(st == 422 and b["details"]["causes"][0]["field"] == "reason", "server: an Event without reason is 422 Invalid")
bad = dict(ev, metadata={"name": "edge-01.3"}, involvedObject={})
st, b, _ = call("POST", EP, bad, "application/json")
out(st == 422, "server: an Event without involvedObject is 422 Invalid")
st, b, _ = call("POST", "/api/v1/namespaces/kube-system/events", dict(ev, metadata={"name": "edge-01.4"}), "application/json")
out(st == 422 and "does not match event.namespace" in b["message"],
    "server: a Node Event outside namespace default is 422 (as the apiserver)")
st, b, _ = call("POST", EP, dict(ev, metadata={"generateName": "edge-01."}), "application/json")
out(st == 201 and b["metadata"]["name"].startswith("edge-01.") and len(b["metadata"]["name"]) == 13,
    "server: generateName makes a name")
st, b, _ = call("GET", EP)
out(st == 200 and b["kind"] == "EventList" and len(b["items"]) == 2, "server: events can be listed")

control("POST", "/rbac", {"allow": ["get nodes", "patch nodes", "create events"]})
st, b, _ = call("PATCH", NP + "/status", {"status": {}}, MP)
out(st == 403 and b["reason"] == "Forbidden" and b["message"] ==
    'nodes "edge-01" is forbidden: User "system:serviceaccount:edgeplane:edgeplane-agent" cannot patch '
    'resource "nodes/status" in API group "" at the cluster scope', "server: 403 names verb and resource like the apiserver")
st, b, _ = call("GET", NP)
out(st == 200, "server: an allowed verb still works")
control("POST", "/rbac", {"allow": ["get nodes"]})
st, b, _ = call("POST", EP, dict(ev, metadata={"name": "edge-01.5"}), "application/json")
out(st == 403 and 'cannot create resource "events" in API group "" in the namespace "default"' in b["message"],
    "server: 403 for events create names the namespace")
control("POST", "/rbac", {"allow": "*"})

control("POST", "/faults", {"status": 429, "retry_after": 3, "method": "GET"})
st, b, r = call("GET", NP)
out(st == 429 and r.getheader("Retry-After") == "3" and b["reason"] == "TooManyRequests", "server: fault 429 with Retry-After")
st, b, _ = call("GET", NP)
out(st == 200, "server: a fault with count 1 applies once")
control("POST", "/faults", {"delay_ms": 600, "method": "GET"})
t0 = time.time(); st, b, _ = call("GET", NP)
out(st == 200 and time.time() - t0 >= 0.55, "server: fault delay_ms")
control("POST", "/faults", {"drop_connection": True})
try:
    call("GET", NP); dropped = False
except (http.client.HTTPException, OSError):
    dropped = True
out(dropped, "server: fault drop_connection closes without an answer")
cur = rv()
control("POST", "/faults", {"conflict": 1})
st, b, _ = call("PATCH", NP + "/status", {"metadata": {"resourceVersion": cur}, "status": {}}, MP)
ready = [c for c in node()["status"]["conditions"] if c["type"] == "Ready"][0]
out(st == 409 and "heartbeat" in ready["message"], "server: fault conflict = a kubelet write just before ours")
control("POST", "/token", {"token": "tok-Z"})
out(call("GET", NP)[0] == 401 and call("GET", NP, tok="tok-Z")[0] == 200, "server: token rotation")
control("POST", "/reset")
out(call("GET", NP)[0] == 200 and control("GET", "/state")["events"] == [], "server: reset")
EOF
while read -r res desc; do
  if [ "$res" = PASS ]; then ok "$desc"; else not_ok "$desc"; fi
done < <("$PY" "$T/selftest.py" "$PORT" "$CTL" "$CA" 2>&1)
ctl DELETE requests

# --- 2. ep_k8s_resolve ---------------------------------------------------
# resolve_out ARGS...: runs resolve with a clean environment plus ENV_EXTRA
resolve_out() { env -u KUBERNETES_SERVICE_HOST -u KUBERNETES_SERVICE_PORT ${ENV_EXTRA:-} "$DRIVE" resolve "$@" 2>"$T/resolve.err"; }
kv() { sed -n "s/^$1=//p" <<<"$2"; }

out=$(ENV_EXTRA= resolve_out --enabled auto)
check "resolve: auto outside a cluster -> 0" [ "$(kv rc "$out")" = 0 ]
check "resolve: ... and says why" grep -q "not in a cluster" <<<"$(kv err "$out")"
out=$(ENV_EXTRA="KUBERNETES_SERVICE_HOST=10.96.0.1 KUBERNETES_SERVICE_PORT=443" resolve_out --enabled auto)
check "resolve: auto, env set but no token -> 0" [ "$(kv rc "$out")" = 0 ]
out=$(ENV_EXTRA="KUBERNETES_SERVICE_HOST=10.96.0.1 KUBERNETES_SERVICE_PORT=443" resolve_out --enabled auto --token-file "$T/token" --ca-file "$CA")
check "resolve: auto, env + token -> 1 with https://10.96.0.1:443" \
  [ "$(kv rc "$out")" = 1 ] && [ "$(kv api_server "$out")" = "https://10.96.0.1:443" ]
check "resolve: defaults: timeout 5000 ms, label, namespace default" \
  [ "$(kv timeout_ms "$out")" = 5000 ] && [ "$(kv label "$out")" = edgeplane.io/dns-unhealthy ] && [ "$(kv namespace "$out")" = default ]
out=$(ENV_EXTRA="KUBERNETES_SERVICE_HOST=fd00::1 KUBERNETES_SERVICE_PORT=6443" resolve_out --enabled auto --token-file "$T/token" --ca-file "$CA")
check "resolve: IPv6 service host is bracketed" [ "$(kv api_server "$out")" = "https://[fd00::1]:6443" ]
out=$(ENV_EXTRA="KUBERNETES_SERVICE_HOST=10.96.0.1 KUBERNETES_SERVICE_PORT=443" resolve_out --enabled true --token-file "$T/nope")
check "resolve: enabled true without a token -> -1" [ "$(kv rc "$out")" = -1 ]
check "resolve: ... with a clear message naming the file" grep -q "no service account token: $T/nope.*enabled is true" <<<"$(kv err "$out")"
out=$(ENV_EXTRA= resolve_out --enabled true --token-file "$T/token" --ca-file "$CA")
check "resolve: enabled true without any API server -> -1" [ "$(kv rc "$out")" = -1 ]
out=$(ENV_EXTRA= resolve_out --enabled false --api-server "$API" --token-file "$T/token" --ca-file "$CA")
check "resolve: enabled false -> 0" [ "$(kv rc "$out")" = 0 ]
out=$(ENV_EXTRA= resolve_out --enabled auto --api-server "$API/" --token-file "$T/token" --ca-file "$CA")
check "resolve: api_server from the config overrides, trailing / dropped" [ "$(kv rc "$out")" = 1 ] && [ "$(kv api_server "$out")" = "$API" ]
out=$(ENV_EXTRA= resolve_out --enabled auto --api-server "http://127.0.0.1:1" --token-file "$T/token" --ca-file "$CA")
check "resolve: a plain http:// API server is refused (-1): the token must not travel in clear" [ "$(kv rc "$out")" = -1 ]
out=$(ENV_EXTRA= resolve_out --enabled true --api-server "$API" --token-file "$T/token" --ca-file "$T/nope.crt")
check "resolve: a missing CA file -> -1" [ "$(kv rc "$out")" = -1 ]
out=$(ENV_EXTRA= resolve_out --enabled true --api-server "$API" --token-file "$T/token" --ca-file "$CA" --node Bad_Name)
check "resolve: an invalid node name -> -1" [ "$(kv rc "$out")" = -1 ]
out=$(ENV_EXTRA= resolve_out --enabled true --api-server "$API" --token-file "$T/token" --ca-file "$CA" --namespace kube-system)
check "resolve: event_namespace other than default -> default, with a warning" \
  [ "$(kv namespace "$out")" = default ] && grep -q 'must be in namespace "default"' "$T/resolve.err"

# --- 3. the client ---------------------------------------------------------
# drv_spawn CMD...: CMD as a coprocess reading driver commands on stdin.
# (bash unsets DRV_PID/DRV when the coprocess ends: copy them at once.)
drv_spawn() {
  coproc DRV { exec "$@" 2>>"$T/drive.log"; }
  DRIVER_PID=${DRV_PID:-}
  DRV_IN=${DRV[1]:-}
  DRV_OUT=${DRV[0]:-}
}
# drv_start [OPTIONS...]: the driver against the fake server
drv_start() {
  drv_spawn "$DRIVE" --api-server "$API" --token-file "$T/token" --ca-file "$CA" \
    --node "$NODE" --timeout-ms 1000 --forbidden-retry-ms 2000 "$@" -
}
# drv CMD [ARGS...]: one command (words tab-separated); the answer in LINE;
# succeeds if it starts with "ok"
drv() {
  local IFS=$'\t'
  LINE="(no answer)"
  [ -n "$DRV_IN" ] && [ -n "$DRV_OUT" ] || return 1
  { echo "$*" >&"$DRV_IN"; } 2>/dev/null || return 1
  read -r -t 90 LINE <&"$DRV_OUT" || { LINE="(no answer)"; return 1; }
  [[ $LINE == ok* ]]
}
drv_stop() {
  drv stop
  { exec {DRV_IN}>&-; } 2>/dev/null
  wait "$DRIVER_PID" 2>/dev/null
  DRIVER_PID=
}
# sync_ok DESCRIPTION SECONDS: the driver reaches in_sync within SECONDS
sync_ok() { drv wait-sync "$2"; check "$1 ($LINE)" [ "${LINE:0:2}" = ok ]; }
val() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<" $LINE"; }
# lt A B: A < B for decimals
lt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 < b + 0) }'; }
logcount() { grep -c -E "$1" "$T/drive.log"; }
: >"$T/drive.log"

ctl POST reset
ctl DELETE requests
drv_start
drv start
drv sleep 100
drv unhealthy UpstreamTimeout "upstream 10.2.0.53: 40% of queries timed out"
# Only reported: idle, the worker wakes on this call and may take the CPU
# from the caller. The bound is checked below with the server hanging.
diag "first set_dns_state took $(val set_us) us"
sync_ok "failover: the node is in sync" 10
pyassert "failover: label edgeplane.io/dns-unhealthy=true, other labels kept" '
assert labels().get("edgeplane.io/dns-unhealthy") == "true", labels()
assert labels().get("kubernetes.io/hostname") == "edge-01" and "node-role.kubernetes.io/edge" in labels()'
pyassert "failover: condition EdgeplaneDNSHealthy False with reason, message, timestamps" '
c = cond("EdgeplaneDNSHealthy")
assert c and c["status"] == "False" and c["reason"] == "UpstreamTimeout", c
assert c["message"] == "upstream 10.2.0.53: 40% of queries timed out", c
assert c["lastTransitionTime"].endswith("Z") and c["lastHeartbeatTime"], c'
pyassert "failover: the kubelet's conditions are untouched and first" '
types = [c["type"] for c in N["status"]["conditions"]]
assert types == ["MemoryPressure", "DiskPressure", "PIDPressure", "Ready", "EdgeplaneDNSHealthy"], types
assert cond("Ready")["status"] == "True" and cond("Ready")["lastTransitionTime"] == "2024-05-01T08:00:00Z"'
pyassert "failover: one Event DNSFailover, Warning, with every field an Event needs" '
assert len(E) == 1, E
e = E[0]; io = e["involvedObject"]
assert e["reason"] == "DNSFailover" and e["type"] == "Warning", e
assert e["message"] == "upstream 10.2.0.53: 40% of queries timed out"
assert io == {"apiVersion": "v1", "kind": "Node", "name": "edge-01", "uid": N["metadata"]["uid"]}, io
assert e["metadata"]["namespace"] == "default" and e["metadata"]["name"].startswith("edge-01.")
assert e["source"] == {"component": "edgeplane-agent", "host": "edge-01"}, e["source"]
assert e["count"] == 1 and e["firstTimestamp"] == e["lastTimestamp"] and e["firstTimestamp"].endswith("Z")
assert e["reportingComponent"] == "edgeplane-agent" and e["reportingInstance"] == "edge-01"'
pyassert "requests: bearer token, merge-patch content type, resourceVersion on the status patch only" '
assert all(r["token"] == "tok-A" for r in R), [r["token"] for r in R]
p = reqs("PATCH")
assert p and all(r["content_type"] == "application/merge-patch+json" for r in p), p
lp, sp = reqs("PATCH", "/nodes/edge-01"), reqs("PATCH", "/status")
assert lp[0]["body"] == {"metadata": {"labels": {"edgeplane.io/dns-unhealthy": "true"}}}, lp[0]["body"]
assert sp[0]["body"]["metadata"]["resourceVersion"], sp[0]["body"]
assert len(sp[0]["body"]["status"]["conditions"]) == 5
assert reqs("POST")[0]["content_type"] == "application/json"
assert all(r["status"] in (200, 201) for r in R), [(r["method"], r["status"]) for r in R]'
pyassert "requests: one connection reused for all of them" '
assert len({r["peer_port"] for r in R}) == 1, [r["peer_port"] for r in R]'

sleep 1.1 # a new second, so a changed lastTransitionTime is visible
ctl DELETE requests
drv unhealthy UpstreamServfail "upstream 10.2.0.53 answers SERVFAIL"
drv wait-sync 10
pyassert "still unhealthy, new reason: condition updated, lastTransitionTime kept, no new Event" '
c = cond("EdgeplaneDNSHealthy")
assert c["reason"] == "UpstreamServfail" and c["status"] == "False", c
assert c["lastTransitionTime"] != c["lastHeartbeatTime"], c
assert len(E) == 1 and not reqs("POST") and not reqs("PATCH", "/nodes/edge-01")'

ctl DELETE requests
drv healthy
sync_ok "failback: in sync" 10
pyassert "failback: label removed" '
assert "edgeplane.io/dns-unhealthy" not in labels(), labels()
lp = reqs("PATCH", "/nodes/edge-01")
assert lp
assert lp[0]["body"] == {"metadata": {"labels": {"edgeplane.io/dns-unhealthy": None}}}, lp[0]["body"]'
pyassert "failback: condition True, reason DNSHealthy, new lastTransitionTime; kubelet conditions untouched" '
c = cond("EdgeplaneDNSHealthy")
assert c["status"] == "True" and c["reason"] == "DNSHealthy", c
assert c["lastTransitionTime"] == c["lastHeartbeatTime"], c
assert [x["type"] for x in N["status"]["conditions"]][:4] == ["MemoryPressure", "DiskPressure", "PIDPressure", "Ready"]'
pyassert "failback: Event DNSFailback, Normal" '
assert len(E) == 2 and E[1]["reason"] == "DNSFailback" and E[1]["type"] == "Normal", E'
drv status
n0=$(val requests)
drv healthy
sleep 0.3
drv status
check "the same state again sends nothing (requests $n0 -> $(val requests))" [ "$(val requests)" = "$n0" ]

# -- conflicts: the kubelet writes the node between our GET and PATCH
ctl DELETE requests
ctl POST faults '{"conflict": 2, "path_regex": "/status$"}'
drv unhealthy ConflictTest "with a busy kubelet"
sync_ok "409 conflicts: in sync" 10
pyassert "409 conflicts: re-read and retried at once, 2 x 409 then 200" '
s = reqs("PATCH", "/status")
assert [r["status"] for r in s] == [409, 409, 200], [r["status"] for r in s]
assert s[-1]["t"] - s[0]["t"] < 1.0, gaps(s)
assert len(reqs("GET")) == 3'
pyassert "409 conflicts: the kubelet's concurrent update survived ours" '
assert S["heartbeats"] == 2
assert cond("Ready")["message"] == "kubelet is posting ready status (heartbeat 2)", cond("Ready")
assert cond("EdgeplaneDNSHealthy")["status"] == "False"'
ctl DELETE requests
ctl POST faults '{"conflict": 14, "path_regex": "/status$"}'
drv healthy
sync_ok "persistent conflicts: resolved" 15
pyassert "persistent conflicts: at most 6 immediate attempts, then backoff" '
s = reqs("PATCH", "/status")
assert [r["status"] for r in s].count(409) == 14 and s[-1]["status"] == 200
g = gaps(s)
runs, n = [], 1
for x in g:
    if x < 0.09: n += 1
    else: runs.append(n); n = 1
runs.append(n)
assert max(runs) <= 6 and len(runs) >= 3, (runs, g)'

# -- 429
ctl DELETE requests
ctl POST faults '{"status": 429, "retry_after": 2, "method": "GET"}'
drv unhealthy Throttled "429 test"
sync_ok "429: in sync" 10
pyassert "429: Retry-After 2 s honoured" '
g = reqs("GET")
assert g[0]["status"] == 429 and g[1]["status"] == 200
assert 1.95 <= R[1]["t"] - R[0]["t"] <= 3.5, R[1]["t"] - R[0]["t"]'

# -- 5xx: exponential backoff with jitter
ctl DELETE requests
ctl POST faults '{"status": 500, "count": 4, "path_regex": "/status$"}'
drv healthy
sync_ok "500s: in sync" 15
pyassert "500s: retried with growing backoff (~100-200, 200-400, 400-800, 800-1600 ms)" '
s = reqs("PATCH", "/status")
assert [r["status"] for r in s] == [500, 500, 500, 500, 200], [r["status"] for r in s]
g = gaps(s)
for i, x in enumerate(g):
    lo, hi = 0.1 * 2 ** i * 0.95, 0.2 * 2 ** i + 0.3
    assert lo <= x <= hi, (i, g)
assert g[3] > g[0], g'
drv status
check "500s: counted as failures and retries ($LINE)" [ "$(val failures)" -ge 4 ] && [ "$(val retries)" -ge 4 ]
check "500s: logged with the API server's message" grep -q "nodes/status patch failed: 500 InternalError" "$T/drive.log"

# -- request timeout (the driver's is 1000 ms)
ctl DELETE requests
ctl POST faults '{"delay_ms": 2500, "method": "GET"}'
drv unhealthy Timeout "timeout test"
sync_ok "timeout: in sync after a request timed out" 10
pyassert "timeout: the hanging GET was abandoned after ~1 s and retried" '
g = reqs("GET")
assert g[0].get("fault") and g[1]["status"] == 200, g
assert 1.0 <= g[1]["t"] - g[0]["t"] <= 1.6, g[1]["t"] - g[0]["t"]'
check "timeout: logged" grep -q "nodes get failed: Operation timed out after" "$T/drive.log"

# -- a dropped connection
ctl DELETE requests
ctl POST faults '{"drop_connection": true, "method": "POST"}'
drv healthy
sync_ok "dropped connection: in sync" 10
pyassert "dropped connection: the Event POST was repeated, one Event exists" '
p = reqs("POST")
assert p[0]["status"] == "dropped" and p[-1]["status"] in (201, 409), p
names = [e["metadata"]["name"] for e in E]
assert len(names) == len(set(names)) and p[0]["body"]["metadata"]["name"] == p[-1]["body"]["metadata"]["name"]'

# -- 401: the token rotates; the file is updated later
ctl DELETE requests
ctl POST token '{"token": "tok-B"}'
drv unhealthy TokenTest "401 test"
sleep 1.5
drv status
check "401: not in sync while the token file is stale ($LINE)" [ "$(val in_sync)" = 0 ]
printf 'tok-B\n' >"$T/token.new" && mv "$T/token.new" "$T/token"
sync_ok "401: recovers once the token file holds the new token" 10
pyassert "401: retried with backoff, then the new token was used" '
u = [r for r in R if r["status"] == 401]
assert len(u) >= 2 and all(r["token"] == "tok-A" for r in u), [(r["token"], r["status"]) for r in R]
assert R[-1]["token"] == "tok-B" and R[-1]["status"] in (200, 201)
assert gaps(u)[0] >= 0.09, gaps(u)'
check "401: logged" grep -q "rejected (401 Unauthorized); re-reading it" "$T/drive.log"

# -- 403: RBAC without nodes/status patch
ctl DELETE requests
ctl POST rbac '{"allow": ["get nodes", "patch nodes", "create events"]}'
drv healthy
sleep 5
pyassert "403: no spinning (few requests in 5 s with a 2 s retry)" '
s = reqs("PATCH", "/status")
assert 2 <= len(s) <= 4 and all(r["status"] == 403 for r in s), [r["status"] for r in s]
assert len(R) <= 10, len(R)'
pyassert "403: the label and the Event went through anyway" '
assert "edgeplane.io/dns-unhealthy" not in labels()
assert E[-1]["reason"] == "DNSFailback"
assert cond("EdgeplaneDNSHealthy")["status"] == "False"'
check "403: logged once, naming the permission" [ "$(logcount 'RBAC: the service account may not "nodes/status patch" \(403 Forbidden: ')" = 1 ]
check "403: the log line quotes the API server" grep -qF 'cannot patch resource "nodes/status"' "$T/drive.log"
ctl POST rbac '{"allow": "*"}'
sync_ok "403: recovers when RBAC is granted" 10
check "403: recovery logged" grep -q 'RBAC now allows "nodes/status patch"' "$T/drive.log"
pyassert "403: condition now True" 'assert cond("EdgeplaneDNSHealthy")["status"] == "True"'

# -- 403 on events create only: label and condition are not held back
ctl DELETE requests
ctl POST rbac '{"allow": ["get nodes", "patch nodes", "patch nodes/status"]}'
drv unhealthy NoEvents "events forbidden"
sleep 1
drv status
check "events forbidden: not in sync (the Event is pending) ($LINE)" [ "$(val in_sync)" = 0 ]
pyassert "events forbidden: label and condition set anyway" '
assert labels().get("edgeplane.io/dns-unhealthy") == "true"
assert cond("EdgeplaneDNSHealthy")["status"] == "False"
assert [r["status"] for r in reqs("POST")] == [403]'
ctl POST rbac '{"allow": "*"}'
sync_ok "events forbidden: the Event is posted once allowed" 10
pyassert "events forbidden: exactly one DNSFailover for this transition" '
assert E[-1]["reason"] == "DNSFailover" and E[-1]["message"] == "events forbidden", E[-1]'

# -- the caller never blocks, whatever the server does
ctl DELETE requests
ctl POST faults '{"delay_ms": 4000, "count": -1}'
drv healthy
sleep 0.3
drv burst 2000
check "hung server: 2000 set_dns_state calls, slowest $(val max_us) us (< 1000)" lt "$(val max_us)" 1000
drv healthy Recovered "back"
check "hung server: one more returns in $(val set_us) us" lt "$(val set_us)" 1000
ctl DELETE faults
sync_ok "hung server: converges once the server answers again" 15
pyassert "hung server: the last state won" '
c = cond("EdgeplaneDNSHealthy")
assert c["status"] == "True" and c["reason"] == "Recovered" and c["message"] == "back", c'

# -- flapping converges to the last state
ctl DELETE requests
before=$("$PY" -c 'import json,sys,urllib.request; print(len(json.load(urllib.request.urlopen(sys.argv[1] + "/state"))["events"]))' "$CTL")
drv unhealthy Flap1 one
drv healthy
drv unhealthy Flap2 two
drv healthy
drv unhealthy Flap3 final
sync_ok "flapping: in sync" 10
pyassert "flapping: converged to the last state (unhealthy, Flap3)" '
c = cond("EdgeplaneDNSHealthy")
assert c["status"] == "False" and c["reason"] == "Flap3" and c["message"] == "final", c
assert labels().get("edgeplane.io/dns-unhealthy") == "true"'
pyassert "flapping: Events alternate and end with DNSFailover" "
new = [e['reason'] for e in E[$before:]]
assert new and len(new) % 2 == 1 and new[-1] == 'DNSFailover', new
assert all(a != b for a, b in zip(new, new[1:])), new"
drv_stop

# -- a restart while failed over posts no second DNSFailover
ctl DELETE requests
drv_start
drv unhealthy Flap3 final
sync_ok "restart: in sync" 10
pyassert "restart: same state after a restart: one GET, no writes, no Event" '
assert [r["method"] for r in R] == ["GET"], [(r["method"], r["path"]) for r in R]'
drv healthy
drv wait-sync 10
pyassert "restart: the failback after it is reported" 'assert E[-1]["reason"] == "DNSFailback"'
drv_stop

# -- stop is bounded while a request hangs (request timeout 20 s)
ctl DELETE requests
ctl POST faults '{"delay_ms": 15000, "count": -1}'
drv_start --timeout-ms 20000
drv unhealthy Hang "hang"
sleep 0.5
drv stop
check "stop with a request in flight returns in $(val stop_ms) ms (< 300)" lt "$(val stop_ms)" 300
{ exec {DRV_IN}>&-; } 2>/dev/null
wait "$DRIVER_PID" 2>/dev/null; DRIVER_PID=
pyassert "stop: a request was in flight when it stopped" 'assert len(R) == 1 and R[0]["status"] is None, R'
ctl DELETE faults

# --- 4. valgrind ------------------------------------------------------------
if command -v valgrind >/dev/null; then
  ctl POST reset
  echo tok-A >"$T/token"
  ctl DELETE requests
  ctl POST faults '[{"status": 500, "count": 2, "path_regex": "/status$"}, {"conflict": 1, "path_regex": "/status$"}, {"drop_connection": true, "method": "POST"}]'
  VG=(valgrind --quiet --leak-check=full --show-leak-kinds=definite,indirect
      --errors-for-leak-kinds=definite,indirect --error-exitcode=99 --log-file="$T/valgrind.log")
  drv_spawn "${VG[@]}" "$DRIVE" --api-server "$API" --token-file "$T/token" --ca-file "$CA" \
    --node "$NODE" --timeout-ms 8000 --forbidden-retry-ms 2000 -
  drv unhealthy Valgrind "under valgrind"
  sync_ok "valgrind: failover with 500s, a conflict, a dropped connection" 60
  ctl POST faults '{"status": 429, "retry_after": 1, "method": "GET"}'
  drv healthy
  sync_ok "valgrind: failback after a 429" 60
  ctl POST faults '{"delay_ms": 20000, "count": -1}'
  drv unhealthy Hang "stop while hanging"
  sleep 1
  drv stop
  { exec {DRV_IN}>&-; } 2>/dev/null
  wait "$DRIVER_PID"; rc=$?; DRIVER_PID=
  ctl DELETE faults
  check "valgrind: no leaks or memory errors (exit $rc)" [ "$rc" = 0 ]
  [ "$rc" = 0 ] || sed 's/^/# /' "$T/valgrind.log" | head -60
else
  tap_skip "valgrind run" "valgrind not installed"
fi

if [ "$TAP_FAILED" -gt 0 ]; then
  echo "# driver log (last 60 lines):"; tail -60 "$T/drive.log" | sed 's/^/# /'
  echo "# server stderr:"; tail -20 "$T/server.err" | sed 's/^/# /'
fi
tap_done
