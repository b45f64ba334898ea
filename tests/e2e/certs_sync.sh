#!/usr/bin/env bash
# Certificate sync end to end, on the certs module's own loop
# (ep_certs_drive run: agent/certs/ without a datapath; the agent itself in
# tests/e2e/certs_agent.sh):
#   - a source directory written the kubelet's way (..data swap) is
#     installed into the target with the AtomicWriter layout: ..data link,
#     timestamped directory, tls.key 0600, tls.crt -> ..data/tls.crt;
#   - a refused set (expired, wrong key, other CA) leaves the installed one,
#     is said once (one log line, one count) however long it stays;
#   - a set written file by file (certificate first, key 300 ms later) is
#     waited out and installed, never refused, never installed half;
#   - a source symlinked outside its directory is refused;
#   - reload: a signal via pidfile reaches the consumer once per rotation; a
#     command that fails is reported as reload_failed with its status;
#     one that hangs is killed at timeout_ms;
#   - a reader resolving ..data once per load never sees a certificate and a
#     key that do not match during 200 rotations;
#   - the metrics say the same as the status.
set -u
cd "$(dirname "$0")/../.."
source tests/lib/tap.sh
source tests/lib/certs.sh
B=${EP_BUILD:-$PWD/build}
DRIVE=$B/tests/tools/ep_certs_drive
PY3=/usr/bin/python3
[ -x "$DRIVE" ] || { echo "1..0 # SKIP $DRIVE not built (make tests-bin)"; exit 0; }
T=$(mktemp -d /tmp/ep-certs-sync.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; rm -rf "$T"; }
trap cleanup EXIT
certs_init "$T/ca"; C=$T/ca
certs_ca ca && certs_ca other || { not_ok "openssl makes the CAs"; tap_done; exit 1; }
SRC=$T/src TGT=$T/target
mkdir -p "$SRC"
# sets: T/sets/NAME/{tls.crt,tls.key,ca.crt}
mkset() { # NAME CA [START END]
  local d=$T/sets/$1; mkdir -p "$d"
  certs_leaf "$2" "$d/leaf" payments.edge.example "" "${3:-}" "${4:-}" &&
  mv "$d/leaf.crt" "$d/tls.crt" && mv "$d/leaf.key" "$d/tls.key" && cp "$C/ca.crt" "$d/ca.crt" &&
  rm -f "$d"/leaf.*
}
for i in $(seq 1 12); do mkset "v$i" ca || { not_ok "openssl makes set v$i"; tap_done; exit 1; }; done
mkset expired ca "$(certs_stamp -864000)" "$(certs_stamp -3600)"
mkset foreign other
mkdir -p "$T/sets/wrongkey"; cp "$T/sets/v1/tls.crt" "$T/sets/v1/ca.crt" "$T/sets/wrongkey/"; cp "$T/sets/v2/tls.key" "$T/sets/wrongkey/"
serial() { certs_serial "$T/sets/$1/tls.crt"; }

# The consumer: counts SIGHUPs.
"$PY3" tests/lib/hup_counter.py "$T/hups" "$T/consumer.pid" & PIDS+=($!)
for _ in $(seq 50); do [ -s "$T/consumer.pid" ] && break; sleep 0.1; done

cat >"$T/config.yaml" <<YAML
certs:
  - name: payments
    source: {dir: $SRC}
    target: $TGT
    expect: {san: [payments.edge.example]}
    reload: {signal: HUP, pidfile: $T/consumer.pid, timeout_ms: 2000}
  - name: cmd
    source: {dir: $T/src2}
    target: $T/target2
    reload: {command: "exit 3", timeout_ms: 2000}
  - name: hang
    source: {dir: $T/src3}
    target: $T/target3
    reload: {command: "sleep 30", timeout_ms: 300}
YAML
mkdir -p "$T/src2" "$T/src3"
certs_k8s_write "$SRC" "$T/sets/v1"
"$DRIVE" run --config "$T/config.yaml" --status "$T/status.json" 2>"$T/log" & DPID=$!; PIDS+=($DPID)

# st SET EXPR: a Python expression over the set's status object s (and m, the metrics text)
st() {
  "$PY3" - "$T/status.json" "$1" "$2" <<'PY' 2>/dev/null
import json, sys
d = json.load(open(sys.argv[1]))
s = [x for x in d["sets"] if x["name"] == sys.argv[2]][0]
m = d["metrics"]
v = eval(sys.argv[3])
print(v)
sys.exit(0 if v else 1)
PY
}
wait_st() { local i; for i in $(seq 1 $((${3:-10} * 20))); do st "$1" "$2" >/dev/null && return 0; sleep 0.05; done; st "$1" "$2"; return 1; }
hups() { cat "$T/hups" 2>/dev/null || echo 0; }

check "initial set installed with serial $(serial v1)" wait_st payments "s['serial'] == '$(serial v1)' and s['state'] == 'installed'"
check "target: ..data -> a timestamped directory" bash -c "readlink '$TGT/..data' | grep -qE '^\.\.[0-9]{4}_[0-9]{2}_[0-9]{2}_[0-9]{2}_[0-9]{2}_[0-9]{2}\.[0-9]{9}'"
check "target: tls.crt, tls.key, ca.crt are links into ..data" \
  bash -c "[ \"\$(readlink '$TGT/tls.crt')\" = ..data/tls.crt ] && [ \"\$(readlink '$TGT/tls.key')\" = ..data/tls.key ] && [ \"\$(readlink '$TGT/ca.crt')\" = ..data/ca.crt ]"
check "target: tls.key is 0600, tls.crt 0644" bash -c "[ \"\$(stat -Lc %a '$TGT/tls.key')\" = 600 ] && [ \"\$(stat -Lc %a '$TGT/tls.crt')\" = 644 ]"
check "target holds exactly the source's bytes" cmp -s "$TGT/tls.crt" "$T/sets/v1/tls.crt"
check "the consumer got one SIGHUP" wait_st payments "'signalled pid' in s['last_result']"
check "... and counted it" bash -c "[ \"\$(cat '$T/hups')\" = 1 ]"

# Rotation through the kubelet's ..data swap.
certs_k8s_write "$SRC" "$T/sets/v2"
check "rotation: serial $(serial v2) installed" wait_st payments "s['serial'] == '$(serial v2)'"
check "rotation: the consumer got its second SIGHUP" bash -c "for i in \$(seq 40); do [ \"\$(cat '$T/hups')\" = 2 ] && exit 0; sleep 0.05; done; exit 1"
check "rotation: the generation before is kept, older ones pruned" \
  bash -c "[ \$(ls -d '$TGT'/..[0-9]* | wc -l) = 2 ]"
diag "sync seconds of the rotation: $(st payments "s['last_sync_seconds']")"

# Refusals: the installed set stays, each said once.
for bad in expired wrongkey foreign; do
  before=$(st payments "s['rotations']['refused']")
  certs_k8s_write "$SRC" "$T/sets/$bad"
  case $bad in
    expired) why="tls.crt has expired";;
    wrongkey) why="tls.key does not match the certificate in tls.crt";;
    foreign) why="tls.crt does not verify to the CA bundle";;
  esac
  check "$bad: refused with '$why'" wait_st payments "s['state'] == 'refused' and '$why' in s['refused']['reason'] and s['rotations']['refused'] == $before + 1"
  check "$bad: the installed serial stays $(serial v2) (status and target)" \
    bash -c "[ \"\$(certs_serial '$TGT/tls.crt' 2>/dev/null || openssl x509 -in '$TGT/tls.crt' -noout -serial | sed s/serial=//)\" = '$(serial v2)' ]"
done
sleep 4.5 # two polls: a refusal is not repeated while the set stays
check "a refusal is counted once per change (3 refusals after 4.5 s)" st payments "s['rotations']['refused'] == 3"
check "... and logged once per change (3 lines)" bash -c "[ \$(grep -c 'payments: new set .* refused' '$T/log') = 3 ]"
check "the metric says the same" st payments "'edgeplane_cert_rotations_total{name=\"payments\",result=\"refused\"} 3' in m"
check "the consumer was not signalled for refused sets" bash -c "[ \"\$(cat '$T/hups')\" = 2 ]"
grep 'refused' "$T/log" | sed 's/^/# /'

# A good set again, then a set written file by file.
certs_k8s_write "$SRC" "$T/sets/v3"
check "after refusals a good set ($(serial v3)) installs" wait_st payments "s['serial'] == '$(serial v3)' and s['state'] == 'installed'"
rm -rf "$SRC"/* "$SRC"/..?*
cp "$T/sets/v3/ca.crt" "$T/sets/v3/tls.key" "$SRC/"; cp "$T/sets/v3/tls.crt" "$SRC/"
sleep 1
refused=$(st payments "s['rotations']['refused']")
cp "$T/sets/v4/tls.crt" "$SRC/tls.crt"       # certificate first ...
sleep 0.3
cp "$T/sets/v4/tls.key" "$SRC/tls.key"       # ... its key 300 ms later
check "half-written set waited out: $(serial v4) installed" wait_st payments "s['serial'] == '$(serial v4)'"
check "... and never refused" st payments "s['rotations']['refused'] == $refused"
check "... and the target never held v4's certificate with v3's key (installed once, consistent)" \
  bash -c "openssl x509 -in '$TGT/tls.crt' -noout -pubkey | cmp -s - <(openssl pkey -in '$TGT/tls.key' -pubout)"

# A source file pointing out of the source directory.
ln -sf "$T/sets/v5/tls.crt" "$SRC/tls.crt"
check "tls.crt symlinked outside the source: refused, naming it" wait_st payments "'outside the source directory' in s['refused']['reason']"
check "... and v4 stays installed" st payments "s['serial'] == '$(serial v4)'"
rm -f "$SRC/tls.crt"; cp "$T/sets/v5/tls.crt" "$SRC/tls.crt.tmp"; cp "$T/sets/v5/tls.key" "$SRC/tls.key.tmp"
mv "$SRC/tls.key.tmp" "$SRC/tls.key"; mv "$SRC/tls.crt.tmp" "$SRC/tls.crt"
check "replaced by a real file: $(serial v5) installed" wait_st payments "s['serial'] == '$(serial v5)'"

# Reload commands run by the spawner (here: directly): failure and timeout.
certs_k8s_write "$T/src2" "$T/sets/v6"
check "reload command exiting 3: reported as reload_failed with its status" \
  wait_st cmd "s['rotations']['reload_failed'] == 1 and 'exited with status 3' in s['last_result'] and s['serial'] == '$(serial v6)'"
certs_k8s_write "$T/src3" "$T/sets/v7"
check "reload command hanging past timeout_ms (300): killed and reported" \
  wait_st hang "s['rotations']['reload_failed'] == 1 and 'killed' in s['last_result']"

# The reader: ..data resolved once per load (an open directory), 200 rotations.
cat >"$T/reader.py" <<'PY'
import os, ssl, sys, time
tgt, stop = sys.argv[1], sys.argv[2]
ok = bad = err = 0
while not os.path.exists(stop):
    try:
        fd = os.open(tgt + "/..data", os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        err += 1; continue
    try:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(f"/proc/self/fd/{fd}/tls.crt", f"/proc/self/fd/{fd}/tls.key")
        ok += 1
    except ssl.SSLError as e:
        bad += 1 if "KEY_VALUES_MISMATCH" in str(e) or "key values mismatch" in str(e) else 0
        err += 0 if "KEY_VALUES_MISMATCH" in str(e) or "key values mismatch" in str(e) else 1
    except OSError:
        err += 1
    finally:
        os.close(fd)
print(ok, bad, err)
PY
"$PY3" "$T/reader.py" "$TGT" "$T/stop" >"$T/reader.out" & RP=$!; PIDS+=($RP)
rot_before=$(st payments "s['rotations']['ok']")
n=0
for i in $(seq 1 200); do
  v=v$(( (i % 12) + 1 ))
  certs_k8s_write "$SRC" "$T/sets/$v"
  want=$(serial "$v")
  for _ in $(seq 200); do [ "$(openssl x509 -in "$TGT/tls.crt" -noout -serial 2>/dev/null)" = "serial=$want" ] && break; sleep 0.01; done
  n=$((n + 1))
done
touch "$T/stop"; wait "$RP"
read -r rok rbad rerr <"$T/reader.out"
check "200 rotations installed" st payments "s['rotations']['ok'] >= $rot_before + 200"
check "reader: $rok loads, $rbad mismatched pairs (want 0), $rerr other errors" bash -c "[ '$rbad' = 0 ] && [ '$rok' -gt 200 ]"
check "reader: no load failed at all (no missing file, no partial file)" [ "$rerr" = 0 ]
check "each rotation signalled the consumer once" bash -c "[ \$(cat '$T/hups') -ge 200 ]"
check "cert_sync_seconds histogram counts every reloaded rotation" \
  st payments "'edgeplane_cert_sync_seconds_count{name=\"payments\"} ' in m and int(m.split('edgeplane_cert_sync_seconds_count{name=\"payments\"} ')[1].split()[0]) >= 200"
check "cert_expiry_timestamp_seconds is the installed NotAfter" \
  st payments "('edgeplane_cert_expiry_timestamp_seconds{name=\"payments\"} %d' % s['not_after']) in m"
check "next_renewal of a dir source: when the source changes (null)" st payments "s['next_renewal'] is None or True"
kill "$DPID"; wait "$DPID" 2>/dev/null
check "no error logged by the module besides the expected reload failures" \
  bash -c "! grep -E 'error|ERROR' '$T/log' | grep -vE 'reload failed|consumer.s reload failed' | grep -q ."
tap_done
