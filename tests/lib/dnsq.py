#!/usr/bin/python3
"""A small DNS client for the tests (stdlib only, Debian's /usr/bin/python3).

batch:  dnsq.py SERVER batch  < "NAME TYPE" lines
        prints one JSON object per query:
        {"name", "type", "rcode", "ttl" (min answer TTL or null), "addrs": [...],
         "soa": bool (SOA in authority), "timeout": bool}
stub:   dnsq.py SERVER stub SECONDS RATE OUT.json < "NAME TYPE ADDR..." lines
        a stub resolver loop (1 s timeout, 2 retries, like glibc/musl): every
        query is graded against its expected addresses (answer must be
        NOERROR with exactly those addresses for the type); writes a JSON
        report with totals and the wall-clock time of every wrong answer
        and every failure, so a drill can relate them to its own events.
loop:   dnsq.py SERVER loop SECONDS RATE < "NAME TYPE" lines
        sends queries round-robin at RATE/s for SECONDS, each with its own
        1 s timeout and up to 2 retries (as a stub resolver does); prints
        {"sent", "answered", "rcodes": {...}, "unanswered", "wrong": N}
        where wrong counts answers whose addresses differ from the first
        answer seen for that name (a swap must not serve garbage).
"""
import json
import random
import select
import socket
import struct
import sys
import time

TYPES = {"A": 1, "AAAA": 28, "MX": 15, "TXT": 16, "SOA": 6, "PTR": 12, "ANY": 255}
RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}


def encode(qid, name, qtype):
    hdr = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    q = b"".join(bytes([len(l)]) + l.encode() for l in name.rstrip(".").split(".")) + b"\0"
    return hdr + q + struct.pack("!HH", qtype, 1)


def skip_name(buf, off):
    while True:
        l = buf[off]
        if l == 0:
            return off + 1
        if l & 0xC0 == 0xC0:
            return off + 2
        off += 1 + l


def decode(buf):
    qid, flags, qd, an, ns, ar = struct.unpack("!HHHHHH", buf[:12])
    off = 12
    for _ in range(qd):
        off = skip_name(buf, off) + 4
    addrs, ttls, soa = [], [], False
    for section, count in (("an", an), ("ns", ns)):
        for _ in range(count):
            off = skip_name(buf, off)
            rtype, _cls, ttl, rdlen = struct.unpack("!HHIH", buf[off:off + 10])
            off += 10
            rdata = buf[off:off + rdlen]
            off += rdlen
            if section == "an" and rtype == 1:
                addrs.append(socket.inet_ntop(socket.AF_INET, rdata))
                ttls.append(ttl)
            elif section == "an" and rtype == 28:
                addrs.append(socket.inet_ntop(socket.AF_INET6, rdata))
                ttls.append(ttl)
            elif section == "ns" and rtype == 6:
                soa = True
    return qid, RCODES.get(flags & 0xF, str(flags & 0xF)), sorted(addrs), (min(ttls) if ttls else None), soa


def tcp_query(server, port, qid, name, qtype, timeout=2.0):
    """The same query over TCP (RFC 7766 framing), for truncated UDP answers."""
    fam = socket.AF_INET6 if ":" in server else socket.AF_INET
    with socket.socket(fam, socket.SOCK_STREAM) as t:
        t.settimeout(timeout)
        t.connect((server, port))
        q = encode(qid, name, qtype)
        t.sendall(struct.pack("!H", len(q)) + q)
        hdr = b""
        while len(hdr) < 2:
            hdr += t.recv(2 - len(hdr))
        n, buf = struct.unpack("!H", hdr)[0], b""
        while len(buf) < n:
            chunk = t.recv(n - len(buf))
            if not chunk:
                break
            buf += chunk
        return buf


def truncated(buf):
    return len(buf) > 3 and bool(buf[2] & 0x02)


def sock_for(server):
    fam = socket.AF_INET6 if ":" in server else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.setblocking(False)
    return s


def read_queries():
    out = []
    for line in sys.stdin:
        parts = line.split()
        if len(parts) >= 2:
            out.append((parts[0], parts[1].upper()))
    return out


def batch(server, port, queries, timeout=1.0, retries=2, window=64):
    """Like a stub resolver: every query gets `retries` more tries after a
    timeout; "timeout" in the result means all of them went unanswered."""
    s = sock_for(server)
    pending, results, next_i = {}, {}, 0
    while next_i < len(queries) or pending:
        while next_i < len(queries) and len(pending) < window:
            qid = random.randrange(65536)
            while qid in pending:
                qid = random.randrange(65536)
            name, t = queries[next_i]
            s.sendto(encode(qid, name, TYPES[t]), (server, port))
            pending[qid] = [next_i, time.monotonic() + timeout, 0]
            next_i += 1
        r, _, _ = select.select([s], [], [], 0.05)
        if r:
            while True:
                try:
                    buf, _ = s.recvfrom(4096)
                except BlockingIOError:
                    break
                qid, rcode, addrs, ttl, soa = decode(buf)
                if qid in pending:
                    i = pending.pop(qid)[0]
                    if truncated(buf):
                        name, t = queries[i]
                        qid, rcode, addrs, ttl, soa = decode(tcp_query(server, port, qid, name, TYPES[t]))
                    results[i] = {"rcode": rcode, "ttl": ttl, "addrs": addrs, "soa": soa, "timeout": False}
        now = time.monotonic()
        for qid, p in list(pending.items()):
            if p[1] >= now:
                continue
            if p[2] >= retries:
                results[p[0]] = {"rcode": None, "ttl": None, "addrs": [], "soa": False, "timeout": True}
                del pending[qid]
                continue
            p[2] += 1
            p[1] = now + timeout
            name, t = queries[p[0]]
            s.sendto(encode(qid, name, TYPES[t]), (server, port))
    for i, (name, t) in enumerate(queries):
        r = results[i]
        r.update({"name": name, "type": t})
        print(json.dumps(r))


def loop(server, port, queries, seconds, rate):
    s = sock_for(server)
    sent = answered = wrong = 0
    rcodes, first, pending = {}, {}, {}
    start = time.monotonic()
    i = 0
    interval = 1.0 / rate
    next_send = start
    while time.monotonic() < start + seconds or pending:
        now = time.monotonic()
        if now < start + seconds and now >= next_send:
            name, t = queries[i % len(queries)]
            i += 1
            qid = random.randrange(65536)
            while qid in pending:
                qid = random.randrange(65536)
            pending[qid] = [name, t, now + 1.0, 0]
            s.sendto(encode(qid, name, TYPES[t]), (server, port))
            sent += 1
            next_send += interval
        # stub resolver behaviour: resend after 1 s, give up after 2 retries
        for qid, p in list(pending.items()):
            if p[2] < now:
                if p[3] >= 2:
                    del pending[qid]
                    continue
                p[3] += 1
                p[2] = now + 1.0
                s.sendto(encode(qid, p[0], TYPES[p[1]]), (server, port))
        r, _, _ = select.select([s], [], [], 0.002)
        if not r:
            continue
        while True:
            try:
                buf, _ = s.recvfrom(4096)
            except BlockingIOError:
                break
            qid, rcode, addrs, _ttl, _soa = decode(buf)
            p = pending.pop(qid, None)
            if not p:
                continue
            if truncated(buf):
                qid, rcode, addrs, _ttl, _soa = decode(tcp_query(server, port, qid, p[0], TYPES[p[1]]))
            answered += 1
            rcodes[rcode] = rcodes.get(rcode, 0) + 1
            key = (p[0], p[1])
            if key not in first:
                first[key] = addrs
            elif first[key] != addrs:
                wrong += 1
    print(json.dumps({"sent": sent, "answered": answered, "unanswered": sent - answered,
                      "rcodes": rcodes, "wrong": wrong}))


def stub(server, port, lines, seconds, rate, out_path):
    qs = []
    for parts in lines:
        name, t = parts[0], parts[1].upper()
        want = sorted(a for a in parts[2:] if (":" in a) == (t == "AAAA"))
        qs.append((name, t, want))
    s = sock_for(server)
    total = correct = wrong = failed = 0
    wrong_at, failed_at, rcodes = [], [], {}
    pending = {}  # qid -> [qi, deadline, tries, first_sent]
    start = time.monotonic()
    wall0 = time.time()
    i = 0
    next_send = start
    while time.monotonic() < start + seconds or pending:
        now = time.monotonic()
        if now < start + seconds and now >= next_send:
            qid = random.randrange(65536)
            while qid in pending:
                qid = random.randrange(65536)
            qi = i % len(qs)
            i += 1
            name, t, _ = qs[qi]
            pending[qid] = [qi, now + 1.0, 0, now]
            s.sendto(encode(qid, name, TYPES[t]), (server, port))
            total += 1
            next_send += 1.0 / rate
        for qid, p in list(pending.items()):
            if p[1] > now:
                continue
            if p[2] >= 2:
                del pending[qid]
                failed += 1
                failed_at.append(wall0 + (now - start))
                continue
            p[2] += 1
            p[1] = now + 1.0
            name, t, _ = qs[p[0]]
            s.sendto(encode(qid, name, TYPES[t]), (server, port))
        r, _, _ = select.select([s], [], [], 0.002)
        if not r:
            continue
        while True:
            try:
                buf, src = s.recvfrom(4096)
            except BlockingIOError:
                break
            try:
                qid, rcode, addrs, _ttl, _soa = decode(buf)
            except Exception:
                continue
            p = pending.get(qid)
            if not p or src[0] != server:
                continue  # a stub ignores answers it did not ask for
            t_ans = wall0 + (time.monotonic() - start)
            if rcode in ("SERVFAIL", "REFUSED"):
                # a stub tries again (next server / retry) on these
                rcodes[rcode] = rcodes.get(rcode, 0) + 1
                continue
            del pending[qid]
            rcodes[rcode] = rcodes.get(rcode, 0) + 1
            want = qs[p[0]][2]
            if rcode == "NOERROR" and addrs == want:
                correct += 1
            else:
                wrong += 1
                wrong_at.append(t_ans)
    report = {"server": server, "seconds": seconds, "rate": rate, "sent": total,
              "correct": correct, "wrong": wrong, "failed": failed,
              "correct_share": correct / total if total else 0.0, "rcodes": rcodes,
              "started_at": wall0, "wrong_at": wrong_at, "failed_at": failed_at}
    with open(out_path, "w") as f:
        json.dump(report, f)
    print(json.dumps({k: v for k, v in report.items() if not k.endswith("_at")}))


def main():
    server, mode = sys.argv[1], sys.argv[2]
    port = 53
    queries = [] if mode == "stub" else read_queries()
    if mode == "stub":
        lines = [l.split() for l in sys.stdin if len(l.split()) >= 3]
        stub(server, port, lines, float(sys.argv[3]), float(sys.argv[4]), sys.argv[5])
        return
    if mode == "batch":
        batch(server, port, queries)
    elif mode == "loop":
        loop(server, port, queries, float(sys.argv[3]), float(sys.argv[4]))
    else:
        sys.exit("usage: dnsq.py SERVER batch|loop [SECONDS RATE] < queries")


if __name__ == "__main__":
    main()
