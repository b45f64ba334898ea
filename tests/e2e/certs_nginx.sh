#!/usr/bin/env bash
# A real mTLS server kept in step by certificate sync: nginx (Debian's)
# serves TLS with client certificates required, from the target the certs
# module installs; the module reloads it with SIGHUP via its pidfile and
# verifies by a TLS handshake that nginx serves the new serial. A client
# handshakes (and fetches a page) continuously during 100 rotations of
# the source (the kubelet's ..data swap):
#   - zero failed handshakes;
#   - the client sees every new serial (the bound is the wait below, 10 s;
#     the distribution is what tests/bench/certs_sync.sh measures);
#   - every rotation verified ("serves it") and counted.
set -u
cd "$(dirname "$0")/../.."
source tests/lib/tap.sh
source tests/lib/certs.sh
B=${EP_BUILD:-$PWD/build}
DRIVE=$B/tests/tools/ep_certs_drive
PY3=/usr/bin/python3
ROTATIONS=${EP_CERTS_ROTATIONS:-100}
[ -x "$DRIVE" ] || { echo "1..0 # SKIP $DRIVE not built (make tests-bin)"; exit 0; }
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$NGINX" ] || { echo "1..0 # SKIP nginx not installed (make deps: nginx-light)"; exit 0; }
T=$(mktemp -d /tmp/ep-certs-nginx.XXXXXX)
PIDS=()
cleanup() {
  touch "$T/stop"
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  [ -s "$T/nginx.pid" ] && kill -QUIT "$(cat "$T/nginx.pid")" 2>/dev/null
  sleep 0.2; rm -rf "$T"
}
trap cleanup EXIT
certs_init "$T/ca"; C=$T/ca
certs_ca ca || { not_ok "openssl makes the CA"; tap_done; exit 1; }
POOL=12
for i in $(seq 1 $POOL); do
  d=$T/sets/v$i; mkdir -p "$d"
  certs_leaf ca "$d/leaf" payments.edge.example "DNS:payments.edge.example,IP:127.0.0.1" &&
    mv "$d/leaf.crt" "$d/tls.crt" && mv "$d/leaf.key" "$d/tls.key" && cp "$C/ca.crt" "$d/ca.crt" && rm -f "$d"/leaf.* ||
    { not_ok "openssl makes set v$i"; tap_done; exit 1; }
done
certs_leaf ca "$T/client" client.edge.example
serial() { openssl x509 -in "$T/sets/$1/tls.crt" -noout -serial | sed 's/serial=//'; }

SRC=$T/src TGT=$T/target PORT=$(( 20000 + $$ % 20000 ))
mkdir -p "$SRC" "$T/nginx"
certs_k8s_write "$SRC" "$T/sets/v1"
cat >"$T/config.yaml" <<YAML
certs:
  - name: edge-mtls
    source: {dir: $SRC}
    target: $TGT
    expect: {san: [payments.edge.example]}
    reload: {signal: HUP, pidfile: $T/nginx.pid, verify: "127.0.0.1:$PORT", timeout_ms: 5000}
YAML
"$DRIVE" run --config "$T/config.yaml" --status "$T/status.json" 2>"$T/log" & DPID=$!; PIDS+=($DPID)
for _ in $(seq 100); do [ -e "$TGT/tls.crt" ] && break; sleep 0.05; done
check "initial set installed before nginx starts" [ -e "$TGT/tls.crt" ]
cat >"$T/nginx/nginx.conf" <<NG
worker_processes 1;
pid $T/nginx.pid;
error_log $T/nginx/error.log warn;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path $T/nginx/body; proxy_temp_path $T/nginx/proxy;
  fastcgi_temp_path $T/nginx/fcgi; uwsgi_temp_path $T/nginx/uwsgi; scgi_temp_path $T/nginx/scgi;
  server {
    listen 127.0.0.1:$PORT ssl;
    ssl_certificate $TGT/tls.crt;
    ssl_certificate_key $TGT/tls.key;
    ssl_client_certificate $TGT/ca.crt;
    ssl_verify_client on;
    location / { return 200 "ok\n"; }
  }
}
NG
"$NGINX" -p "$T/nginx" -c "$T/nginx/nginx.conf" 2>"$T/nginx/start.err"
for _ in $(seq 100); do [ -s "$T/nginx.pid" ] && break; sleep 0.05; done
check "nginx started with mTLS on 127.0.0.1:$PORT (pid $(cat "$T/nginx.pid" 2>/dev/null))" [ -s "$T/nginx.pid" ]
diag "$("$NGINX" -v 2>&1)"

"$PY3" tests/lib/certs_client.py 127.0.0.1 "$PORT" "$C/ca.crt" "$T/client.crt" "$T/client.key" "$T/seen" "$T/stop" & CP=$!; PIDS+=($CP)
for _ in $(seq 100); do grep -q " $(serial v1)\$" "$T/seen" 2>/dev/null && break; sleep 0.05; done
check "the client handshakes (client certificate required) and sees $(serial v1)" grep -q " $(serial v1)\$" "$T/seen"

missed=0 slowest=0
for i in $(seq 1 "$ROTATIONS"); do
  v=v$(( (i % POOL) + 1 ))
  want=$(serial "$v")
  certs_k8s_write "$SRC" "$T/sets/$v"
  echo "$CERTS_SWAP_NS $want" >>"$T/swaps"
  t0=$(date +%s%N)
  seen=0
  for _ in $(seq 1000); do
    if [ "$(tail -1 "$T/seen" | awk '{print $2}')" = "$want" ]; then seen=1; break; fi
    sleep 0.01
  done
  dt=$(( ($(date +%s%N) - t0) / 1000000 ))
  [ "$dt" -gt "$slowest" ] && slowest=$dt
  [ $seen = 1 ] || missed=$((missed + 1))
done
touch "$T/stop"; wait "$CP"
read -r _ hs_ok hs_failed < <(grep '^done' "$T/seen")
check "$ROTATIONS rotations: the client saw every new serial within 10 s ($missed missed; slowest ${slowest} ms)" [ "$missed" = 0 ]
check "zero failed handshakes ($hs_ok handshakes, ${hs_failed:-?} failed)" [ "${hs_failed:-1}" = 0 ]
grep '^fail' "$T/seen" | sed 's/^/# /'
# Source change (the ..data rename) -> the client's first handshake showing
# the new serial, per rotation; the bench (tests/bench/certs_sync.sh) keeps them.
"$PY3" - "$T/swaps" "$T/seen" "${EP_CERTS_BENCH_JSON:-}" "$hs_ok" "${hs_failed:-0}" <<'PY' >"$T/lat"
import json, sys
swaps = [(int(a) / 1e9, b) for a, b in (l.split() for l in open(sys.argv[1]))]
seen = [(float(a), b) for a, b in (l.split() for l in open(sys.argv[2]) if l[0].isdigit())]
lat = []
for t, serial in swaps:
    first = [ts for ts, s in seen if s == serial and ts >= t]
    if first:
        lat.append((min(first) - t) * 1000)
lat.sort()
q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] if lat else float("nan")
r = {"source": "dir", "consumer": "nginx (SIGHUP via pidfile, verify by handshake)",
     "rotations": len(swaps), "measured": len(lat), "median_ms": round(q(0.5), 1),
     "p95_ms": round(q(0.95), 1), "max_ms": round(lat[-1], 1) if lat else None,
     "min_ms": round(lat[0], 1) if lat else None,
     "handshakes": int(sys.argv[4]), "failed_handshakes": int(sys.argv[5])}
if sys.argv[3]:
    json.dump(r, open(sys.argv[3], "w"), indent=1)
print("source change -> client sees the new serial: %d rotations, median %.1f ms, p95 %.1f ms, max %.1f ms"
      % (len(lat), r["median_ms"], r["p95_ms"], r["max_ms"] or 0))
PY
diag "$(cat "$T/lat")"
st() { "$PY3" -c 'import json,sys; s=json.load(open(sys.argv[1]))["sets"][0]; print(eval(sys.argv[2]))' "$T/status.json" "$1"; }
check "every rotation installed and counted (ok=$(st "s['rotations']['ok']"))" \
  [ "$(st "s['rotations']['ok']")" -ge "$ROTATIONS" ]
check "no reload failed but the first, before nginx ran (reload_failed=$(st "s['rotations']['reload_failed']"))" \
  [ "$(st "s['rotations']['reload_failed']")" = 1 ]
last=$(st "s['last_result']")
check "last result: nginx verified serving the new serial ($last)" grep -q "127.0.0.1:$PORT serves it" <<<"$last"
check "nginx logged no error" bash -c "! grep -E '\\[(emerg|alert|crit|error)\\]' '$T/nginx/error.log'"
tap_done
