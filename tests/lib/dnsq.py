#!/usr/bin/python3
"""A small DNS client for the tests (stdlib only, Debian's /usr/bin/python3).

SERVER is ADDR or ADDR#PORT (port 53 by default).
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


class Query:
    """One question in flight: what it asks, its retry deadline, its tries."""
    __slots__ = ("name", "t", "deadline", "tries", "tag")

    def __init__(self, name, t, deadline, tag):
        self.name, self.t, self.deadline, self.tries, self.tag = name, t, deadline, 0, tag


class Stub:
    """The part every mode shares, as a stub resolver does it: a random id
    per question on one socket, a resend after `timeout`, giving up after
    `retries` resends."""

    def __init__(self, server, port, timeout=1.0, retries=2):
        self.s, self.addr = sock_for(server), (server, port)
        self.timeout, self.retries = timeout, retries
        self.pending = {}

    def send(self, name, t, tag, now):
        qid = random.randrange(65536)
        while qid in self.pending:
            qid = random.randrange(65536)
        self.pending[qid] = Query(name, t, now + self.timeout, tag)
        self.s.sendto(encode(qid, name, TYPES[t]), self.addr)

    def resend_due(self, now, gave_up):
        """Resends what timed out; calls gave_up(query) for what ran out of tries."""
        for qid, q in list(self.pending.items()):
            if q.deadline > now:
                continue
            if q.tries >= self.retries:
                del self.pending[qid]
                gave_up(q)
                continue
            q.tries += 1
            q.deadline = now + self.timeout
            self.s.sendto(encode(qid, q.name, TYPES[q.t]), self.addr)

    def replies(self, wait):
        """(raw message, source) of what arrives within `wait` seconds."""
        r, _, _ = select.select([self.s], [], [], wait)
        while r:
            try:
                buf, src = self.s.recvfrom(4096)
            except BlockingIOError:
                return
            yield buf, src

    def full_answer(self, qid, q, buf):
        """The answer, over TCP when the UDP one was truncated."""
        if truncated(buf):
            return tcp_query(self.addr[0], self.addr[1], qid, q.name, TYPES[q.t])
        return buf


def batch(server, port, queries, timeout=1.0, retries=2, window=64):
    """Like a stub resolver: every query gets `retries` more tries after a
    timeout; "timeout" in the result means all of them went unanswered."""
    st = Stub(server, port, timeout, retries)
    results, next_i = {}, 0

    def gave_up(q):
        results[q.tag] = {"rcode": None, "ttl": None, "addrs": [], "soa": False, "timeout": True}

    while next_i < len(queries) or st.pending:
        while next_i < len(queries) and len(st.pending) < window:
            name, t = queries[next_i]
            st.send(name, t, next_i, time.monotonic())
            next_i += 1
        for buf, _src in st.replies(0.05):
            qid = decode(buf)[0]
            q = st.pending.pop(qid, None)
            if q:
                _qid, rcode, addrs, ttl, soa = decode(st.full_answer(qid, q, buf))
                results[q.tag] = {"rcode": rcode, "ttl": ttl, "addrs": addrs, "soa": soa, "timeout": False}
        st.resend_due(time.monotonic(), gave_up)
    for i, (name, t) in enumerate(queries):
        r = results[i]
        r.update({"name": name, "type": t})
        print(json.dumps(r))


def loop(server, port, queries, seconds, rate):
    st = Stub(server, port)
    sent = answered = wrong = 0
    rcodes, first = {}, {}
    start = time.monotonic()
    i = 0
    next_send = start
    while time.monotonic() < start + seconds or st.pending:
        now = time.monotonic()
        if now < start + seconds and now >= next_send:
            name, t = queries[i % len(queries)]
            i += 1
            st.send(name, t, None, now)
            sent += 1
            next_send += 1.0 / rate
        st.resend_due(now, lambda q: None)
        for buf, _src in st.replies(0.002):
            qid = decode(buf)[0]
            q = st.pending.pop(qid, None)
            if not q:
                continue
            _qid, rcode, addrs, _ttl, _soa = decode(st.full_answer(qid, q, buf))
            answered += 1
            rcodes[rcode] = rcodes.get(rcode, 0) + 1
            key = (q.name, q.t)
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
    st = Stub(server, port)
    total = correct = wrong = failed = 0
    wrong_at, failed_at, rcodes = [], [], {}
    start = time.monotonic()
    wall0 = time.time()
    i = 0
    next_send = start

    def gave_up(q):
        nonlocal failed
        failed += 1
        failed_at.append(wall0 + (time.monotonic() - start))

    while time.monotonic() < start + seconds or st.pending:
        now = time.monotonic()
        if now < start + seconds and now >= next_send:
            name, t, _want = qs[i % len(qs)]
            st.send(name, t, i % len(qs), now)
            i += 1
            total += 1
            next_send += 1.0 / rate
        st.resend_due(now, gave_up)
        for buf, src in st.replies(0.002):
            try:
                qid, rcode, addrs, _ttl, _soa = decode(buf)
            except Exception:
                continue
            q = st.pending.get(qid)
            if not q or src[0] != server:
                continue  # a stub ignores answers it did not ask for
            t_ans = wall0 + (time.monotonic() - start)
            if rcode in ("SERVFAIL", "REFUSED"):
                # a stub tries again (next server / retry) on these
                rcodes[rcode] = rcodes.get(rcode, 0) + 1
                continue
            del st.pending[qid]
            rcodes[rcode] = rcodes.get(rcode, 0) + 1
            if rcode == "NOERROR" and addrs == qs[q.tag][2]:
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
    if "#" in server:  # ADDR#PORT, as dnsmasq writes it: another port than 53
        server, port = server.split("#")[0], int(server.split("#")[1])
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
