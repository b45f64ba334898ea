"""mTLS client for the certificate sync tests: handshakes in a loop against
HOST:PORT with a client certificate, until STOPFILE exists. Each handshake
also sends a request and reads the answer (with TLS 1.3 a refused client
certificate only shows on the first read). Writes one line per change of
the serial the server shows: "T_WALL SERIAL", and at the end a summary
line "done OK FAILED" plus the first failures.

  certs_client.py HOST PORT CA CLIENT_CRT CLIENT_KEY OUTFILE STOPFILE
"""
import os
import socket
import ssl
import sys
import time

host, port, ca, crt, key, out, stop = sys.argv[1:8]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.load_verify_locations(ca)
ctx.load_cert_chain(crt, key)
ctx.check_hostname = False
ok = failed = 0
last = None
fails = []
f = open(out, "w", buffering=1)
while not os.path.exists(stop):
    try:
        with socket.create_connection((host, int(port)), timeout=5) as s:
            with ctx.wrap_socket(s) as t:
                serial = t.getpeercert()["serialNumber"]
                t.sendall(b"GET / HTTP/1.0\r\n\r\n")
                data = b""
                while True:
                    b = t.recv(4096)
                    if not b:
                        break
                    data += b
                if not data.startswith(b"HTTP/1.1 200"):
                    raise RuntimeError("answer: %r" % data[:40])
        ok += 1
        if serial != last:
            f.write("%.6f %s\n" % (time.time(), serial))
            last = serial
    except Exception as e:  # every failure counts; the test wants zero
        failed += 1
        if len(fails) < 5:
            fails.append("%.3f %s" % (time.time(), e))
f.write("done %d %d\n" % (ok, failed))
for x in fails:
    f.write("fail %s\n" % x)
f.close()
