#!/usr/bin/env python3
"""Long-lived flows for the established-connection tests.

  flow.py serve tcp|udp PORT [TAG]  dual-stack echo server (runs until killed;
                                    TAG is ignored: it marks the process as a test's)
  flow.py client tcp|udp ADDR PORT DIR
      opens ONE connection (TCP) or socket (UDP) and keeps it; each time a
      file DIR/go.N appears it sends "ping N" on that same flow and writes
      DIR/res.N = "ok" (echo came back within 1 s) or "timeout"; stops
      when DIR/stop appears.
"""
import os
import socket
import sys
import threading
import time


def serve(proto, port):
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("::", port))
    if proto == "udp":
        while True:
            data, peer = s.recvfrom(2048)
            s.sendto(data, peer)
    s.listen(16)

    def echo(c):
        with c:
            while True:
                data = c.recv(2048)
                if not data:
                    return
                c.sendall(data)

    while True:
        c, _ = s.accept()
        threading.Thread(target=echo, args=(c,), daemon=True).start()


def client(proto, addr, port, d):
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
    s.settimeout(2)
    s.connect((addr, port))
    open(os.path.join(d, "connected"), "w").close()
    n = 0
    while not os.path.exists(os.path.join(d, "stop")):
        go = os.path.join(d, "go.%d" % n)
        if not os.path.exists(go):
            time.sleep(0.02)
            continue
        msg = b"ping %d" % n
        res = "timeout"
        try:
            s.settimeout(1)
            s.send(msg)
            if s.recv(2048) == msg:
                res = "ok"
        except OSError:
            pass
        with open(os.path.join(d, "res.%d" % n), "w") as f:
            f.write(res)
        n += 1


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(sys.argv[2], int(sys.argv[3]))
    elif sys.argv[1] == "client":
        client(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
    else:
        sys.exit("usage: flow.py serve|client ...")
