#!/usr/bin/env python3
"""Load for bench/origins-restart (stdlib only).

    origins_load.py --port P --requests N --connections C --json OUT [--timeout 5] [--max-seconds 120]

N requests in all over C keep-alive worker connections: half GET /sleep?ms=50, half POST
/echo?id=ID with a 1 KiB body that must come back identical (ID unique per request, so the
origins' logs show any POST that arrived twice). A connection error, timeout, non-200 or wrong
echo is a failure; nothing is retried by the client. Bounded by N and by --max-seconds.
"""

import argparse
import collections
import http.client
import json
import os
import threading
import time


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--requests", type=int, default=10000)
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--timeout", type=float, default=5.0)
    p.add_argument("--max-seconds", type=float, default=120.0)
    p.add_argument("--json", required=True)
    args = p.parse_args()

    lock = threading.Lock()
    state = {"next": 0}
    failed = collections.Counter()
    reasons = collections.Counter()
    done = collections.Counter()
    deadline = time.monotonic() + args.max_seconds

    def take():
        with lock:
            if state["next"] >= args.requests or time.monotonic() > deadline:
                return None
            state["next"] += 1
            return state["next"]

    def worker(index):
        conn = None
        while True:
            n = take()
            if n is None:
                break
            kind = "GET" if n % 2 == 0 else "POST"
            reason = None
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(args.host, args.port, timeout=args.timeout)
                if kind == "GET":
                    conn.request("GET", "/sleep?ms=50")
                    response = conn.getresponse()
                    body = response.read()
                    if response.status != 200:
                        reason = "status %d" % response.status
                else:
                    payload = os.urandom(1024)
                    conn.request("POST", "/echo?id=%d" % n, body=payload, headers={"content-type": "application/octet-stream"})
                    response = conn.getresponse()
                    body = response.read()
                    if response.status != 200:
                        reason = "status %d" % response.status
                    elif body != payload:
                        reason = "wrong echo"
                if response.will_close:
                    conn.close()
                    conn = None
            except Exception as e:  # any transport failure
                reason = type(e).__name__
                if conn is not None:
                    conn.close()
                conn = None
            with lock:
                done[kind] += 1
                if reason is not None:
                    failed[kind] += 1
                    reasons[reason] += 1

    started = time.monotonic()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(args.connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    result = {
        "requests": sum(done.values()),
        "get": done["GET"],
        "post": done["POST"],
        "failed_get": failed["GET"],
        "failed_post": failed["POST"],
        "reasons": dict(reasons),
        "seconds": round(elapsed, 2),
    }
    with open(args.json, "w") as f:
        json.dump(result, f)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
