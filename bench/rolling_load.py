#!/usr/bin/env python3
"""Load driver and report printer for bench/rolling-restart (stdlib only).

    rolling_load.py load --port P --label L --json OUT [--duration 20] [--connections 64]
                         [--timeout 5] [--max-requests 500000]
        A fixed, bounded load: N worker threads until the duration ends (and never more than
        --max-requests in all). Worker i sends, in turn, GET /, GET /sleep?ms=300 and POST /echo
        (4 KiB body that must come back byte for byte), starting at kind i % 3, so the mix is a
        third each. GETs reuse one keep-alive connection per worker (reopened only after the
        server closed it or after an error); every POST goes on a new connection with
        `Connection: close`. Every connection error, timeout, non-200 status or wrong echo is a
        failure: nothing is retried.

    rolling_load.py wait-ready --admin-port P --count N [--timeout 30]
        Waits until GET /processes on the gateway's admin API shows N READY instances.

    rolling_load.py gateway-roll --answer ROLL.json --status CODE --elapsed-ms MS --json OUT
        Prints the steps of a rolling restart (the admin API's answer) and adds the roll's
        numbers to the scenario's result file.

    rolling_load.py script-roll --steps STEPS.tsv --elapsed-ms MS --json OUT
        The same for the SIGTERM-and-start-again roll (lines: name, sigterm->exit ms,
        sigterm->healthy ms, exit status).

    rolling_load.py merge OUT OTHER...
        Adds the keys of the other result files to OUT (the roll's numbers to the load's).

    rolling_load.py summary OUT...
        One table over the scenarios' result files.
"""

import argparse
import collections
import http.client
import json
import random
import sys
import threading
import time
import urllib.request

KINDS = ("GET /", "GET /sleep?ms=300", "POST /echo")
BODY_BYTES = 4096
FIRST_ERRORS_KEPT = 8


def percentile(sorted_values, fraction):
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, int(round(fraction * (len(sorted_values) - 1)))))
    return sorted_values[index]


def short(error):
    text = str(error).strip()
    name = type(error).__name__
    if not text or text == name:
        return name
    return f"{name}: {text[:120]}"


class Tally:
    """What all workers saw; one lock, taken once per request."""

    def __init__(self, max_requests):
        self.lock = threading.Lock()
        self.max_requests = max_requests
        self.started = 0
        self.latencies = {kind: [] for kind in KINDS}
        self.failed = collections.Counter()           # kind -> failures
        self.by_connection = collections.Counter()    # ("reused"|"new", "ok"|"failed") -> count
        self.reasons = collections.Counter()
        self.first_errors = []                        # (seconds since start, kind, reason)
        self.failure_seconds = collections.Counter()  # whole second since start -> failures

    def admit(self):
        with self.lock:
            if self.started >= self.max_requests:
                return False
            self.started += 1
            return True

    def record(self, kind, connection, began, latency, reason):
        with self.lock:
            self.latencies[kind].append(latency)
            self.by_connection[(connection, "ok" if reason is None else "failed")] += 1
            if reason is not None:
                self.failed[kind] += 1
                self.reasons[reason] += 1
                self.failure_seconds[int(began)] += 1
                if len(self.first_errors) < FIRST_ERRORS_KEPT:
                    self.first_errors.append((began, kind, reason))


def worker(index, host, port, timeout, start, deadline, tally):
    rng = random.Random(index)
    body_base = bytearray(rng.randbytes(BODY_BYTES))
    keepalive = http.client.HTTPConnection(host, port, timeout=timeout)
    n = 0
    while time.monotonic() < deadline and tally.admit():
        kind = KINDS[(index + n) % 3]
        n += 1
        began = time.monotonic()
        reason = None
        connection = "new"
        try:
            if kind == "POST /echo":
                # A distinct 16-byte stamp per request: an answer meant for another request shows.
                body = f"{index:05d}:{n:09d}:".encode() + bytes(body_base[16:])
                conn = http.client.HTTPConnection(host, port, timeout=timeout)
                try:
                    conn.request("POST", "/echo", body=body,
                                 headers={"Content-Type": "application/octet-stream", "Connection": "close"})
                    response = conn.getresponse()
                    data = response.read()
                finally:
                    conn.close()
                if response.status != 200:
                    reason = f"status {response.status} {data[:60]!r}"
                elif data != body:
                    reason = f"echo differs ({len(data)} bytes back for {len(body)})"
            else:
                # http.client reopens by itself when the last response said `Connection: close`
                # or after close(); sock is None exactly then.
                connection = "new" if keepalive.sock is None else "reused"
                path = "/" if kind == "GET /" else "/sleep?ms=300"
                keepalive.request("GET", path)
                response = keepalive.getresponse()
                data = response.read()
                if response.status != 200:
                    reason = f"status {response.status} {data[:60]!r}"
        except (OSError, http.client.HTTPException) as error:
            reason = short(error)
            if kind != "POST /echo":
                keepalive.close()
        tally.record(kind, connection, began - start, time.monotonic() - began, reason)
    keepalive.close()


def run_load(args):
    tally = Tally(args.max_requests)
    start = time.monotonic()
    deadline = start + args.duration
    threads = [
        threading.Thread(target=worker, args=(i, args.host, args.port, args.timeout, start, deadline, tally), daemon=True)
        for i in range(args.connections)
    ]
    for thread in threads:
        thread.start()
    # Bounded: a worker finishes the request it is in (at most --timeout per socket operation).
    join_until = deadline + 3 * args.timeout + 5
    for thread in threads:
        thread.join(max(0.0, join_until - time.monotonic()))
    stuck = sum(thread.is_alive() for thread in threads)
    elapsed = time.monotonic() - start

    with tally.lock:
        all_latencies = sorted(v for values in tally.latencies.values() for v in values)
        total = len(all_latencies)
        failed = sum(tally.failed.values())
        result = {
            "label": args.label,
            "connections": args.connections,
            "duration_s": args.duration,
            "elapsed_s": round(elapsed, 2),
            "total": total,
            "failed": failed,
            "rps": round(total / elapsed, 1) if elapsed > 0 else 0,
            # A fast 502 is a request too: the rate of answers that were right says more.
            "ok_rps": round((total - failed) / elapsed, 1) if elapsed > 0 else 0,
            "p50_ms": round(percentile(all_latencies, 0.50) * 1000, 1),
            "p99_ms": round(percentile(all_latencies, 0.99) * 1000, 1),
            "stuck_workers": stuck,
            "kinds": {},
            "by_connection": {f"{c}_{o}": n for (c, o), n in tally.by_connection.items()},
            "reasons": tally.reasons.most_common(),
            "first_errors": [[round(t, 3), k, r] for t, k, r in tally.first_errors],
            "failure_seconds": sorted(tally.failure_seconds.items()),
        }
        for kind in KINDS:
            values = sorted(tally.latencies[kind])
            result["kinds"][kind] = {
                "total": len(values),
                "failed": tally.failed[kind],
                "p50_ms": round(percentile(values, 0.50) * 1000, 1),
                "p99_ms": round(percentile(values, 0.99) * 1000, 1),
            }

    print(f"load: {args.connections} connections for {args.duration:g} s against 127.0.0.1:{args.port}"
          f" (ran {elapsed:.1f} s{'' if not stuck else f', {stuck} workers still stuck'})")
    print(f"  total {total}  failed {failed}  {result['rps']:.0f} req/s ({result['ok_rps']:.0f} ok/s)"
          f"  p50 {result['p50_ms']:.1f} ms  p99 {result['p99_ms']:.1f} ms")
    for kind in KINDS:
        k = result["kinds"][kind]
        print(f"    {kind:<18} {k['total']:>7} requests {k['failed']:>5} failed"
              f"  p50 {k['p50_ms']:7.1f} ms  p99 {k['p99_ms']:7.1f} ms")
    c = tally.by_connection
    print(f"  on a reused keep-alive connection: {c[('reused', 'ok')] + c[('reused', 'failed')]} requests"
          f" ({c[('reused', 'failed')]} failed); on a new connection (every POST, a GET after a close):"
          f" {c[('new', 'ok')] + c[('new', 'failed')]} ({c[('new', 'failed')]} failed)")
    if failed:
        print("  failure reasons:")
        for reason, count in tally.reasons.most_common(6):
            print(f"    {count:>6} x {reason}")
        print("  first failures (seconds after the load started):")
        for t, kind, reason in tally.first_errors:
            print(f"    t={t:6.3f}s  {kind:<18} {reason}")
        print("  failures per second of the load: "
              + "  ".join(f"{s}s:{n}" for s, n in sorted(tally.failure_seconds.items())))
    with open(args.json, "w") as out:
        json.dump(result, out, indent=1)
    return 0


def wait_ready(args):
    url = f"http://127.0.0.1:{args.admin_port}/processes"
    deadline = time.monotonic() + args.timeout
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                rows = json.load(response)["processes"]
            ready = [r for r in rows if r.get("state") == "READY" and r.get("ready")]
            last = ", ".join(f"{r['instance']} {r['state']} port {r['port']}" for r in rows) or "no instances"
            if len(ready) >= args.count:
                print(f"ready: {last}")
                return 0
        except (OSError, ValueError, KeyError) as error:
            last = short(error)
        time.sleep(0.1)
    print(f"wait-ready: not {args.count} READY instances after {args.timeout:g} s (last: {last})", file=sys.stderr)
    return 1


def update(path, values):
    try:
        with open(path) as f:
            result = json.load(f)
    except FileNotFoundError:
        result = {}
    result.update(values)
    with open(path, "w") as f:
        json.dump(result, f, indent=1)


def gateway_roll(args):
    try:
        with open(args.answer) as f:
            answer = json.load(f)
    except (OSError, ValueError) as error:
        print(f"roll: HTTP {args.status}, unreadable answer ({short(error)})")
        update(args.json, {"roll_ok": False, "roll_ms": args.elapsed_ms})
        return 0
    steps = answer.get("steps") or []
    print(f"roll: POST /deployments/{answer.get('deployment')}/restart -> HTTP {args.status} after"
          f" {args.elapsed_ms} ms: ok={answer.get('ok')} ({answer.get('message')})")
    print(f"    {'instance':<10} {'old pid:port':>14} {'new pid:port':>14} {'drained':>8} {'drain ms':>9} {'out of rotation ms':>19}")
    for s in steps:
        old = f"{s.get('old_pid')}:{s.get('old_port')}"
        new = f"{s.get('new_pid')}:{s.get('new_port')}"
        line = (f"    {s.get('instance', '?'):<10} {old:>14} {new:>14} {str(s.get('drained')):>8}"
                f" {s.get('drain_ms', 0):>9} {s.get('out_of_rotation_ms', 0):>19}")
        if s.get("error"):
            line += f"  error: {s['error']}"
        print(line)
    longest_drain = max((s.get("drain_ms", 0) for s in steps), default=0)
    longest_out = max((s.get("out_of_rotation_ms", 0) for s in steps), default=0)
    print(f"  longest drain {longest_drain} ms, longest out of rotation {longest_out} ms, roll took {args.elapsed_ms} ms")
    update(args.json, {
        "roll_ok": bool(answer.get("ok")) and args.status == 200,
        "roll_ms": args.elapsed_ms,
        "longest_drain_ms": longest_drain,
        "longest_out_ms": longest_out,
        "out_label": "out of rotation",
    })
    return 0


def script_roll(args):
    rows = []
    with open(args.steps) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 4:
                rows.append((parts[0], int(parts[1]), int(parts[2]), parts[3]))
    print(f"roll: SIGTERM, wait for exit, start on the same port, wait for /health; one by one; took {args.elapsed_ms} ms")
    print(f"    {'backend':<10} {'SIGTERM->exit ms':>17} {'SIGTERM->healthy ms':>20} {'exit status':>12}")
    for name, exit_ms, down_ms, status in rows:
        print(f"    {name:<10} {exit_ms:>17} {down_ms:>20} {status:>12}")
    longest_drain = max((r[1] for r in rows), default=0)
    longest_down = max((r[2] for r in rows), default=0)
    ok = len(rows) > 0 and all(r[3] == "0" and r[2] >= 0 for r in rows)
    print(f"  longest drain (SIGTERM->exit) {longest_drain} ms, longest downtime (SIGTERM->healthy) {longest_down} ms")
    update(args.json, {
        "roll_ok": ok,
        "roll_ms": args.elapsed_ms,
        "longest_drain_ms": longest_drain,
        "longest_out_ms": longest_down,
        "out_label": "downtime",
    })
    return 0


def merge(args):
    with open(args.into) as f:
        result = json.load(f)
    for path in args.others:
        with open(path) as f:
            result.update(json.load(f))
    with open(args.into, "w") as f:
        json.dump(result, f, indent=1)
    return 0


def summary(args):
    results = []
    for path in args.files:
        try:
            with open(path) as f:
                results.append(json.load(f))
        except (OSError, ValueError) as error:
            print(f"summary: skipping {path}: {short(error)}", file=sys.stderr)
    header = (f"{'scenario':<26} {'requests':>9} {'failed':>7} {'req/s':>7} {'ok/s':>6} {'p50 ms':>8} {'p99 ms':>8}"
              f" {'longest drain':>14} {'longest out/down':>17} {'roll ms':>8} {'roll ok':>8}")
    print(header)
    print("-" * len(header))
    for r in results:
        drain = r.get("longest_drain_ms")
        out = r.get("longest_out_ms")
        print(f"{r['label']:<26} {r['total']:>9} {r['failed']:>7} {r['rps']:>7.0f} {r.get('ok_rps', 0):>6.0f}"
              f" {r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f}"
              f" {('-' if drain is None else f'{drain} ms'):>14} {('-' if out is None else f'{out} ms'):>17}"
              f" {r.get('roll_ms', '-'):>8} {str(r.get('roll_ok', '-')):>8}")
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("load")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--label", required=True)
    p.add_argument("--json", required=True)
    p.add_argument("--duration", type=float, default=20.0)
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--timeout", type=float, default=5.0, help="seconds per socket operation")
    p.add_argument("--max-requests", type=int, default=500_000)
    p.set_defaults(run=run_load)

    p = sub.add_parser("wait-ready")
    p.add_argument("--admin-port", type=int, required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--timeout", type=float, default=30.0)
    p.set_defaults(run=wait_ready)

    p = sub.add_parser("gateway-roll")
    p.add_argument("--answer", required=True)
    p.add_argument("--status", type=int, required=True)
    p.add_argument("--elapsed-ms", type=int, required=True)
    p.add_argument("--json", required=True)
    p.set_defaults(run=gateway_roll)

    p = sub.add_parser("script-roll")
    p.add_argument("--steps", required=True)
    p.add_argument("--elapsed-ms", type=int, required=True)
    p.add_argument("--json", required=True)
    p.set_defaults(run=script_roll)

    p = sub.add_parser("merge")
    p.add_argument("into")
    p.add_argument("others", nargs="+")
    p.set_defaults(run=merge)

    p = sub.add_parser("summary")
    p.add_argument("files", nargs="+")
    p.set_defaults(run=summary)

    args = parser.parse_args()
    if getattr(args, "connections", 1) < 1 or getattr(args, "duration", 1) <= 0:
        parser.error("--connections must be >= 1 and --duration > 0")
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
