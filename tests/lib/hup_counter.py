#!/usr/bin/env python3
"""A consumer for reload tests: counts the SIGHUPs it gets.

  hup_counter.py COUNT_FILE PID_FILE

Writes its pid to PID_FILE, then after every SIGHUP the number received so
far to COUNT_FILE (replaced atomically). The handler is installed whatever
the disposition it inherited: a shell cannot trap a signal that was ignored
when it started (a test run under nohup), a Python process can. Runs until
killed.
"""
import os
import signal
import sys
import time

count_file, pid_file = sys.argv[1], sys.argv[2]
n = 0


def on_hup(*_):
    global n
    n += 1
    with open(count_file + ".tmp", "w") as f:
        f.write("%d\n" % n)
    os.replace(count_file + ".tmp", count_file)


signal.signal(signal.SIGHUP, on_hup)
with open(pid_file + ".tmp", "w") as f:
    f.write("%d\n" % os.getpid())
os.replace(pid_file + ".tmp", pid_file)
while True:
    time.sleep(3600)
