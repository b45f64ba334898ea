#!/usr/bin/python3
"""Writes a spoofed flood to a VIP as a pcap for tcpreplay (Debian's /usr/bin/python3).

    flood_pcap.py OUT.pcap {syn|ack|udp} COUNT SOURCES DST_MAC VIP PORT [SEED]

COUNT packets from SOURCES random addresses in 198.18.0.0/15 (RFC 2544
benchmarking space: routed nowhere, so backends' answers die at the node),
random source ports, to VIP:PORT; TCP SYNs with random ISNs, TCP ACKs
with random sequence and acknowledgement numbers (packets of connections
that do not exist), or 16-byte UDP datagrams. The first packet is built with scapy and checked against the
hand-made one; the rest are patched from a template (scapy builds a few
thousand packets a second, the flood needs hundreds of thousands), with
real checksums so backends accept them. Prints a JSON summary.
"""
import json
import random
import struct
import sys

from scapy.all import IP, TCP, UDP, Ether, raw


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def frame(kind, src, sport, dst, dport, seq, dmac):
    eth = dmac + b"\x02\x00\x00\x00\x00\x01" + b"\x08\x00"
    if kind in ("syn", "ack"):
        syn = kind == "syn"
        l4 = struct.pack("!HHIIBBHHH", sport, dport, seq, 0 if syn else seq ^ 0x5A5A5A5A, 5 << 4,
                         0x02 if syn else 0x10, 65535, 0, 0)
        proto = 6
    else:
        payload = b"flood %08x\n" % seq
        payload = payload[:16].ljust(16, b"\0")
        l4 = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
        proto = 17
    pseudo = src + dst + struct.pack("!BBH", 0, proto, len(l4))
    c = csum(pseudo + l4)
    if proto == 17 and c == 0:
        c = 0xFFFF
    off = 16 if proto == 6 else 6
    l4 = l4[:off] + struct.pack("!H", c) + l4[off + 2:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 0, 0, 64, proto, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    return eth + ip + l4


def main():
    out, kind, count, nsrc, dmac_s, vip, port = sys.argv[1:8]
    seed = int(sys.argv[8]) if len(sys.argv) > 8 else 1
    count, nsrc, port = int(count), int(nsrc), int(port)
    rnd = random.Random(seed)
    dmac = bytes(int(x, 16) for x in dmac_s.split(":"))
    dst = bytes(int(x) for x in vip.split("."))
    srcs = [struct.pack("!I", (198 << 24 | 18 << 16) + rnd.randrange(1, 1 << 17)) for _ in range(nsrc)]
    # Cross-check the hand-made frame against scapy's.
    f0 = frame(kind, srcs[0], 40000, dst, port, 12345, dmac)
    if kind == "syn":
        l4 = TCP(sport=40000, dport=port, seq=12345, flags="S", window=65535)
    elif kind == "ack":
        l4 = TCP(sport=40000, dport=port, seq=12345, ack=12345 ^ 0x5A5A5A5A, flags="A", window=65535)
    else:
        l4 = UDP(sport=40000, dport=port) / (b"flood %08x\n" % 12345)[:16].ljust(16, b"\0")
    ref = raw(Ether(dst=dmac_s, src="02:00:00:00:00:01") /
              IP(src=".".join(str(b) for b in srcs[0]), dst=vip, ttl=64, id=0) / l4)
    if ref != f0:
        sys.exit("flood_pcap: the hand-made frame differs from scapy's")
    with open(out, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i in range(count):
            b = frame(kind, srcs[i % nsrc], rnd.randrange(1024, 65536), dst, port,
                      rnd.getrandbits(32), dmac)
            f.write(struct.pack("<IIII", i // 1000000, i % 1000000, len(b), len(b)))
            f.write(b)
    print(json.dumps({"kind": kind, "packets": count, "sources": nsrc}))


main()
