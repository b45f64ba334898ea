#!/usr/bin/env bash
# End to end: a backend that refuses. Through a VIP whose backends listen on
# nothing, a client must learn at once what it would learn talking to the
# backend directly: a TCP connect gets the backend's RST (ECONNREFUSED), a
# connected UDP socket gets the backend's ICMP port unreachable
# (ECONNREFUSED on the next call), IPv4 and IPv6 - never a silent timeout
# after the SYN's retransmissions. Reverse NAT has to translate the answer to
# a flow that never completed its handshake.
set -u
cd "$(dirname "$0")/../.." || exit 1
source tests/lib/tap.sh
source tests/lib/netns.sh
source tests/lab/lab.sh

lab_up 2 || { not_ok "lab setup"; tap_done; exit 1; }
lab_backends_start 8080 || { not_ok "backends start"; tap_done; exit 1; }
svc() { # NAME VIP PROTO BACKEND_PORT
  echo "  - name: $1"
  echo "    vip: $2"
  echo "    port: 80"
  echo "    protocol: $3"
  echo "    backends:"
  for i in 1 2; do
    if [[ $2 == *:* ]]; then echo "      - {address: $(lab_be6 $i), port: $4}"
    else echo "      - {address: $(lab_be4 $i), port: $4}"; fi
  done
}
# Port 8080 is served by the lab's backends; nothing listens on 8081.
LAB_SERVICES_YAML="$(svc open "$LAB_VIP4" tcp 8080; svc closed "$LAB_VIP4" udp 8081; svc open6 "$LAB_VIP6" tcp 8080)
$(svc closed4t 10.77.100.2 tcp 8081 | sed 's/port: 80$/port: 81/')
$(svc closed6t "$LAB_VIP6" tcp 8081 | sed 's/port: 80$/port: 81/')
$(svc closed6u "$LAB_VIP6" udp 8081)"
lab_config_write
lab_agent_start || { not_ok "agent start"; tap_done; exit 1; }

# probe ADDR PORT tcp|udp: what a client sees, and how long it took
probe() {
  lab_client "$PY3" - "$@" <<'PY'
import socket, sys, time
addr, port, proto = sys.argv[1], int(sys.argv[2]), sys.argv[3]
fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
t0 = time.monotonic()
try:
    if proto == "tcp":
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.settimeout(5)
        s.connect((addr, port))
        s.sendall(b"ping\n")
        s.recv(100)
        res = "connected"
    else:
        s = socket.socket(fam, socket.SOCK_DGRAM)
        s.settimeout(1)
        s.connect((addr, port))
        res = "timeout"
        for _ in range(3):
            s.send(b"ping\n")
            try:
                s.recv(100)
                res = "answered"
                break
            except socket.timeout:
                continue
except ConnectionRefusedError:
    res = "refused"
except (socket.timeout, TimeoutError):
    res = "timeout"
except OSError as e:
    res = "error:" + (e.strerror or str(e))
print(res, round(time.monotonic() - t0, 3))
PY
}

for p in "$LAB_VIP4 80 tcp" "$LAB_VIP6 80 tcp"; do
  set -- $p
  out=$(probe "$@")
  check "a VIP with listening backends: TCP to $1 connects ($out)" [ "${out%% *}" = connected ]
done
for p in "10.77.100.2 81 tcp" "$LAB_VIP6 81 tcp" "$LAB_VIP4 80 udp" "$LAB_VIP6 80 udp"; do
  set -- $p
  for try in 1 2 3; do
    out=$(probe "$@")
    check "backends refuse: $3 to $1:$2 is refused at once, try $try ($out)" \
      bash -c "[ '${out%% *}' = refused ] && $PY3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) < 1.0 else 1)' '${out##* }'"
  done
done
tap_done
