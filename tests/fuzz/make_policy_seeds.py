#!/usr/bin/python3
"""Writes the seed queries for fuzz_dns_policy into tests/fuzz/corpus/dns_policy/.

Run with Debian's python3 (scapy): /usr/bin/python3 tests/fuzz/make_policy_seeds.py
The seeds are committed; rerun only to change them.
"""
import os
import sys

from scapy.layers.dns import DNS, DNSQR, DNSRROPT

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "dns_policy")
os.makedirs(out, exist_ok=True)

seeds = {
    "in_set_aaaa": DNS(id=0x1111, rd=1, qd=DNSQR(qname="api.pay.example", qtype="AAAA")),
    "in_set_mixed_case": DNS(id=0x2222, rd=1, qd=DNSQR(qname="A.B.C.Edge.Test", qtype="MX")),
    "out_of_set_a": DNS(id=0x3333, rd=1, qd=DNSQR(qname="other.example", qtype="A")),
    "edns": DNS(id=0x4444, rd=1, qd=DNSQR(qname="edge.test", qtype="AAAA"),
                ar=DNSRROPT(rclass=4096)),
    "chaos_class": DNS(id=0x5555, qd=DNSQR(qname="api.pay.example", qtype="TXT", qclass="CH")),
    "response": DNS(id=0x6666, qr=1, qd=DNSQR(qname="api.pay.example")),
    "two_questions": DNS(id=0x7777, qdcount=2,
                         qd=DNSQR(qname="x", qtype="A") / DNSQR(qname="edge.test", qtype="A")),
    "notify_opcode": DNS(id=0x8888, opcode=4, qd=DNSQR(qname="edge.test", qtype="SOA")),
    "root": DNS(id=0x9999, qd=DNSQR(qname=".", qtype="NS")),
}
for name, pkt in seeds.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(bytes(pkt))
with open(os.path.join(out, "runt"), "wb") as f:
    f.write(b"\x12\x34\x01\x00\x00\x01")
with open(os.path.join(out, "truncated_question"), "wb") as f:
    f.write(bytes(seeds["out_of_set_a"])[:20])
print(f"wrote {len(seeds) + 2} seeds to {out}", file=sys.stderr)
