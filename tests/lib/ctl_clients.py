#!/usr/bin/env python3
"""Control-socket clients that misbehave, for tests/e2e/control_stall.sh.

  ctl_clients.py SOCKET idle N HOLD_S OUT.json
      N clients connect and send nothing (one of them half a request line, no
      newline); each waits up to HOLD_S for the agent to close it. OUT.json:
      {"clients": N, "connected": n, "closed_after_s": [...], "still_open": k}
  ctl_clients.py SOCKET split
      one request written in two parts 0.5 s apart; prints the reply line
  ctl_clients.py SOCKET flood N
      opens N connections at once and keeps them open, then prints the reply
      to a status request sent on a fresh connection (the agent must still
      answer); exits closing all of them
"""
import json
import select
import socket
import sys
import time


def connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    return s


def read_reply(s, timeout):
    s.settimeout(timeout)
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    return buf.decode(errors="replace").strip()


def idle(path, n, hold, out):
    socks, closed = [], []
    t0 = time.monotonic()
    for i in range(n):
        try:
            s = connect(path)
        except OSError:
            continue
        if i == 0:
            s.sendall(b'{"command":')  # half a line, never finished
        socks.append(s)
    open_ = list(socks)
    while open_ and time.monotonic() - t0 < hold:
        r, _, _ = select.select(open_, [], [], 0.2)
        for s in r:
            try:
                data = s.recv(4096)
            except OSError:
                data = b""
            if not data:
                closed.append(round(time.monotonic() - t0, 2))
                open_.remove(s)
                s.close()
    json.dump({"clients": n, "connected": len(socks), "closed_after_s": closed,
               "still_open": len(open_)}, open(out, "w"))
    for s in open_:
        s.close()


def split(path):
    s = connect(path)
    s.sendall(b'{"command":')
    time.sleep(0.5)
    s.sendall(b'"status"}\n')
    print(read_reply(s, 5))


def flood(path, n):
    socks = []
    for _ in range(n):
        try:
            socks.append(connect(path))
        except OSError:
            break
    time.sleep(0.3)
    s = connect(path)
    s.sendall(b'{"command":"status"}\n')
    print(read_reply(s, 5))
    for x in socks:
        x.close()


def main():
    path, mode = sys.argv[1], sys.argv[2]
    if mode == "idle":
        idle(path, int(sys.argv[3]), float(sys.argv[4]), sys.argv[5])
    elif mode == "split":
        split(path)
    elif mode == "flood":
        flood(path, int(sys.argv[3]))
    else:
        sys.exit("unknown mode " + mode)


if __name__ == "__main__":
    main()
