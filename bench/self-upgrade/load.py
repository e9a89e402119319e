#!/usr/bin/env python3
"""Load driver and helpers for bench/self-upgrade/run.sh (python3 stdlib; h2load for HTTP/2).

    load.py load --http-port P --h2-port P --duration S --json OUT [--label L] [--pause-ms 5]
        Mixed, bounded load on 127.0.0.1 until the duration ends (each client also stops after
        --max-per-client requests; every socket operation times out after --timeout s):
          fresh-get   GET / on a new connection each time (Connection: close)
          keepalive   GET / on one keep-alive connection per client
          sleep       GET /sleep?ms=300 on one keep-alive connection per client
          post-echo   POST /echo, 4 KiB with a unique stamp, new connection each time; the body
                      must come back byte for byte
          websocket   GET /ws upgrades; 10 text messages per session, each echo checked, close 1000
          h2c         batches of `h2load -n 40 -c 1 -m 4 --rps 100` (prior knowledge), one new
                      connection per batch (h2load does not reconnect after a GOAWAY); status
                      only. Streams h2load never put on the wire (the rest of a batch after a
                      GOAWAY; its log shows them with start time 0) are "not sent", not failed.
        Counted per kind: requests (sent on a connection), failed (wrong status or body, a
        connection reset or closed after the request was sent, a timeout), refused (the connect
        failed: ECONNREFUSED), retried. A keep-alive GET that found its *reused* connection closed
        with zero response bytes is sent once more on a new connection (RFC 9112 9.3.1, what
        browsers and curl do) and counted in retried; nothing else is retried. Also the longest
        gap between two successful responses (all kinds together, and per kind).

    load.py gateway-state --admin-port P
        One line: worker pid, keeper_pid, worker_generation (GET /health) and the instances' pids
        (GET /processes).
    load.py wait-ready --admin-port P [--count 3] [--timeout 60]
        Waits until GET /processes shows that many READY instances.
    load.py nginx-upgrade --dir D --port P
        nginx's binary upgrade: USR2 to the master in D/nginx.pid, wait for the new master and its
        worker, WINCH and QUIT to the old master. Prints the milliseconds from USR2 to the first
        answer from a new worker on a new connection (X-Worker-Pid: nginx's $pid), then details.
    load.py haproxy-reload --master PID --socket S
        USR2 to HAProxy's master; prints the milliseconds until the master CLI's `show proc`
        lists only new workers, the old and the new worker pids.
    load.py annotate RESULT.json --peer P --scenario S --events EVENTS.tsv
        Adds run.sh's events (kind, at s, time-to-serve ms, ok, detail) to a result file.
    load.py summary RESULT.json...           -> the table
"""

import argparse
import base64
import collections
import hashlib
import json
import os
import random
import re
import socket
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HOST = "127.0.0.1"
HELLO = re.compile(rb"^\S+ pid \d+\n$")  # the demo backend's answer to GET /
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
KINDS = ("fresh-get", "keepalive", "sleep", "post-echo", "websocket", "h2c")
FIRST_ERRORS_KEPT = 12


def short(error):
    text = str(error).strip()
    name = type(error).__name__
    return name if not text or text == name else f"{name}: {text[:100]}"


class Broken(Exception):
    """The connection ended (EOF, reset) while a request was out; `got` response bytes had come."""

    def __init__(self, got, reason):
        super().__init__(reason)
        self.got = got
        self.reason = reason


class Tally:
    """What every client saw; one lock."""

    def __init__(self):
        self.lock = threading.Lock()
        self.counts = {k: collections.Counter() for k in KINDS}
        self.reasons = collections.Counter()
        self.first_errors = []
        self.successes = {k: [] for k in KINDS}  # epoch seconds of each successful response

    def add(self, kind, **counts):
        with self.lock:
            self.counts[kind].update(counts)

    def ok(self, kind, at=None):
        with self.lock:
            self.counts[kind]["requests"] += 1
            self.successes[kind].append(time.time() if at is None else at)

    def failed(self, kind, reason, at=None):
        with self.lock:
            self.counts[kind]["requests"] += 1
            self.counts[kind]["failed"] += 1
            self.reasons[f"{kind}: {reason}"] += 1
            if len(self.first_errors) < FIRST_ERRORS_KEPT:
                self.first_errors.append((time.time() if at is None else at, kind, reason))


# ---- HTTP/1.1 on raw sockets: we must know whether *any* response byte came before a close ----

class Conn:
    def __init__(self, port, timeout):
        self.port = port
        self.timeout = timeout
        self.sock = None
        self.buf = b""
        self.got = 0       # response bytes received for the request under way
        self.served = 0    # responses completed on this connection (reused when > 0)

    def open(self):
        """Raises ConnectionRefusedError (counted as refused) or another OSError."""
        self.close()
        sock = socket.create_connection((HOST, self.port), timeout=self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock, self.buf, self.served = sock, b"", 0

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
        self.sock = None

    def _more(self):
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise
        except OSError as error:  # ECONNRESET and friends
            raise Broken(self.got, short(error))
        if not chunk:
            raise Broken(self.got, "closed by the server" if self.got == 0 else "closed mid-response")
        self.got += len(chunk)
        self.buf += chunk

    def _take(self, n):
        while len(self.buf) < n:
            self._more()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def _line(self):
        while b"\r\n" not in self.buf:
            self._more()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def send(self, data):
        self.got = 0
        try:
            self.sock.sendall(data)
        except socket.timeout:
            raise
        except OSError as error:  # EPIPE/ECONNRESET: the server had closed; nothing came back
            raise Broken(0, short(error))

    def head(self):
        """Status and headers (lower-case names) of the next response."""
        while b"\r\n\r\n" not in self.buf:
            self._more()
        raw, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = raw.split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
            raise Broken(self.got, f"bad status line {lines[0][:40]!r}")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
        return int(parts[1]), parts[0], headers

    def response(self, method="GET"):
        """(status, headers, body); closes the connection when the response says so."""
        status, version, headers = self.head()
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            body = b""
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            parts = []
            while True:
                size = int(self._line().split(b";")[0], 16)
                if size == 0:
                    while self._line():  # trailers, then the empty line
                        pass
                    break
                parts.append(self._take(size))
                self._take(2)
            body = b"".join(parts)
        elif "content-length" in headers:
            body = self._take(int(headers["content-length"]))
        else:  # delimited by the close
            while True:
                try:
                    self._more()
                except Broken:
                    break
            body, self.buf = self.buf, b""
            headers["connection"] = "close"
        self.served += 1
        if headers.get("connection", "").lower() == "close" or version == b"HTTP/1.0":
            self.close()
        return status, headers, body


def get_request(path):
    return f"GET {path} HTTP/1.1\r\nHost: shop\r\nUser-Agent: self-upgrade-bench\r\n\r\n".encode()


def fresh_get(args, tally, index, deadline):
    conn = Conn(args.http_port, args.timeout)
    request = b"GET / HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n\r\n"
    for _ in range(args.max_per_client):
        if time.monotonic() >= deadline:
            break
        try:
            conn.open()
        except ConnectionRefusedError:
            tally.add("fresh-get", refused=1)
            time.sleep(args.pause)
            continue
        except OSError as error:
            tally.failed("fresh-get", f"connect: {short(error)}")
            continue
        try:
            conn.send(request)
            status, _, body = conn.response()
            if status == 200 and HELLO.match(body):
                tally.ok("fresh-get")
            else:
                tally.failed("fresh-get", f"status {status} {body[:40]!r}")
        except Broken as error:
            tally.failed("fresh-get", error.reason)
        except (socket.timeout, OSError, ValueError) as error:
            tally.failed("fresh-get", short(error))
        conn.close()
        time.sleep(args.pause)


def keepalive_client(kind, path, check):
    """A client on one keep-alive connection; idempotent GETs, retried once after a close with
    zero response bytes on a reused connection."""

    def run(args, tally, index, deadline):
        conn = Conn(args.http_port, args.timeout)
        request = get_request(path)
        for _ in range(args.max_per_client):
            if time.monotonic() >= deadline:
                break
            retried = False
            while True:
                if conn.sock is None:
                    try:
                        conn.open()
                    except ConnectionRefusedError:
                        tally.add(kind, refused=1)
                        break
                    except OSError as error:
                        tally.failed(kind, f"connect: {short(error)}")
                        break
                reused = conn.served > 0
                try:
                    conn.send(request)
                    status, _, body = conn.response()
                    if status == 200 and check(body):
                        tally.ok(kind)
                    else:
                        tally.failed(kind, f"status {status} {body[:40]!r}")
                    break
                except Broken as error:
                    conn.close()
                    if error.got == 0 and reused and not retried:
                        retried = True
                        tally.add(kind, retried=1)
                        continue
                    tally.failed(kind, error.reason + (" (after a retry)" if retried else ""))
                    break
                except (socket.timeout, OSError, ValueError) as error:
                    conn.close()
                    tally.failed(kind, short(error))
                    break
            time.sleep(args.pause)
        conn.close()

    return run


def post_echo(args, tally, index, deadline):
    conn = Conn(args.http_port, args.timeout)
    rng = random.Random(index)
    filler = bytes(rng.getrandbits(8) for _ in range(4096 - 24))
    for n in range(args.max_per_client):
        if time.monotonic() >= deadline:
            break
        body = f"{index:04d}:{n:09d}:{os.getpid():09d}".encode()[:24].ljust(24, b".") + filler
        head = (f"POST /echo HTTP/1.1\r\nHost: shop\r\nContent-Type: application/octet-stream\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
        try:
            conn.open()
        except ConnectionRefusedError:
            tally.add("post-echo", refused=1)
            time.sleep(args.pause)
            continue
        except OSError as error:
            tally.failed("post-echo", f"connect: {short(error)}")
            continue
        try:
            conn.send(head + body)
            status, _, answer = conn.response("POST")
            if status != 200:
                tally.failed("post-echo", f"status {status} {answer[:40]!r}")
            elif answer != body:
                tally.failed("post-echo", f"echo differs ({len(answer)} bytes for {len(body)})")
            else:
                tally.ok("post-echo")
        except Broken as error:
            tally.failed("post-echo", error.reason)
        except (socket.timeout, OSError, ValueError) as error:
            tally.failed("post-echo", short(error))
        conn.close()
        time.sleep(args.pause)


# ---- WebSocket (RFC 6455), client side: masked frames out, unmasked frames in ----

def ws_frame(opcode, payload):
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        header = bytes([0x80 | opcode, 0x80 | n])
    elif n < 65536:
        header = bytes([0x80 | opcode, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        header = bytes([0x80 | opcode, 0x80 | 127]) + n.to_bytes(8, "big")
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def ws_read(conn):
    """(opcode, payload) of the next frame; pings are answered here."""
    while True:
        b0, b1 = conn._take(2)
        n = b1 & 0x7F
        if n == 126:
            n = int.from_bytes(conn._take(2), "big")
        elif n == 127:
            n = int.from_bytes(conn._take(8), "big")
        mask = conn._take(4) if b1 & 0x80 else None
        payload = conn._take(n)
        if mask:
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        opcode = b0 & 0x0F
        if opcode == 0x9:
            conn.send(ws_frame(0xA, payload))
            continue
        if opcode == 0xA:
            continue
        return opcode, payload


def websocket(args, tally, index, deadline):
    conn = Conn(args.http_port, args.timeout)
    rng = random.Random(1000 + index)
    for session in range(args.max_per_client):
        if time.monotonic() >= deadline:
            break
        try:
            conn.open()
        except ConnectionRefusedError:
            tally.add("websocket", refused=1)
            time.sleep(args.pause)
            continue
        except OSError as error:
            tally.failed("websocket", f"connect: {short(error)}")
            continue
        key = base64.b64encode(os.urandom(16))
        accept = base64.b64encode(hashlib.sha1(key + WS_GUID).digest()).decode()
        try:
            conn.send(b"GET /ws HTTP/1.1\r\nHost: shop\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n")
            status, _, headers = conn.head()
            if status != 101 or headers.get("sec-websocket-accept") != accept:
                tally.failed("websocket", f"upgrade answered {status}")
                conn.close()
                continue
            tally.ok("websocket")
        except Broken as error:
            tally.failed("websocket", f"upgrade: {error.reason}")
            conn.close()
            continue
        except (socket.timeout, OSError, ValueError) as error:
            tally.failed("websocket", f"upgrade: {short(error)}")
            conn.close()
            continue
        closed = False
        for i in range(args.ws_messages):
            message = f"ws {index} {session} {i} ".encode() + bytes(rng.choice(b"abcdefghij") for _ in range(rng.randint(16, 200)))
            try:
                conn.send(ws_frame(0x1, message))
                opcode, payload = ws_read(conn)
                if opcode == 0x8:
                    code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
                    tally.failed("websocket", f"close {code} from the server instead of an echo")
                    closed = True
                    break
                if opcode != 0x1 or payload != message:
                    tally.failed("websocket", f"echo differs (opcode {opcode}, {len(payload)} bytes for {len(message)})")
                else:
                    tally.ok("websocket")
            except Broken as error:
                tally.failed("websocket", f"message: {error.reason}")
                closed = True
                break
            except (socket.timeout, OSError, ValueError) as error:
                tally.failed("websocket", f"message: {short(error)}")
                closed = True
                break
            time.sleep(args.pause)
        if not closed:
            # Our close 1000, then the server's close frame; a missing reply is not a request lost.
            try:
                conn.send(ws_frame(0x8, (1000).to_bytes(2, "big")))
                while ws_read(conn)[0] != 0x8:
                    pass
            except (Broken, socket.timeout, OSError, ValueError):
                tally.add("websocket", close_not_answered=1)
        conn.close()
        time.sleep(args.pause)


# ---- HTTP/2 with prior knowledge: h2load in short batches (it does not reconnect by itself) ----

SUMMARY = re.compile(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout")
CODES = re.compile(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx")
TRAFFIC = re.compile(r"traffic: \S+ \((\d+)\) total")


def h2c(args, tally, index, deadline):
    workdir = tempfile.mkdtemp(prefix="h2load-")
    log = os.path.join(workdir, "requests.log")
    try:
        for _ in range(args.max_per_client):
            if time.monotonic() >= deadline:
                break
            if os.path.exists(log):
                os.unlink(log)
            command = ["h2load", "-n", str(args.h2_batch), "-c", "1", "-m", "4", "--rps", str(args.h2_rps),
                       "-N", f"{int(args.timeout)}s", "--log-file", log, f"http://{HOST}:{args.h2_port}/"]
            try:
                out = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout + args.h2_batch / args.h2_rps + 10).stdout
            except subprocess.TimeoutExpired:  # run() kills its own child
                tally.failed("h2c", "h2load ran over its time bound")
                continue
            summary, codes, traffic = SUMMARY.search(out), CODES.search(out), TRAFFIC.search(out)
            if not summary or not codes:
                tally.failed("h2c", "h2load printed no summary")
                continue
            total, started = int(summary.group(1)), int(summary.group(2))
            ok2xx = int(codes.group(1))
            if started == 0 and traffic and int(traffic.group(1)) == 0:
                tally.add("h2c", refused=1)  # h2load could not connect (it does not say why)
                time.sleep(args.pause)
                continue
            # The log has a line per stream that ended: start (epoch us; 0 = its HEADERS were never
            # sent: nghttp2 refuses new streams once a GOAWAY came, so h2load's next timer tick
            # fails locally on a connection the server is closing gracefully), status, duration.
            successes, unsent, answered = [], 0, 0
            try:
                with open(log) as f:
                    for line in f:
                        fields = line.split()
                        if len(fields) < 3:
                            continue
                        began, status, took = int(fields[0]), fields[1], int(fields[2])
                        if began == 0:
                            unsent += 1
                        elif status == "200":
                            successes.append((began + took) / 1e6)
                        else:
                            answered += 1
                            tally.failed("h2c", f"stream ended with status {status} (-1: reset or closed after it was sent)")
            except OSError:
                pass
            for at in successes:
                tally.ok("h2c", at)
            done = int(summary.group(3))
            for _ in range(max(0, started - done)):
                tally.failed("h2c", "stream sent but never completed")
            if len(successes) + unsent + answered != done or len(successes) != ok2xx:
                tally.add("h2c", log_mismatch=1)
            # Never on the wire: the connection ended (GOAWAY) before h2load got to them.
            tally.add("h2c", not_sent=total - started + unsent)
            time.sleep(args.pause)
    finally:
        for name in os.listdir(workdir):
            os.unlink(os.path.join(workdir, name))
        os.rmdir(workdir)


def longest_gap(times, until):
    """Longest time between two successful responses up to `until` (the load's end: after it only
    stragglers finish), in seconds, and when it began."""
    points = sorted(t for t in times if t <= until)
    best, at = 0.0, (points[0] if points else None)
    for a, b in zip(points, points[1:]):
        if b - a > best:
            best, at = b - a, a
    return best, at


def run_load(args):
    args.pause = args.pause_ms / 1000
    tally = Tally()
    plan = ([("fresh-get", fresh_get)] * args.fresh
            + [("keepalive", keepalive_client("keepalive", "/", HELLO.match))] * args.keepalive
            + [("sleep", keepalive_client("sleep", "/sleep?ms=300", lambda b: b == b"slept 300 ms\n"))] * args.sleep
            + [("post-echo", post_echo)] * args.post
            + [("websocket", websocket)] * args.websocket
            + [("h2c", h2c)] * args.h2)
    start_wall = time.time()
    start = time.monotonic()
    t0 = args.t0_ms / 1000 if args.t0_ms else start_wall  # times are reported from here (run.sh's clock)
    deadline = start + args.duration
    threads = [threading.Thread(target=fn, args=(args, tally, i, deadline), daemon=True, name=kind)
               for i, (kind, fn) in enumerate(plan)]
    for thread in threads:
        thread.start()
    print(f"load: started {len(plan)} clients", flush=True)  # the keeper tests wait for this line
    # Bounded: every socket operation times out; h2load batches have their own bound.
    join_until = deadline + 3 * args.timeout + args.h2_batch / args.h2_rps + 15
    for thread in threads:
        thread.join(max(0.0, join_until - time.monotonic()))
    stuck = [t.name for t in threads if t.is_alive()]
    end_wall = start_wall + args.duration

    with tally.lock:
        kinds = {}
        everything = []
        for kind in KINDS:
            c = tally.counts[kind]
            gap, gap_at = longest_gap(tally.successes[kind], end_wall) if tally.successes[kind] else (None, None)
            kinds[kind] = dict(c, gap_ms=None if gap is None else round(gap * 1000),
                               gap_at_s=None if gap_at is None else round(gap_at - t0, 2))
            everything += tally.successes[kind]
        gap, gap_at = longest_gap(everything or [start_wall], end_wall)
        total = collections.Counter()
        for kind in KINDS:
            total.update({k: v for k, v in tally.counts[kind].items() if isinstance(v, int)})
        result = {
            "label": args.label,
            "duration_s": args.duration,
            "start_epoch": start_wall,
            "requests": total["requests"],
            "failed": total["failed"],
            "refused": total["refused"],
            "retried": total["retried"],
            "longest_gap_ms": round(gap * 1000),
            "longest_gap_at_s": None if gap_at is None else round(gap_at - t0, 2),
            "kinds": kinds,
            "reasons": tally.reasons.most_common(12),
            "first_errors": [[round(t - t0, 3), k, r] for t, k, r in sorted(tally.first_errors)],
            "stuck_clients": stuck,
        }
    print(f"load: {len(plan)} clients for {args.duration:g} s: {result['requests']} requests, {result['failed']} failed,"
          f" {result['refused']} refused, {result['retried']} retried; longest gap {result['longest_gap_ms']} ms"
          f" at t={result['longest_gap_at_s']}s" + (f"; STILL RUNNING: {stuck}" if stuck else ""))
    for kind, k in kinds.items():
        extra = "  ".join(f"{name} {k[name]}" for name in ("not_sent", "close_not_answered", "log_mismatch") if k.get(name))
        print(f"    {kind:<10} {k.get('requests', 0):>7} requests {k.get('failed', 0):>4} failed {k.get('refused', 0):>4} refused"
              f" {k.get('retried', 0):>4} retried   longest gap {k['gap_ms']} ms at t={k['gap_at_s']}s  {extra}")
    if result["reasons"]:
        print("  failures by reason:")
        for reason, count in result["reasons"]:
            print(f"    {count:>6} x {reason}")
        print("  first failures (seconds after the load started):")
        for t, kind, reason in result["first_errors"]:
            print(f"    t={t:7.3f}s  {kind:<10} {reason}")
    with open(args.json, "w") as out:
        json.dump(result, out, indent=1)
    return 0 if not stuck else 1


# ---- small helpers for run.sh ----

def fetch_json(url, timeout=2):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.load(response)


def gateway_state(args):
    """One line: worker pid, keeper pid, worker generation, the instances' pids (sorted)."""
    h = fetch_json(f"http://{HOST}:{args.admin_port}/health")
    rows = fetch_json(f"http://{HOST}:{args.admin_port}/processes")["processes"]
    pids = ",".join(str(p) for p in sorted(r["pid"] for r in rows if r.get("pid")))
    print(h["pid"], h["keeper_pid"], h["worker_generation"], pids or "-")
    return 0


def wait_ready(args):
    """Until GET /processes shows --count READY instances."""
    def ready():
        rows = fetch_json(f"http://{HOST}:{args.admin_port}/processes")["processes"]
        return len([r for r in rows if r.get("state") == "READY" and r.get("ready")]) >= args.count
    return 0 if until(ready, args.timeout, 0.1) else 1


def until(predicate, timeout, step=0.005):
    """Polls until predicate() returns something true; that value, or None after timeout s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except (OSError, ValueError, KeyError, Broken):
            value = None
        if value:
            return value
        time.sleep(step)
    return None


def children(pid):
    found = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            found += f.read().split()
    return found


def read_pid(path):
    with open(path) as f:
        return int(f.read().strip())


def served_by(port):
    """The X-Worker-Pid of a GET / on a new connection (nginx answers with its worker's $pid)."""
    conn = Conn(port, 1)
    try:
        conn.open()
        conn.send(b"GET / HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n\r\n")
        status, headers, _ = conn.response()
        return headers.get("x-worker-pid") if status == 200 else None
    finally:
        conn.close()


def nginx_upgrade(args):
    """nginx's binary upgrade, timed from USR2 to the first answer of a new worker."""
    pidfile = os.path.join(args.dir, "nginx.pid")
    oldbin = pidfile + ".oldbin"
    # A new master ignores USR2 while its parent (the previous old master) still runs.
    if until(lambda: not os.path.exists(oldbin), 10) is None:
        print("- the previous old master is still running after 10 s")
        return 1
    old = read_pid(pidfile)
    started = time.monotonic()
    os.kill(old, signal.SIGUSR2)
    new = until(lambda: os.path.exists(oldbin) and read_pid(pidfile) != old and read_pid(pidfile), 10)
    workers = new and until(lambda: children(new), 10)
    if not workers:
        print(f"- no new master with a worker after USR2 to {old}")
        return 1
    os.kill(old, signal.SIGWINCH)  # the old workers stop accepting and finish what they serve
    served = until(lambda: served_by(args.port) in workers, 10)
    ms = round((time.monotonic() - started) * 1000)
    os.kill(old, signal.SIGQUIT)   # the old master exits once its workers have
    print(f"{ms if served else '-'} master {old} -> {new}, worker(s) {','.join(workers)}"
          + ("" if served else "; no answer from a new worker within 10 s"))
    return 0 if served else 1


def show_proc_workers(path):
    """Current worker pids from HAProxy's master CLI (`show proc`, section "# workers")."""
    sock = socket.socket(socket.AF_UNIX)
    sock.settimeout(2)
    try:
        sock.connect(path)
        sock.sendall(b"show proc\n")
        sock.shutdown(socket.SHUT_WR)  # the master CLI answers and closes once our side is done
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        sock.close()
    section, pids = None, []
    for line in data.decode(errors="replace").splitlines():
        if line.startswith("# "):
            section = line[2:].strip()
            continue
        fields = line.split()
        if section == "workers" and len(fields) >= 2 and fields[1] == "worker":
            pids.append(fields[0])
    return pids


def haproxy_reload(args):
    """USR2 to HAProxy's master, timed until `show proc` lists only new workers."""
    old = set(show_proc_workers(args.socket))
    started = time.monotonic()
    os.kill(args.master, signal.SIGUSR2)
    # While the master re-executes itself its CLI socket is briefly away: until() retries.
    new = until(lambda: (lambda pids: pids if pids and not pids & old else None)(set(show_proc_workers(args.socket))), 10)
    ms = round((time.monotonic() - started) * 1000)
    if not new:
        print(f"- no new worker within 10 s (old {','.join(sorted(old))})")
        return 1
    print(f"{ms} {','.join(sorted(old))} {','.join(sorted(new))}")
    return 0


def annotate(args):
    """Adds the peer, the scenario and the events (run.sh's events.tsv) to a result file."""
    with open(args.result) as f:
        result = json.load(f)
    events = []
    with open(args.events) as f:
        for line in f:
            kind, at, ms, ok, detail = line.rstrip("\n").split("\t", 4)
            events.append({"kind": kind, "at_s": float(at), "ms": None if ms == "-" else int(ms), "ok": ok == "1", "detail": detail})
    result.update(peer=args.peer, scenario=args.scenario, events=events)
    with open(args.result, "w") as f:
        json.dump(result, f, indent=1)
    return 0


def summary(args):
    rows = []
    for path in args.files:
        try:
            with open(path) as f:
                rows.append(json.load(f))
        except (OSError, ValueError) as error:
            print(f"summary: skipping {path}: {short(error)}", file=sys.stderr)
    header = (f"{'peer':<8} {'scenario':<24} {'requests':>9} {'failed':>7} {'refused':>8} {'retried':>8}"
              f" {'longest gap ms':>15} {'median time-to-serve ms':>24} {'events ok':>10}")
    print(header)
    print("-" * len(header))
    for r in rows:
        ev = r.get("events", [])
        ms = sorted(e["ms"] for e in ev if e.get("ms") is not None)
        median = "-" if not ms else (ms[len(ms) // 2] if len(ms) % 2 else round((ms[len(ms) // 2 - 1] + ms[len(ms) // 2]) / 2))
        ok = f"{sum(1 for e in ev if e.get('ok'))}/{len(ev)}"
        print(f"{r.get('peer', '?'):<8} {r.get('scenario', r['label']):<24} {r['requests']:>9} {r['failed']:>7} {r['refused']:>8}"
              f" {r['retried']:>8} {r['longest_gap_ms']:>15} {str(median):>24} {ok:>10}")
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("load")
    p.add_argument("--http-port", type=int, required=True)
    p.add_argument("--h2-port", type=int, required=True)
    p.add_argument("--duration", type=float, default=20)
    p.add_argument("--json", required=True)
    p.add_argument("--label", default="load")
    p.add_argument("--t0-ms", type=int, help="epoch ms that times in the report count from (default: the start)")
    p.add_argument("--timeout", type=float, default=5, help="seconds per socket operation")
    p.add_argument("--pause-ms", type=float, default=5, help="each client's pause between requests")
    p.add_argument("--max-per-client", type=int, default=50000)
    p.add_argument("--fresh", type=int, default=3)
    p.add_argument("--keepalive", type=int, default=3)
    p.add_argument("--sleep", type=int, default=4)
    p.add_argument("--post", type=int, default=2)
    p.add_argument("--websocket", type=int, default=2)
    p.add_argument("--ws-messages", type=int, default=10)
    p.add_argument("--h2", type=int, default=1)
    p.add_argument("--h2-batch", type=int, default=40)
    p.add_argument("--h2-rps", type=int, default=100)
    p.set_defaults(run=run_load)
    p = sub.add_parser("gateway-state")
    p.add_argument("--admin-port", type=int, required=True)
    p.set_defaults(run=gateway_state)
    p = sub.add_parser("wait-ready")
    p.add_argument("--admin-port", type=int, required=True)
    p.add_argument("--count", type=int, default=3)
    p.add_argument("--timeout", type=float, default=60)
    p.set_defaults(run=wait_ready)
    p = sub.add_parser("nginx-upgrade")
    p.add_argument("--dir", required=True, help="nginx's prefix, where nginx.pid is")
    p.add_argument("--port", type=int, required=True)
    p.set_defaults(run=nginx_upgrade)
    p = sub.add_parser("haproxy-reload")
    p.add_argument("--master", type=int, required=True)
    p.add_argument("--socket", required=True, help="the master CLI socket (-S)")
    p.set_defaults(run=haproxy_reload)
    p = sub.add_parser("annotate")
    p.add_argument("result")
    p.add_argument("--peer", required=True)
    p.add_argument("--scenario", required=True)
    p.add_argument("--events", required=True)
    p.set_defaults(run=annotate)
    p = sub.add_parser("summary")
    p.add_argument("files", nargs="+")
    p.set_defaults(run=summary)
    args = parser.parse_args()
    try:
        return args.run(args)
    except (OSError, ValueError, KeyError) as error:
        print(f"load.py {args.command}: {short(error)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
