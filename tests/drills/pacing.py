"""Pacing for the drills' senders (spoof.py, spoof_frag.py, ttl1_flood.py)."""
import time


def paced(seconds, rate, burst, send_burst):
    """Calls send_burst() (which sends `burst` packets and returns how many
    it sent) for `seconds`, paced to `rate` packets/s on average. Returns the
    total sent."""
    sent = 0
    start = time.monotonic()
    next_t = start
    while time.monotonic() < start + seconds:
        sent += send_burst()
        next_t += burst / rate
        d = next_t - time.monotonic()
        if d > 0:
            time.sleep(d)
    return sent
