#!/usr/bin/env python3
"""HTTP/1.1 keep-alive client for bench/idle-connections/run.sh (loopback only, bounded).

  client.py warm --port P [--requests 400] [--conns 4]
      sends exactly that many GETs over that many keep-alive connections, one at a time on each
      (bench/allocations.sh uses it as its load too), prints "warm N requests, F not 200 in S s".
  client.py hold --port P [--conns 5000] [--parallel 200] [--timeout 120]
      opens the connections (at most --parallel connecting at once), sends ONE complete GET on
      each and reads its whole response, so each is an idle keep-alive connection that has served
      a request; prints "ready OK FAILED CLOSED" and holds them all until a line (or EOF) arrives
      on stdin or --timeout seconds pass; then prints "still-open N" (connections the server had
      not closed meanwhile), closes them all and exits.
Every step has a time limit; a connection that fails counts as failed and is not retried.
"""
import argparse
import asyncio
import sys
import time

REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: idle-connections\r\n\r\n"
STEP_TIMEOUT = 20.0


async def one_request(reader, writer):
    """Send one GET and read the whole response; True on a 200 with its complete body."""
    writer.write(REQUEST)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = lines[0].split(" ")
    length = None
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
        elif name.strip().lower() == "transfer-encoding" and "chunked" in value.lower():
            raise ValueError("chunked response; this client expects Content-Length")
    if length is None:
        raise ValueError("response without Content-Length")
    await reader.readexactly(length)
    return len(status) > 1 and status[1] == "200"


async def warm(args):
    conns = max(1, min(args.conns, args.requests))
    failures = 0
    started = time.monotonic()

    async def worker(count):
        nonlocal failures
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", args.port), STEP_TIMEOUT)
        try:
            for _ in range(count):
                if not await asyncio.wait_for(one_request(reader, writer), STEP_TIMEOUT):
                    failures += 1
        finally:
            writer.close()

    # The remainder goes to the first connections, so exactly --requests are sent.
    counts = [args.requests // conns + (1 if i < args.requests % conns else 0) for i in range(conns)]
    await asyncio.gather(*(worker(count) for count in counts))
    print(f"warm {sum(counts)} requests, {failures} not 200 in {time.monotonic() - started:.3f} s", flush=True)
    return 1 if failures else 0


async def hold(args):
    gate = asyncio.Semaphore(args.parallel)
    held = []
    failed = 0
    first_error = None

    async def open_one():
        nonlocal failed, first_error
        async with gate:
            writer = None
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", args.port), STEP_TIMEOUT)
                if await asyncio.wait_for(one_request(reader, writer), STEP_TIMEOUT):
                    held.append((reader, writer))
                    return
                raise ValueError("status not 200")
            except (OSError, ValueError, asyncio.TimeoutError, asyncio.IncompleteReadError) as error:
                failed += 1
                first_error = first_error or repr(error)
                if writer is not None:
                    writer.close()

    try:
        await asyncio.wait_for(asyncio.gather(*(open_one() for _ in range(args.conns))), args.timeout)
    except asyncio.TimeoutError:
        print(f"opening took longer than {args.timeout}s", file=sys.stderr)
    # A server that closed an idle connection already makes it readable at EOF.
    closed = sum(1 for reader, _ in held if reader.at_eof())
    print(f"ready {len(held)} {failed} {closed}", flush=True)
    if first_error:
        print(f"first failure: {first_error}", file=sys.stderr)

    loop = asyncio.get_running_loop()
    try:
        await asyncio.wait_for(loop.run_in_executor(None, sys.stdin.readline), args.timeout)
    except asyncio.TimeoutError:
        print(f"no word on stdin within {args.timeout}s; closing", file=sys.stderr)
    # Closed by the server meanwhile (an idle timeout shorter than the hold would show here):
    # the event loop kept running while it waited, so their readers have seen the EOF.
    still = sum(1 for reader, _ in held if not reader.at_eof())
    print(f"still-open {still}", flush=True)
    for _, writer in held:
        writer.close()
    await asyncio.sleep(0.2)
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["warm", "hold"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--conns", type=int, default=None)
    parser.add_argument("--parallel", type=int, default=200)
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args()
    if args.conns is None:
        args.conns = 4 if args.mode == "warm" else 5000
    sys.exit(asyncio.run(warm(args) if args.mode == "warm" else hold(args)))


if __name__ == "__main__":
    main()
