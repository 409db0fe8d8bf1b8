"""`incidents worker`: one worker process on the incidents task queue. Run as many as you like."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from infra.connection import connect
from infra.exiting import exit_process
from infra.logging_setup import configure_logging
from infra.telemetry import configure_tracing, metrics_runtime
from workers.settings import WorkerSettings
from workers.worker import build_worker, http_client
from workflows.metrics import HISTOGRAM_BUCKETS


def _cache_bytecode() -> None:
    # The sandbox re-imports workflow modules per run; with PYTHONDONTWRITEBYTECODE set (as on these
    # machines) each re-import would compile the source again, so keep compiled files in our own cache.
    if sys.pycache_prefix is None:
        sys.pycache_prefix = str(Path(os.environ.get("INCIDENTS_PYCACHE", Path.home() / ".cache" / "incidents-pyc")))


async def run_worker(settings: WorkerSettings | None = None, stop: asyncio.Event | None = None) -> None:
    settings = settings or WorkerSettings()
    _cache_bytecode()
    configure_tracing("incidents-worker")
    client = await connect(runtime=metrics_runtime(settings.metrics_port, settings.metrics_host, HISTOGRAM_BUCKETS))
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, stop.set)
        except (NotImplementedError, RuntimeError):  # not the main thread
            break
    async with http_client(settings) as http:
        worker = build_worker(client, http, settings)
        async with worker:
            await stop.wait()


def main() -> None:
    configure_logging()  # `python -m workers.main` logs like `incidents worker` does
    asyncio.run(run_worker())


if __name__ == "__main__":
    main()
    exit_process(0)
