#!/usr/bin/env bash
# End to end: the cgroup socket-address hooks of tc/sock_dns.bpf.c with real
# sockets. A network namespace holds the "cache" (a UDP/TCP responder on
# 169.254.20.10:53 and [fd00:ca::10]:53 on lo) and routes to the upstreams
# (10.77.53.53, 2001:db8:53::53) into a veth whose far end drops everything.
# The programs are attached to one child cgroup only (bpf_links pinned on a
# private bpffs by tests/tools/ep_sock_dns_attach). A process in that cgroup
# asks the upstream: in cache mode it gets the cache's answer, reported as
# coming from the upstream (recvmsg / getpeername rewrite), over unconnected
# and connected UDP and TCP, IPv4, IPv6 and IPv4-mapped; in upstream mode it
# times out; so does a process outside the cgroup, a process in the cgroup but
# in another network namespace, and a socket exempted as the agent exempts its
# own (ep_dns_exempt socket storage), also from a process in a PID namespace of
# its own; other sockets of that process are still redirected, and a process
# without access to the pinned map cannot exempt its socket.
set -u
cd "$(dirname "$0")/../.."
source tests/lib/tap.sh
source tests/lib/netns.sh

TOOL=${EP_BUILD:-build}/tests/tools/ep_sock_dns_attach
UP4=10.77.53.53 UP6=2001:db8:53::53
CACHE4=169.254.20.10 CACHE6=fd00:ca::10

if [ "$(id -u)" -ne 0 ]; then
  tap_skip "socket DNS hooks" "needs root (BPF, namespaces, cgroups)"; tap_done; exit 0
fi
CG2=$(awk '$3 == "cgroup2" {print $2; exit}' /proc/mounts)
if [ -z "$CG2" ]; then
  tap_skip "socket DNS hooks" "cgroup v2 is not mounted on this host (no cgroup2 in /proc/mounts)"; tap_done; exit 0
fi
diag "cgroup v2 at $CG2"
if [ ! -x "$TOOL" ]; then
  not_ok "$TOOL is built (make build/tests/tools/ep_sock_dns_attach)"; tap_done; exit 1
fi

TMP=$(netns_tmpdir)
PIN=$TMP/bpf
netns_bpffs "$PIN" || { not_ok "private bpffs mounted"; tap_done; exit 1; }
CG=$CG2/${NS_PREFIX}-dnssock
mkdir "$CG" || { not_ok "child cgroup $CG created"; tap_done; exit 1; }
# Before the bpffs goes: detach (drop the link pins), empty and remove the cgroup.
netns_on_cleanup "rm -f '$PIN'/links/*; for p in \$(cat '$CG/cgroup.procs' 2>/dev/null); do echo \$p > '$CG2/cgroup.procs'; done; rmdir '$CG'"

# --- helpers ----------------------------------------------------------------
cat >"$TMP/responder.py" <<'EOF'
import socket, struct, sys, threading

def recvn(c, n):
    b = b""
    while len(b) < n:
        d = c.recv(n - len(b))
        if not d:
            raise EOFError
        b += d
    return b

def fam(a):
    return socket.AF_INET6 if ":" in a else socket.AF_INET

def udp(s):
    while True:
        d, peer = s.recvfrom(4096)
        s.sendto(b"ANSWER:" + d, peer)

def tcp(s):
    while True:
        c, _ = s.accept()
        try:
            c.settimeout(3)
            n = struct.unpack("!H", recvn(c, 2))[0]
            out = b"ANSWER:" + recvn(c, n)
            c.sendall(struct.pack("!H", len(out)) + out)
        except Exception:
            pass
        finally:
            c.close()

socks = []
for a in sys.argv[1:]:
    u = socket.socket(fam(a), socket.SOCK_DGRAM)
    u.bind((a, 53))
    t = socket.socket(fam(a), socket.SOCK_STREAM)
    t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    t.bind((a, 53))
    t.listen(64)
    socks += [(udp, u), (tcp, t)]
for f, s in socks:
    threading.Thread(target=f, args=(s,), daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
EOF

cat >"$TMP/client.py" <<'EOF'
# client.py udp|udpc|tcp ADDR [PORT]: one query; prints
#   "ok from=ADDR:PORT peer=ADDR:PORT"  (exit 0) or "timeout" / "error ..." (exit 1)
# With EP_EXEMPT="TOOL PIN" in the environment the socket is first exempted
# from the redirect by `TOOL exempt --pin PIN FD` (the agent's helper), the
# socket handed down as FD; a failed exemption is reported on stderr and the
# query goes ahead.
import os, socket, struct, subprocess, sys

kind, dst = sys.argv[1], sys.argv[2]
port = int(sys.argv[3]) if len(sys.argv) > 3 else 53
fam = socket.AF_INET6 if ":" in dst else socket.AF_INET
q = b"Q-%d" % os.getpid()

def exempt(s):
    if not os.environ.get("EP_EXEMPT"):
        return
    tool, pin = os.environ["EP_EXEMPT"].split()
    r = subprocess.run([tool, "exempt", "--pin", pin, str(s.fileno())], pass_fds=(s.fileno(),),
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if r.returncode:
        sys.stderr.write("exempt failed: %s\n" % r.stderr.decode().strip())

def fmt(a):
    return "-" if a is None else "%s:%d" % (a[0], a[1])

def recvn(c, n):
    b = b""
    while len(b) < n:
        d = c.recv(n - len(b))
        if not d:
            raise EOFError("short")
        b += d
    return b

try:
    peer = None
    if kind in ("udp", "udpc"):
        s = socket.socket(fam, socket.SOCK_DGRAM)
        exempt(s)
        s.settimeout(1.5)
        if kind == "udpc":
            s.connect((dst, port))
            peer = s.getpeername()
            s.send(q)
        else:
            s.sendto(q, (dst, port))
        d, frm = s.recvfrom(4096)
    else:
        s = socket.socket(fam, socket.SOCK_STREAM)
        exempt(s)
        s.settimeout(1.5)
        s.connect((dst, port))
        peer = s.getpeername()
        s.sendall(struct.pack("!H", len(q)) + q)
        d = recvn(s, struct.unpack("!H", recvn(s, 2))[0])
        frm = peer
    if d != b"ANSWER:" + q:
        print("error wrong answer %r" % d)
        sys.exit(1)
    print("ok from=%s peer=%s" % (fmt(frm), fmt(peer)))
except socket.timeout:
    print("timeout")
    sys.exit(1)
except OSError as e:
    print("error %s" % e)
    sys.exit(1)
EOF

# ns_setup SHORT: namespace with the cache addresses on lo, a responder on
# them, and the upstreams routed into a veth pair (no answer, ever: static
# neighbours with a MAC nobody has, so nothing waits for ARP / ND either).
ns_setup() {
  local ns pid
  ns=$(netns_add "$1") || return 1
  ip -n "$ns" addr add $CACHE4/32 dev lo
  ip -n "$ns" addr add $CACHE6/128 dev lo nodad
  ip -n "$ns" link add up0 type veth peer name up1 || return 1
  ip -n "$ns" link set up0 up
  ip -n "$ns" link set up1 up
  ip -n "$ns" addr add 10.77.0.1/16 dev up0
  ip -n "$ns" addr add 2001:db8:53::1/64 dev up0 nodad
  for a in $UP4 10.77.53.99 $UP6; do
    ip -n "$ns" neigh replace "$a" lladdr 02:00:00:00:77:77 dev up0 nud permanent
  done
  pid=$(netns_bg_log "$TMP/responder-$1.log" "$ns" "$PY3" "$TMP/responder.py" $CACHE4 $CACHE6)
  wait_for 5 grep -q ready "$TMP/responder-$1.log" || return 1
  echo "$ns"
}

NS=$(ns_setup a) || { not_ok "namespace with cache responder"; tap_done; exit 1; }
NS2=$(ns_setup b) || { not_ok "second namespace with cache responder"; tap_done; exit 1; }
ok "namespaces $NS and $NS2: cache responders on $CACHE4:53 and [$CACHE6]:53, upstreams unreachable"

# in_cg NS cmd...: runs cmd inside the test cgroup and NS. The cgroup is
# joined first: `ip netns exec` mounts a fresh /sys, which hides the cgroup
# mounts below it. It execs, so the command keeps the pid that joined.
in_cg() {
  local ns=$1; shift
  bash -c 'echo $$ > "$1/cgroup.procs" && shift && exec ip netns exec "$@"' _ "$CG" "$ns" "$@"
}
client() { "$PY3" "$TMP/client.py" "$@"; }
cg_client() { local ns=$1; shift; in_cg "$ns" "$PY3" "$TMP/client.py" "$@"; }
redirected() { "$TOOL" stats --pin "$PIN" "$1" | sed 's/.*redirected=\([0-9]*\).*/\1/'; }

# --- attach -------------------------------------------------------------------
check "the sock_dns programs attach to $CG only" "$TOOL" attach --cgroup "$CG" --pin "$PIN"
n=$(ls "$PIN/links" 2>/dev/null | wc -l)
if [ "$n" -eq 8 ]; then ok "8 programs attached (connect, sendmsg, recvmsg, getpeername x 4/6)"
else not_ok "8 programs attached (got $n)"; fi
COOKIE=$(ip netns exec "$NS" "$TOOL" cookie)
diag "netns cookie of $NS: $COOKIE"
"$TOOL" upstream --pin "$PIN" $UP4 0 &&
  "$TOOL" upstream --pin "$PIN" $UP6 1 &&
  "$TOOL" config --pin "$PIN" --mode upstream --cache4 $CACHE4 --cache6 $CACHE6 \
    --netns-cookie "$COOKIE"
check "upstreams and config written to the pinned maps" test $? -eq 0

# --- upstream mode: nothing redirected -----------------------------------------
out=$(cg_client "$NS" udp $UP4)
if [ "$out" = timeout ]; then ok "upstream mode: UDP query to $UP4 from the cgroup times out (not redirected)"
else not_ok "upstream mode: UDP query to $UP4 from the cgroup times out (got: $out)"; fi

# --- cache mode ------------------------------------------------------------------
"$TOOL" config --pin "$PIN" --mode cache
r0=$(redirected 0)
expect_ok() { # expect_ok DESC WANT_FROM WANT_PEER OUT
  local d=$1 from=$2 peer=$3 out=$4
  if [ "$out" = "ok from=$from peer=$peer" ]; then ok "$d"; else not_ok "$d (got: $out)"; fi
}
expect_ok "cache mode: unconnected UDP (sendto/recvfrom) to $UP4:53 answered, source reported as $UP4:53" \
  "$UP4:53" "-" "$(cg_client "$NS" udp $UP4)"
expect_ok "cache mode: connected UDP to $UP4:53 answered; recvfrom and getpeername report $UP4:53" \
  "$UP4:53" "$UP4:53" "$(cg_client "$NS" udpc $UP4)"
expect_ok "cache mode: TCP connect to $UP4:53 answered; getpeername reports $UP4:53" \
  "$UP4:53" "$UP4:53" "$(cg_client "$NS" tcp $UP4)"
r1=$(redirected 0)
if [ $((r1 - r0)) -eq 3 ]; then ok "ep_dns_stats[0].redirected counted the 3 redirected calls"
else not_ok "ep_dns_stats[0].redirected counted the 3 redirected calls ($r0 -> $r1)"; fi
expect_ok "cache mode: unconnected UDP to [$UP6]:53 answered, source reported as the upstream" \
  "$UP6:53" "-" "$(cg_client "$NS" udp $UP6)"
expect_ok "cache mode: connected UDP to [$UP6]:53; recvfrom and getpeername report the upstream" \
  "$UP6:53" "$UP6:53" "$(cg_client "$NS" udpc $UP6)"
expect_ok "cache mode: TCP to [$UP6]:53; getpeername reports the upstream" \
  "$UP6:53" "$UP6:53" "$(cg_client "$NS" tcp $UP6)"
expect_ok "cache mode: IPv4-mapped [::ffff:$UP4]:53 on an IPv6 socket goes to the IPv4 cache, reported as mapped upstream" \
  "::ffff:$UP4:53" "-" "$(cg_client "$NS" udp ::ffff:$UP4)"
expect_ok "cache mode: IPv4-mapped connected UDP; recvfrom and getpeername report ::ffff:$UP4" \
  "::ffff:$UP4:53" "::ffff:$UP4:53" "$(cg_client "$NS" udpc ::ffff:$UP4)"
expect_ok "cache mode: IPv4-mapped TCP; getpeername reports ::ffff:$UP4" \
  "::ffff:$UP4:53" "::ffff:$UP4:53" "$(cg_client "$NS" tcp ::ffff:$UP4)"

# --- never redirected -------------------------------------------------------------
out=$(cg_client "$NS" udp $UP4 5353)
if [ "$out" = timeout ]; then ok "cache mode: the upstream on port 5353 is not redirected"
else not_ok "cache mode: the upstream on port 5353 is not redirected (got: $out)"; fi
out=$(cg_client "$NS" udp 10.77.53.99)
if [ "$out" = timeout ]; then ok "cache mode: a non-upstream address on port 53 is not redirected"
else not_ok "cache mode: a non-upstream address on port 53 is not redirected (got: $out)"; fi
out=$(ip netns exec "$NS" "$PY3" "$TMP/client.py" udp $UP4)
if [ "$out" = timeout ]; then ok "cache mode: a process outside the cgroup is not redirected"
else not_ok "cache mode: a process outside the cgroup is not redirected (got: $out)"; fi
out=$(ip netns exec "$NS" "$PY3" "$TMP/client.py" tcp $UP4)
if [ "$out" = timeout ]; then ok "cache mode: TCP from outside the cgroup is not redirected"
else not_ok "cache mode: TCP from outside the cgroup is not redirected (got: $out)"; fi
out=$(cg_client "$NS2" udp $UP4)
if [ "$out" = timeout ]; then ok "cache mode: a process in the cgroup but in another network namespace is not redirected"
else not_ok "cache mode: a process in the cgroup but in another network namespace is not redirected (got: $out)"; fi
# The agent's own sockets: exempted one by one (ep_dns_exempt), whatever the
# process's pid, PID namespace or cgroup.
ex_client() { local ns=$1; shift; EP_EXEMPT="$TOOL $PIN" in_cg "$ns" "$PY3" "$TMP/client.py" "$@"; }
for kind in udp udpc tcp; do
  out=$(ex_client "$NS" $kind $UP4)
  if [ "$out" = timeout ]; then ok "cache mode: an exempted $kind socket in the cgroup reaches the real upstream (not redirected)"
  else not_ok "cache mode: an exempted $kind socket in the cgroup reaches the real upstream (got: $out)"; fi
done
out=$(ex_client "$NS" udp $UP6)
if [ "$out" = timeout ]; then ok "cache mode: an exempted IPv6 socket is not redirected"
else not_ok "cache mode: an exempted IPv6 socket is not redirected (got: $out)"; fi
# pid 1 of a PID namespace of its own, like the agent in its container: the
# pid the kernel reports is the host's, the one the process sees is 1.
pidns() { local ns=$1; shift; in_cg "$ns" unshare --pid --fork --mount-proc --kill-child "$@"; }
out=$(EP_EXEMPT="$TOOL $PIN" pidns "$NS" sh -c 'test $$ = 1 && exec "$@"' _ "$PY3" "$TMP/client.py" udpc $UP4)
if [ "$out" = timeout ]; then ok "cache mode: pid 1 of its own PID namespace, exempted socket: not redirected"
else not_ok "cache mode: pid 1 of its own PID namespace, exempted socket: not redirected (got: $out)"; fi
expect_ok "cache mode: pid 1 of its own PID namespace, socket not exempted: redirected" \
  "$UP4:53" "$UP4:53" "$(pidns "$NS" sh -c 'test $$ = 1 && exec "$@"' _ "$PY3" "$TMP/client.py" udpc $UP4)"
# The exemption is the socket's, not the process's: a second socket of the
# same process, not exempted, is redirected.
out=$(EP_EXEMPT="$TOOL $PIN" in_cg "$NS" "$PY3" -c '
import os, socket, subprocess, sys
tool, pin = os.environ["EP_EXEMPT"].split()
res = []
for ex in (True, False):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(1.5)
    if ex:
        subprocess.run([tool, "exempt", "--pin", pin, str(s.fileno())], pass_fds=(s.fileno(),), check=True)
    s.sendto(b"Q", (sys.argv[1], 53))
    try:
        s.recvfrom(512); res.append("answered")
    except socket.timeout:
        res.append("timeout")
print(" ".join(res))' $UP4)
if [ "$out" = "timeout answered" ]; then ok "cache mode: in one process, the exempted socket is not redirected, the other one is"
else not_ok "cache mode: in one process, the exempted socket is not redirected, the other one is (got: $out)"; fi
# Nobody but a process that may open the pinned map can exempt a socket. The
# tool is copied where user nobody can run it: a checkout under /root is not
# (the attempt must fail at the map, not at exec).
UTOOL_DIR=$(mktemp -d)
netns_on_cleanup "rm -rf $UTOOL_DIR"
chmod 755 "$UTOOL_DIR" && cp "$TOOL" "$UTOOL_DIR/" && chmod 755 "$UTOOL_DIR/$(basename "$TOOL")"
out=$(EP_EXEMPT="$UTOOL_DIR/$(basename "$TOOL") $PIN" in_cg "$NS" setpriv --reuid 65534 --regid 65534 --clear-groups \
  "$PY3" - udpc $UP4 <"$TMP/client.py" 2>"$TMP/unpriv.err")
diag "unprivileged exemption attempt: $(head -c 200 "$TMP/unpriv.err")"
if [ "$out" = "ok from=$UP4:53 peer=$UP4:53" ] && grep -q "exempt failed" "$TMP/unpriv.err"; then
  ok "cache mode: an unprivileged process cannot exempt its socket (still redirected)"
else not_ok "cache mode: an unprivileged process cannot exempt its socket (got: $out)"; fi
expect_ok "cache mode: other processes in the cgroup are still redirected after that" \
  "$UP4:53" "$UP4:53" "$(cg_client "$NS" udpc $UP4)"

# --- failback ----------------------------------------------------------------------
"$TOOL" config --pin "$PIN" --mode upstream
out=$(cg_client "$NS" tcp $UP4)
if [ "$out" = timeout ]; then ok "after failback (mode upstream): TCP to $UP4 is no longer redirected"
else not_ok "after failback (mode upstream): TCP to $UP4 is no longer redirected (got: $out)"; fi

tap_done
