#!/usr/bin/python3
"""DNS queries that die on the node, for the TTL-1 drill (Debian's /usr/bin/python3).

    ttl1_flood.py SERVER SECONDS RATE NAMES_FILE

Sends A queries for names from NAMES_FILE (first column) to SERVER:53 with IP
TTL 1, as any unprivileged process in a pod can (setsockopt IP_TTL): the node
forwarding them drops them (time exceeded), so the upstream never sees one.
A fresh source port every 50 queries, random ids. Prints how many it sent.
"""
import random
import socket
import struct
import sys

from pacing import paced


def query(qid, name):
    hdr = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    q = b"".join(bytes([len(l)]) + l.encode() for l in name.rstrip(".").split(".")) + b"\0"
    return hdr + q + struct.pack("!HH", 1, 1)


def main():
    server, seconds, rate, names_file = sys.argv[1:5]
    seconds, rate = float(seconds), float(rate)
    names = [l.split()[0] for l in open(names_file) if l.strip()]

    def burst():
        sent = 0
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 1)
            s.setblocking(False)
            for _ in range(50):
                try:
                    s.sendto(query(random.randrange(65536), random.choice(names)), (server, 53))
                    sent += 1
                except OSError:
                    pass  # ICMP time exceeded reported on the socket
        return sent

    print(paced(seconds, rate, 50, burst))


if __name__ == "__main__":
    main()
