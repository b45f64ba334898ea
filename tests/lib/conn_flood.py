#!/usr/bin/env python3
"""Holds idle TCP connections to one server, as an attacker would.

  conn_flood.py HOST PORT STATE_FILE HOLD_S COUNT_PER_SOURCE SOURCE...

Opens COUNT_PER_SOURCE connections from each SOURCE address (bound before
connect), sends nothing, and for HOLD_S seconds reopens once a second the
ones the server closed (refused at accept or timed out), like a client that
wants to keep its slots. After each round it writes STATE_FILE (JSON,
replaced atomically):
  {"round": N, "attempted": total, "held": open now, "failed": connect errors,
   "held_by_source": {SOURCE: open now}, "elapsed_s": seconds}
"held" counts sockets the server has not closed: an idle connection is never
readable until the server closes it (EOF or RST). Closes everything on exit
and on SIGTERM.
"""
import json
import os
import resource
import select
import signal
import socket
import sys
import time


def connect(host, port, src):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((src, 0))
        s.settimeout(2)
        s.connect((host, port))
        s.setblocking(False)
        return s
    except OSError:
        s.close()
        return None


def alive(s):
    # Nothing is ever sent to us on an idle connection: readable = closed.
    p = select.poll()
    p.register(s, select.POLLIN | select.POLLHUP | select.POLLERR)
    return not p.poll(0)


def main():
    host, port, state, hold_s, per = sys.argv[1], int(sys.argv[2]), sys.argv[3], \
        float(sys.argv[4]), int(sys.argv[5])
    sources = sys.argv[6:]
    want = per * len(sources) + 64
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
    else:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))

    socks = {src: [None] * per for src in sources}
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    t0 = time.monotonic()
    rnd = 0
    try:
        while not stop and (rnd == 0 or time.monotonic() - t0 < hold_s):
            rnd += 1
            failed = 0
            for src in sources:
                lst = socks[src]
                for i in range(per):
                    if stop:
                        break
                    s = lst[i]
                    if s is not None and not alive(s):
                        s.close()
                        s = lst[i] = None
                    if s is None:
                        lst[i] = connect(host, port, src)
                        failed += lst[i] is None
            # Let the server accept and refuse what it will, then count.
            time.sleep(0.5)
            by_src = {}
            for src in sources:
                lst = socks[src]
                for i, s in enumerate(lst):
                    if s is not None and not alive(s):
                        s.close()
                        lst[i] = None
                by_src[src] = sum(1 for s in lst if s is not None)
            tmp = state + ".tmp"
            with open(tmp, "w") as f:
                json.dump({"round": rnd, "attempted": per * len(sources),
                           "held": sum(by_src.values()), "failed": failed,
                           "held_by_source": by_src,
                           "elapsed_s": round(time.monotonic() - t0, 3)}, f)
            os.replace(tmp, state)
            end = time.monotonic() + 0.5
            while not stop and time.monotonic() < end:
                time.sleep(0.05)
    finally:
        for lst in socks.values():
            for s in lst:
                if s is not None:
                    s.close()


if __name__ == "__main__":
    main()
