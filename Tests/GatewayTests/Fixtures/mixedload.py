#!/usr/bin/env python3
"""A bounded mixed load against the gateway, for the keeper tests (gateway upgrade, a killed
worker): what a real set of clients does while the gateway replaces itself.

Loops, each in its own thread, each bounded by --duration and --max-per-loop:
  fresh     GET / on a new connection each time (2 loops)
  sleep     GET /sleep?ms=300 on a new connection
  echo      POST /echo with a unique body that must come back whole
  keepalive GET / on one reused connection (2 loops); a request that meets a close before any
            byte of its response on a *reused* connection is retried once on a new one, as
            RFC 9112 9.3.1 allows and browsers and curl do (counted as `retried`)
  h2c       GET / over HTTP/2 with prior knowledge, 50 per connection (curl)
  websocket text frames echoed on /ws; a 1001 close (a draining worker) means reconnect

Prints one JSON object: counts per loop, failures (with what went wrong), connect errors
(`refused`: nobody accepted the connection), and the longest gap between successes overall.
Exit status 0 unless the command line is wrong.
"""
import argparse
import base64
import http.client
import json
import os
import socket
import struct
import sys
import threading
import time

import re
import subprocess

lock = threading.Lock()
stats = {}
failures = []
successes = []  # monotonic times of every success, for the longest gap


def kind(name):
    with lock:
        return stats.setdefault(name, {"ok": 0, "failed": 0, "refused": 0, "retried": 0, "reconnects": 0})


def success(name):
    with lock:
        stats[name]["ok"] += 1
        successes.append(time.monotonic())


def failure(name, what, refused=False):
    with lock:
        stats[name]["refused" if refused else "failed"] += 1
        if len(failures) < 50:
            failures.append(f"{name}: {what}")


def count(name, field):
    with lock:
        stats[name][field] += 1


def bounded(args):
    deadline = time.monotonic() + args.duration
    for i in range(args.max_per_loop):
        if time.monotonic() >= deadline:
            return
        yield i


def fresh(args, name, path, body=None):
    kind(name)
    for i in bounded(args):
        payload = None if body is None else (body + f"-{name}-{i}-").encode() + b"x" * 2048
        conn = http.client.HTTPConnection("127.0.0.1", args.port, timeout=20)
        try:
            try:
                conn.connect()
            except ConnectionRefusedError as e:
                failure(name, f"connect: {e}", refused=True)
                time.sleep(0.01)
                continue
            conn.request("POST" if payload else "GET", path, body=payload)
            response = conn.getresponse()
            data = response.read()
            if response.status != 200:
                failure(name, f"status {response.status}: {data[:200]!r}")
            elif payload is not None and data != payload:
                failure(name, f"echo returned {len(data)} bytes, not the {len(payload)} sent")
            else:
                success(name)
        except Exception as e:  # noqa: BLE001 - every error is a failed request here
            failure(name, f"{type(e).__name__}: {e}")
        finally:
            conn.close()


def keepalive(args, name):
    kind(name)
    conn = None
    for i in bounded(args):
        for attempt in (1, 2):
            reused = conn is not None
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", args.port, timeout=20)
                try:
                    conn.connect()
                except ConnectionRefusedError as e:
                    failure(name, f"connect: {e}", refused=True)
                    conn = None
                    time.sleep(0.01)
                    break
            try:
                conn.request("GET", f"/?i={i}")
                response = conn.getresponse()
                data = response.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as e:
                conn.close()
                conn = None
                if reused and attempt == 1:
                    # Closed before any byte of the answer on a reused connection: the server
                    # never took the request, so it is sent again on a new connection.
                    count(name, "retried")
                    continue
                failure(name, f"{type(e).__name__}: {e}")
                break
            except Exception as e:  # noqa: BLE001
                conn.close()
                conn = None
                failure(name, f"{type(e).__name__}: {e}")
                break
            if response.status == 200:
                success(name)
            else:
                failure(name, f"status {response.status}: {data[:200]!r}")
            if (response.getheader("connection") or "").lower() == "close":
                conn.close()
                conn = None
            break
    if conn is not None:
        conn.close()


def h2c(args, name):
    """HTTP/2 with prior knowledge through h2load: one connection, 20 streams at once, again.

    Not python3-h2: it closes its connection state at the first GOAWAY and then rejects the
    answers to streams the server still finishes, which RFC 9113 6.8 allows (the gateway's
    two-step GOAWAY does exactly that). Not curl 7.88 either: it fails the second request on a
    reused prior-knowledge connection (nginx too).
    """
    kind(name)
    url = f"http://127.0.0.1:{args.port}/?h2c"
    deadline = time.monotonic() + args.duration
    done = 0
    while done < args.max_per_loop and time.monotonic() < deadline:
        batch = min(20, args.max_per_loop - done)
        done += batch
        result = subprocess.run(["h2load", "-n", str(batch), "-c", "1", "-m", str(batch), "-T", "20", url],
                                capture_output=True, text=True)
        match = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed", result.stdout)
        succeeded = int(match.group(1)) if match else 0
        for _ in range(succeeded):
            success(name)
        if succeeded < batch:
            refused = "Connection refused" in result.stdout + result.stderr
            for _ in range(batch - succeeded):
                failure(name, "h2load: " + " / ".join(l for l in result.stdout.splitlines() if "requests:" in l or "status codes" in l or "error" in l.lower())[:300],
                        refused=refused)


def ws_frame(text):
    payload = text.encode()
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x81, 0x80 | len(payload)]) + mask + masked


def read_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def websocket(args, name):
    kind(name)
    sock = None
    for i in bounded(args):
        try:
            if sock is None:
                try:
                    sock = socket.create_connection(("127.0.0.1", args.port), timeout=20)
                except ConnectionRefusedError as e:
                    failure(name, f"connect: {e}", refused=True)
                    time.sleep(0.01)
                    continue
                key = base64.b64encode(os.urandom(16)).decode()
                sock.sendall((f"GET /ws HTTP/1.1\r\nHost: gateway\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                              f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = sock.recv(4096)
                    if not chunk:
                        raise ConnectionError("closed during the handshake")
                    head += chunk
                if not head.startswith(b"HTTP/1.1 101"):
                    raise ConnectionError(f"handshake answered {head[:40]!r}")
            text = f"frame-{i}"
            sock.sendall(ws_frame(text))
            first, length = read_exact(sock, 2)
            payload = read_exact(sock, length & 0x7F)
            if first & 0x0F == 0x8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                sock.close()
                sock = None
                if code == 1001:
                    count(name, "reconnects")
                    continue
                failure(name, f"closed with {code}")
                continue
            if payload.decode() != text:
                failure(name, f"echo {payload!r} for {text!r}")
            else:
                success(name)
            time.sleep(0.02)
        except Exception as e:  # noqa: BLE001
            failure(name, f"{type(e).__name__}: {e}")
            if sock is not None:
                sock.close()
            sock = None
    if sock is not None:
        sock.close()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--duration", type=float, required=True, help="seconds each loop runs at most")
    parser.add_argument("--max-per-loop", type=int, default=20000)
    args = parser.parse_args()

    loops = [
        (fresh, "fresh-1", "/"), (fresh, "fresh-2", "/"), (fresh, "sleep", "/sleep?ms=300"),
        (lambda a, n: fresh(a, n, "/echo", body="payload"), "echo"),
        (keepalive, "keepalive-1"), (keepalive, "keepalive-2"), (h2c, "h2c"), (websocket, "websocket"),
    ]
    threads = []
    for loop in loops:
        function, name, *rest = loop
        thread = threading.Thread(target=function, args=(args, name, *rest), daemon=True)
        thread.start()
        threads.append(thread)
    # Ready to be watched: the test starts its upgrades after this line.
    print(json.dumps({"started": True}), flush=True)
    for thread in threads:
        thread.join(args.duration + 30)

    times = sorted(successes)
    gap = max((b - a for a, b in zip(times, times[1:])), default=0.0)
    total = {field: sum(s[field] for s in stats.values()) for field in ("ok", "failed", "refused", "retried", "reconnects")}
    print(json.dumps({"total": total, "loops": stats, "longest_gap_ms": round(gap * 1000), "failures": failures}), flush=True)


if __name__ == "__main__":
    main()
