#!/usr/bin/env bash
# End to end: a backend that refuses. Through a VIP whose backends listen on
# nothing, a client must learn at once what it would learn talking to the
# backend directly: a TCP connect gets the backend's RST (ECONNREFUSED), a
# connected UDP socket gets the backend's ICMP port unreachable
# (ECONNREFUSED on the next call), and a TCP connect that the backend's
# firewall rejects with ICMP port unreachable is refused too; IPv4 and IPv6,
# never a silent timeout after the SYN's retransmissions. Reverse NAT has to
# translate the answer to a flow that never completed its handshake.
set -u
cd "$(dirname "$0")/../.." || exit 1
source tests/lib/tap.sh
source tests/lib/netns.sh
source tests/lab/lab.sh

lab_up 2 || { not_ok "lab setup"; tap_done; exit 1; }
lab_backends_start 8080 8082 || { not_ok "backends start"; tap_done; exit 1; }
for i in 1 2; do
  # The probes follow each other fast: no ICMP rate limit on the backends.
  ip netns exec "${LAB_NS_BE[$i]}" sysctl -qw net.ipv4.icmp_ratelimit=0 net.ipv6.icmp.ratelimit=0
  ip netns exec "${LAB_NS_BE[$i]}" nft -f - <<EOT || { not_ok "backend firewall"; tap_done; exit 1; }
table inet ep_reject {
  chain in {
    type filter hook input priority 0;
    tcp dport 8082 reject with icmpx type port-unreachable
  }
}
EOT
done
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
# Port 8080 is served by the lab's backends; nothing listens on 8081; the
# backends' firewall rejects 8082 with ICMP port unreachable (the listener
# there never sees the SYN).
LAB_SERVICES_YAML="$(svc open "$LAB_VIP4" tcp 8080; svc closed "$LAB_VIP4" udp 8081; svc open6 "$LAB_VIP6" tcp 8080)
$(svc closed4t 10.77.100.2 tcp 8081 | sed 's/port: 80$/port: 81/')
$(svc closed6t "$LAB_VIP6" tcp 8081 | sed 's/port: 80$/port: 81/')
$(svc closed6u "$LAB_VIP6" udp 8081)
$(svc rejected4 10.77.100.3 tcp 8082 | sed 's/port: 80$/port: 82/')
$(svc rejected6 "$LAB_VIP6" tcp 8082 | sed 's/port: 80$/port: 82/')"
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
# An ICMP error about a SYN can come back over these veths while connect()
# still holds its socket: the kernel then keeps it as a soft error and the
# first retransmission (1 s) collects the refusal. So within 2 s there, where
# a lost answer would mean the probe's 5 s timeout.
for p in "10.77.100.2 81 tcp 1.0" "$LAB_VIP6 81 tcp 1.0" "$LAB_VIP4 80 udp 1.0" "$LAB_VIP6 80 udp 1.0" \
  "10.77.100.3 82 tcp 2.0" "$LAB_VIP6 82 tcp 2.0"; do
  set -- $p
  for try in 1 2 3; do
    out=$(probe "$1" "$2" "$3")
    check "backends refuse: $3 to $1:$2 is refused within $4 s, try $try ($out)" \
      bash -c "[ '${out%% *}' = refused ] && $PY3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) < float(sys.argv[2]) else 1)' '${out##* }' $4"
  done
done
tap_done
