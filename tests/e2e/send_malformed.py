#!/usr/bin/python3
"""Sends malformed packets at a VIP from the lab client (run inside its netns).

Usage: send_malformed.py IFACE DST_MAC VIP4 VIP6 PORT COUNT
Prints a JSON object: {reason: packets_sent} using the datapath's drop reasons,
so the test can compare with edgeplane_lb_drops_total deltas.
"""
import json
import sys

from scapy.all import (IP, TCP, UDP, Ether, IPOption_NOP, IPv6, IPv6ExtHdrFragment,
                       IPv6ExtHdrHopByHop, IPv6ExtHdrRouting, Raw, conf, sendp)

conf.verb = 0


def main():
    iface, mac, vip4, vip6, port, count = sys.argv[1:7]
    port, count = int(port), int(count)
    eth = Ether(dst=mac)
    src4, src6 = "10.77.1.2", "fd77:1::2"
    cases = {
        # L4 header cut short: 10 bytes where TCP needs 20 (IP length honest).
        "truncated": [
            eth / IP(src=src4, dst=vip4, proto=6) / Raw(b"\x00" * 10),
            # IP total length claims more than the frame carries.
            eth / IP(src=src4, dst=vip4, len=400) / TCP(sport=40000, dport=port, flags="S"),
            eth / IPv6(src=src6, dst=vip6, nh=17) / Raw(b"\x00" * 4),
        ],
        "malformed": [
            eth / IP(src=src4, dst=vip4, ihl=4) / TCP(sport=40001, dport=port, flags="S"),
            eth / IP(src=src4, dst=vip4) / TCP(sport=40002, dport=port, flags="S", dataofs=4),
            eth / IP(src=src4, dst=vip4) / UDP(sport=40003, dport=port, len=4) / Raw(b"abcd"),
        ],
        "ip_options": [
            eth / IP(src=src4, dst=vip4, options=[IPOption_NOP()] * 4)
            / TCP(sport=40004, dport=port, flags="S"),
        ],
        "fragment": [
            eth / IP(src=src4, dst=vip4, flags="MF", frag=0) / TCP(sport=40005, dport=port, flags="S"),
            eth / IP(src=src4, dst=vip4, proto=6, frag=100) / Raw(b"\x00" * 64),
            eth / IPv6(src=src6, dst=vip6) / IPv6ExtHdrFragment(m=1, offset=0)
            / TCP(sport=40006, dport=port, flags="S"),
        ],
        "ipv6_exthdr": [
            eth / IPv6(src=src6, dst=vip6) / IPv6ExtHdrHopByHop() / TCP(sport=40007, dport=port, flags="S"),
            eth / IPv6(src=src6, dst=vip6) / IPv6ExtHdrRouting(addresses=[src6])
            / TCP(sport=40008, dport=port, flags="S"),
        ],
    }
    sent = {}
    for reason, pkts in cases.items():
        frames = [p for p in pkts for _ in range(count)]
        sendp(frames, iface=iface)
        sent[reason] = len(frames)
    print(json.dumps(sent))


if __name__ == "__main__":
    main()
