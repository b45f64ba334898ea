#!/usr/bin/env python3
"""A stand-in for systemd's notify socket, for tests of sd_notify.

  sd_notify_listen.py PATH OUT
      binds a Unix datagram socket at PATH and appends every message to OUT,
      one line per assignment, prefixed with the monotonic receive time:
      "12.345 READY=1". Prints "ready" once bound; runs until killed.
"""
import os
import socket
import sys
import time

path, out = sys.argv[1], sys.argv[2]
try:
    os.unlink(path)
except FileNotFoundError:
    pass
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
os.chmod(path, 0o666)
print("ready", flush=True)
with open(out, "a", buffering=1) as f:
    while True:
        data = s.recv(65536)
        t = time.monotonic()
        for line in data.decode(errors="replace").splitlines():
            f.write("%.3f %s\n" % (t, line))
