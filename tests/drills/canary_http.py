#!/usr/bin/env python3
"""The canary backend of the HTTP drill: answers each request line like
ep_echo ("<id> <line>"), until the file FAULT exists; from then on every
request gets "HTTP/1.1 500 Internal Server Error" as the first segment of
the reply, the way a broken release would answer.

usage: canary_http.py ID PORT FAULT_FILE
"""
import os
import socket
import sys
import threading


def serve(conn, ident, fault):
    try:
        conn.settimeout(5)
        buf = b""
        while True:
            data = conn.recv(4096)
            if not data:
                return
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                if os.path.exists(fault):
                    conn.sendall(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n")
                else:
                    conn.sendall(ident + b" " + line + b"\n")
    except OSError:
        pass
    finally:
        conn.close()


def main():
    ident, port, fault = sys.argv[1].encode(), int(sys.argv[2]), sys.argv[3]
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(1024)
    print("ready", flush=True)
    while True:
        conn, _ = s.accept()
        threading.Thread(target=serve, args=(conn, ident, fault), daemon=True).start()


if __name__ == "__main__":
    main()
