#!/usr/bin/env python3
"""Driver for bench/stalled-clients (stdlib only).

    stalled_clients.py --port P --stalled K --tunnels T --seconds S --json OUT

Opens K connections that send a POST head with Content-Length: 100, 10 bytes of body and then
nothing, and T WebSocket upgrades (GET /ws) that go quiet after the 101. Meanwhile a normal
client sends GET / on its own keep-alive connection every 50 ms for S seconds. Reports when the
proxy closed each stalled connection and tunnel (seconds since it went quiet; null if it was still
open at the end), and the normal client's latencies and failures.
"""

import argparse
import http.client
import json
import select
import socket
import threading
import time

HANDSHAKE = (
    b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def watch_close(sock, started, until, out, index):
    """Reads (and drops) until the peer closes; records when."""
    sock.setblocking(False)
    while time.monotonic() < until:
        ready, _, _ = select.select([sock], [], [], 0.05)
        if ready:
            try:
                data = sock.recv(65536)
            except (ConnectionResetError, OSError):
                data = b""
            if not data:
                out[index] = round(time.monotonic() - started, 2)
                return
    out[index] = None


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--stalled", type=int, default=32)
    p.add_argument("--tunnels", type=int, default=32)
    p.add_argument("--seconds", type=float, default=12)
    p.add_argument("--json", required=True)
    args = p.parse_args()

    until = time.monotonic() + args.seconds
    stalled_closed = [None] * args.stalled
    tunnel_closed = [None] * args.tunnels
    threads = []
    for i in range(args.stalled):
        s = socket.create_connection(("127.0.0.1", args.port))
        s.sendall(b"POST /status/201 HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
        t = threading.Thread(target=watch_close, args=(s, time.monotonic(), until, stalled_closed, i))
        t.start()
        threads.append(t)
    for i in range(args.tunnels):
        s = socket.create_connection(("127.0.0.1", args.port))
        s.sendall(HANDSHAKE)
        head = b""
        s.settimeout(5)
        while b"\r\n\r\n" not in head:
            chunk = s.recv(4096)
            if not chunk:
                break
            head += chunk
        t = threading.Thread(target=watch_close, args=(s, time.monotonic(), until, tunnel_closed, i))
        t.start()
        threads.append(t)

    latencies = []
    failures = 0
    conn = http.client.HTTPConnection("127.0.0.1", args.port, timeout=5)
    while time.monotonic() < until:
        began = time.monotonic()
        try:
            conn.request("GET", "/")
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                failures += 1
            if response.will_close:
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", args.port, timeout=5)
        except Exception:
            failures += 1
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", args.port, timeout=5)
        latencies.append((time.monotonic() - began) * 1000)
        time.sleep(max(0, 0.05 - (time.monotonic() - began)))
    for t in threads:
        t.join()
    latencies.sort()

    def median(values):
        values = sorted(v for v in values if v is not None)
        return values[len(values) // 2] if values else None

    result = {
        "stalled_closed_median_s": median(stalled_closed),
        "stalled_still_open": sum(1 for v in stalled_closed if v is None),
        "tunnels_closed_median_s": median(tunnel_closed),
        "tunnels_still_open": sum(1 for v in tunnel_closed if v is None),
        "normal_requests": len(latencies),
        "normal_failures": failures,
        "normal_p50_ms": round(latencies[len(latencies) // 2], 2) if latencies else None,
        "normal_p99_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 2) if latencies else None,
    }
    with open(args.json, "w") as f:
        json.dump(result, f)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
