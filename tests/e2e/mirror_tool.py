#!/usr/bin/env python3
"""Traffic for the mirroring e2e test (tests/e2e/mirror.sh), and its collector.

  collect raw IFACE OUT      count what arrives on IFACE (AF_PACKET)
  collect vxlan PORT VNI OUT count what arrives as VXLAN on UDP PORT (vxlan6:
                             over IPv6)
      Both run until SIGTERM, then write OUT (JSON): per flow "cport" (the
      client's port, the flow's identity) and direction ("fwd" client ->
      backend, "rev" backend -> client): packets, L4 payload bytes, TCP flags
      seen, the addresses; plus total frames and frame bytes, and for VXLAN
      the frames with another VNI or a bad header. A ready file OUT.ready
      appears once the socket is open.
  tcp CLIENT VIP PORT FIRST N LINES   N connections from ports FIRST.., each
      sending LINES request lines and checking every echo; JSON summary
  udp CLIENT VIP PORT FIRST N COUNT   N flows from ports FIRST.., COUNT
      request/reply exchanges each, every reply checked; JSON summary
  flood CLIENT VIP PORT SECONDS SIZE  UDP datagrams as fast as possible from
      one port; JSON {sent, seconds}
"""
import json
import os
import signal
import socket
import struct
import sys
import time

stop = False


def on_term(*_):
    global stop
    stop = True


def parse_frame(fr, cl, res):
    """Ethernet frame -> (src, dst, sport, dport, proto, flags, payload_len) or None."""
    if len(fr) < 14:
        return None
    et = struct.unpack("!H", fr[12:14])[0]
    if et == 0x0800 and len(fr) >= 34:
        ihl = (fr[14] & 15) * 4
        tot = struct.unpack("!H", fr[16:18])[0]
        proto = fr[23]
        src, dst = socket.inet_ntop(socket.AF_INET, fr[26:30]), socket.inet_ntop(socket.AF_INET, fr[30:34])
        l4, end = 14 + ihl, 14 + tot
    elif et == 0x86DD and len(fr) >= 54:
        plen = struct.unpack("!H", fr[18:20])[0]
        proto = fr[20]
        src, dst = socket.inet_ntop(socket.AF_INET6, fr[22:38]), socket.inet_ntop(socket.AF_INET6, fr[38:54])
        l4, end = 54, 54 + plen
    else:
        return None
    if proto == 6 and len(fr) >= l4 + 20:
        sp, dp = struct.unpack("!HH", fr[l4:l4 + 4])
        doff = (fr[l4 + 12] >> 4) * 4
        return src, dst, sp, dp, "tcp", fr[l4 + 13], end - l4 - doff
    if proto == 17 and len(fr) >= l4 + 8:
        sp, dp = struct.unpack("!HH", fr[l4:l4 + 4])
        return src, dst, sp, dp, "udp", 0, end - l4 - 8
    return None


def account(flows, p, client, flen):
    src, dst, sp, dp, proto, flags, plen = p
    if src in client:
        key, d, peer = sp, "fwd", dst
    elif dst in client:
        key, d, peer = dp, "rev", src
    else:
        return False
    f = flows.setdefault(str(key), {})
    e = f.setdefault(d, {"packets": 0, "bytes": 0, "payload": 0, "flags": 0, "peer": peer, "proto": proto})
    e["packets"] += 1
    e["bytes"] += flen
    e["payload"] += plen
    e["flags"] |= flags
    return True


def collect(argv):
    mode = argv[0]
    signal.signal(signal.SIGTERM, on_term)
    client = set(os.environ.get("MIRROR_CLIENT", "10.77.1.2,fd77:1::2").split(","))
    res = {"frames": 0, "bytes": 0, "other": 0, "bad_vxlan": 0, "flows": {}}
    if mode == "raw":
        iface, out = argv[1], argv[2]
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 20)
        s.bind((iface, 0))
        vni = None
    else:
        port, vni, out = int(argv[1]), int(argv[2]), argv[3]
        if mode == "vxlan6":
            s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        else:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 20)
        s.bind(("::" if mode == "vxlan6" else "0.0.0.0", port))
    s.settimeout(0.2)
    open(out + ".ready", "w").close()
    while not stop:
        try:
            if mode == "raw":
                fr, addr = s.recvfrom(262144)
                if addr[2] == socket.PACKET_OUTGOING:
                    continue
            else:
                d = s.recv(262144)
                if len(d) < 8 or d[0] != 0x08 or struct.unpack("!I", d[4:8])[0] >> 8 != vni:
                    res["bad_vxlan"] += 1
                    continue
                fr = d[8:]
        except socket.timeout:
            continue
        except InterruptedError:
            continue
        res["frames"] += 1
        res["bytes"] += len(fr)
        p = parse_frame(fr, client, res)
        if not p or not account(res["flows"], p, client, len(fr)):
            res["other"] += 1
    with open(out + ".tmp", "w") as f:
        json.dump(res, f)
    os.rename(out + ".tmp", out)


def fam(a):
    return socket.AF_INET6 if ":" in a else socket.AF_INET


def tcp(argv):
    client, vip, port, first, n, lines = argv[0], argv[1], int(argv[2]), int(argv[3]), int(argv[4]), int(argv[5])
    ok, sent, got = 0, {}, {}
    for i in range(n):
        cp = first + i
        s = socket.socket(fam(vip), socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.settimeout(5)
        try:
            s.bind((client, cp))
            s.connect((vip, port))
            req = b"".join(b"flow %d line %d %s\n" % (cp, k, b"x" * (50 * k)) for k in range(lines))
            s.sendall(req)
            buf = b""
            while buf.count(b"\n") < lines:
                d = s.recv(65536)
                if not d:
                    break
                buf += d
            want = req.split(b"\n")[:-1]
            rep = buf.split(b"\n")[:-1]
            good = len(rep) == lines and all(r.split(b" ", 1)[1] == w for r, w in zip(rep, want))
            s.shutdown(socket.SHUT_WR)
            while s.recv(65536):
                pass
            ok += good
            sent[str(cp)], got[str(cp)] = len(req), len(buf)
        except OSError as e:
            print("# port %d: %s" % (cp, e), file=sys.stderr)
        finally:
            s.close()
    print(json.dumps({"ok": ok, "n": n, "sent": sent, "got": got}))


def udp(argv):
    client, vip, port, first, n, count = argv[0], argv[1], int(argv[2]), int(argv[3]), int(argv[4]), int(argv[5])
    ok, got = 0, {}
    for i in range(n):
        cp = first + i
        s = socket.socket(fam(vip), socket.SOCK_DGRAM)
        s.settimeout(2)
        s.bind((client, cp))
        good = 0
        for k in range(count):
            msg = b"flow %d dgram %d" % (cp, k)
            s.sendto(msg, (vip, port))
            try:
                d = s.recv(65536)
                good += d.split(b" ", 1)[1] == msg
            except OSError:
                pass
        s.close()
        ok += good == count
        got[str(cp)] = good
    print(json.dumps({"ok": ok, "n": n, "answered": got}))


def flood(argv):
    client, vip, port, secs, size = argv[0], argv[1], int(argv[2]), float(argv[3]), int(argv[4])
    s = socket.socket(fam(vip), socket.SOCK_DGRAM)
    s.bind((client, int(os.environ.get("FLOOD_PORT", "0"))))
    s.setblocking(False)
    msg = b"f" * size
    sent, t0 = 0, time.monotonic()
    while time.monotonic() - t0 < secs:
        for _ in range(64):
            try:
                s.sendto(msg, (vip, port))
                sent += 1
            except BlockingIOError:
                time.sleep(0.0005)
            except OSError:
                pass
    print(json.dumps({"sent": sent, "seconds": time.monotonic() - t0}))


if __name__ == "__main__":
    {"collect": collect, "tcp": tcp, "udp": udp, "flood": flood}[sys.argv[1]](sys.argv[2:])
