"""What one outbound POST costs the worker's process: `python -m bench.http_probe [--posts N] [--rounds R]`.

An escalation's notification is one POST through the worker's httpx client (workers/worker.py `http_client`:
a pool of INCIDENTS_HTTP_MAX_CONNECTIONS, all kept alive, with OpenTelemetry's httpx instrumentation). This
posts a notification-sized body to a minimal HTTP/1.1 server in another process (so that only the client's CPU
is counted) with so many requests in flight at once, as a burst of escalations keeps that many local
activities in flight, and prints this process's CPU microseconds per POST (the best of the rounds), for:

- the worker's client as built, with 1, 5, 10 and 20 requests in flight;
- the same without the tracing instrumentation (no exporter configured, as in the bench);
- 20 in flight with only 5 connections kept alive (httpcore checks every idle pooled connection, with a
  syscall or two, each time a request is added to or leaves the pool).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import httpx

from bench.stack import Processes
from infra.processes import free_port, http_ok
from infra.telemetry import instrument_http_client

BODY = b'{"notification": "' + b"x" * 400 + b'"}'  # about a rendered notification's size
POOL = 20  # the worker's default INCIDENTS_HTTP_MAX_CONNECTIONS


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                (
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ),
                0,
            )
            await reader.readexactly(length)
            writer.write(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()


async def serve(port: int) -> None:
    server = await asyncio.start_server(_answer, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


async def cpu_us_per_post(url: str, in_flight: int, kept_alive: int, instrumented: bool, posts: int) -> float:
    limits = httpx.Limits(max_connections=POOL, max_keepalive_connections=kept_alive)
    client = httpx.AsyncClient(timeout=10, limits=limits)
    if instrumented:
        client = instrument_http_client(client)
    gate = asyncio.Semaphore(in_flight)

    async def post() -> None:
        async with gate:
            (await client.post(url, content=BODY, headers={"Content-Type": "application/json"})).raise_for_status()

    async with client:
        await asyncio.gather(*(post() for _ in range(posts // 10)))  # the pool's connections opened, warm
        started = time.process_time()
        await asyncio.gather(*(post() for _ in range(posts)))
        return (time.process_time() - started) * 1e6 / posts


async def probe(posts: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory(prefix="http-probe-") as folder:
        processes = Processes(Path(folder))
        port = free_port()
        url = f"http://127.0.0.1:{port}/notifications"
        server = processes.python("http-server", "bench.http_probe", "--serve", str(port), ready=http_ok(url))
        try:
            await processes.ready(server)
            cases = [(n, POOL, True, "the worker's client") for n in (1, 5, 10, 20)]
            cases += [(n, POOL, False, "without tracing instrumentation") for n in (1, 20)]
            cases += [(20, 5, True, "5 connections kept alive")]
            print(f"CPU us per POST, the best of {rounds} rounds of {posts} (pool of {POOL} connections):")
            for in_flight, kept_alive, instrumented, what in cases:
                best = min(
                    [await cpu_us_per_post(url, in_flight, kept_alive, instrumented, posts) for _ in range(rounds)]
                )
                print(f"  {in_flight:2d} in flight, {what}: {best:.0f}")
        finally:
            processes.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--posts", type=int, default=3000, help="POSTs per case and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)  # the server process's own entry
    args = parser.parse_args()
    asyncio.run(serve(args.serve) if args.serve is not None else probe(args.posts, args.rounds))


if __name__ == "__main__":
    main()
