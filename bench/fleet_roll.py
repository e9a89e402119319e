#!/usr/bin/env python3
"""Load, probes and report for bench/fleet-roll/run.sh (stdlib only).

    fleet_roll.py load --targets HOST:PORT,... --hosts shop,web --duration S --connections N --json OUT
        Bounded load: N threads, each sending GET /sleep?ms=20 and GET / in turn (keep-alive,
        reconnecting after a close or an error) to the targets and Host names round-robin,
        until the duration ends or 500,000 requests. Every error, timeout or non-200 is a failure;
        nothing is retried. Writes {"requests", "failed", "failures": [first 10]}.

    fleet_roll.py propagate --etcd HOST:PORT --prefix P --key K --value V --gateways N [--count 10]
        Writes V to K --count times (random pauses between), and times each write until N of the
        gateways' reports (PREFIX/gateways/*/routes) say they applied its revision; prints the
        median and the max in seconds.

    fleet_roll.py left --etcd HOST:PORT --prefix P --member D/HOST:PORT --since EPOCH [--timeout 60]
        Polls the member's key and the reports until no gateway routes to the member; prints the
        seconds since its value turned `draining` (as seen by the poll) and since EPOCH.
"""
import argparse
import base64
import http.client
import json
import sys
import threading
import time
import urllib.request


def etcd_range(endpoint, prefix):
    end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    body = json.dumps({"key": base64.b64encode(prefix.encode()).decode(), "range_end": base64.b64encode(end.encode()).decode()}).encode()
    with urllib.request.urlopen(urllib.request.Request(f"http://{endpoint}/v3/kv/range", data=body), timeout=5) as answer:
        reply = json.loads(answer.read())
    return [json.loads(base64.b64decode(kv.get("value", ""))) for kv in reply.get("kvs", [])]


def reports(endpoint, prefix):
    return [r for r in etcd_range(endpoint, prefix + "gateways/") if "gateway" in r]


def cmd_load(args):
    targets = [t.split(":") for t in args.targets.split(",")]
    hosts = args.hosts.split(",")
    deadline = time.monotonic() + args.duration
    lock = threading.Lock()
    state = {"requests": 0, "failed": 0, "failures": []}

    def worker(index):
        host, port = targets[index % len(targets)]
        name = hosts[(index // len(targets)) % len(hosts)]
        connection = None
        turn = index
        while time.monotonic() < deadline:
            with lock:
                if state["requests"] >= 500_000:
                    return
                state["requests"] += 1
            path = "/sleep?ms=20" if turn % 2 == 0 else "/"
            turn += 1
            try:
                if connection is None:
                    connection = http.client.HTTPConnection(host, int(port), timeout=10)
                connection.request("GET", path, headers={"Host": name})
                response = connection.getresponse()
                response.read()
                if response.status != 200:
                    raise RuntimeError(f"status {response.status}")
                if response.getheader("connection", "").lower() == "close":
                    connection.close()
                    connection = None
            except Exception as error:  # every failure counts; nothing is retried
                with lock:
                    state["failed"] += 1
                    if len(state["failures"]) < 10:
                        state["failures"].append(f"{host}:{port} {name} {path}: {error}")
                if connection is not None:
                    connection.close()
                connection = None

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(args.connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with open(args.json, "w") as out:
        json.dump(state, out)


def etcd_put(endpoint, key, value):
    body = json.dumps({"key": base64.b64encode(key.encode()).decode(), "value": base64.b64encode(value.encode()).decode()}).encode()
    with urllib.request.urlopen(urllib.request.Request(f"http://{endpoint}/v3/kv/put", data=body), timeout=5) as answer:
        return int(json.loads(answer.read())["header"]["revision"])


def cmd_propagate(args):
    """Writes `value` to `key` --count times, each time timing (from just before the write) until
    --gateways reports say they applied its revision; prints the median and the max in seconds."""
    import random
    import statistics
    times = []
    for _ in range(args.count):
        started = time.monotonic()
        revision = etcd_put(args.etcd, args.key, args.value)
        while time.monotonic() - started < args.timeout:
            done = [r for r in reports(args.etcd, args.prefix) if int(r.get("revision", 0)) >= revision]
            if len(done) >= args.gateways:
                break
            time.sleep(0.002)
        times.append(time.monotonic() - started)
        # A random pause, so the writes do not fall into step with any periodic work.
        time.sleep(random.uniform(0.1, 0.5))
    print(f"{statistics.median(times):.3f} {max(times):.3f}")


def cmd_left(args):
    deployment, address = args.member.split("/", 1)
    member_prefix = f"{args.prefix}deployments/{deployment}/backends/{address}"
    draining_at = None
    while time.time() - args.since < args.timeout:
        if draining_at is None:
            values = etcd_range(args.etcd, member_prefix)
            if any(v.get("state") == "draining" for v in values) or not values:
                draining_at = time.time()
        routing = [r for r in reports(args.etcd, args.prefix) if r.get("backends", {}).get(args.member, {}).get("routed")]
        if not routing:
            now = time.time()
            after = f"{now - draining_at:.3f}" if draining_at else "n/a"
            print(f"{after} {now - args.since:.3f}")
            return
        time.sleep(0.005)
    print("timeout timeout")


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("load")
    p.add_argument("--targets", required=True)
    p.add_argument("--hosts", required=True)
    p.add_argument("--duration", type=float, default=20)
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--json", required=True)
    p = sub.add_parser("propagate")
    p.add_argument("--etcd", required=True)
    p.add_argument("--prefix", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--value", required=True)
    p.add_argument("--gateways", type=int, required=True)
    p.add_argument("--count", type=int, default=10)
    p.add_argument("--timeout", type=float, default=10)
    p = sub.add_parser("left")
    p.add_argument("--etcd", required=True)
    p.add_argument("--prefix", required=True)
    p.add_argument("--member", required=True)
    p.add_argument("--since", type=float, required=True)
    p.add_argument("--timeout", type=float, default=60)
    args = parser.parse_args()
    {"load": cmd_load, "propagate": cmd_propagate, "left": cmd_left}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
