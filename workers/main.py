"""`incidents worker`: one worker process on the incidents task queue. Run as many as you like."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

from infra.connection import connect
from infra.exiting import exit_process
from infra.logging_setup import configure_logging
from infra.settings import Settings
from infra.telemetry import configure_tracing, metrics_runtime
from workers.collector import (
    FULL_PAUSE_BUCKETS_MS,
    FULL_PAUSE_METRIC,
    freeze_start_up_objects,
    full_collection_pauses_recorded,
)
from workers.settings import WorkerSettings, worker_settings
from workers.worker import build_worker, http_client
from workflows.domain.policy import PolicyError
from workflows.domain.policy_catalogue import PolicyCatalogue
from workflows.metrics import HISTOGRAM_BUCKETS


def _cache_bytecode(settings: Settings) -> None:
    # The sandbox re-imports workflow modules per run; with PYTHONDONTWRITEBYTECODE set (as on these
    # machines) each re-import would compile the source again, so keep compiled files in our own cache.
    if sys.pycache_prefix is None:
        sys.pycache_prefix = str(settings.pycache_dir or Path.home() / ".cache" / "incidents-pyc")


async def run_worker(
    settings: Settings,
    worker: WorkerSettings | None = None,
    stop: asyncio.Event | None = None,
    policies: PolicyCatalogue | None = None,
) -> None:
    """Run until SIGINT/SIGTERM (or `stop`), configured by the process's settings."""
    worker = worker or worker_settings(settings)
    _cache_bytecode(settings)
    configure_tracing("incidents-worker", settings)
    runtime = metrics_runtime(
        worker.metrics_port, worker.metrics_host, {**HISTOGRAM_BUCKETS, FULL_PAUSE_METRIC: FULL_PAUSE_BUCKETS_MS}
    )
    client = await connect(runtime=runtime, settings=settings)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, stop.set)
        except (NotImplementedError, RuntimeError):  # not the main thread
            break
    async with http_client(worker) as http, build_worker(client, http, worker, policies=policies):
        with full_collection_pauses_recorded(runtime.metric_meter if runtime is not None else None):
            await stop.wait()


EXIT_BAD_SECRET = 2  # as the CLI's for any invalid setting (a policy file the worker cannot read too)


def main(settings: Settings | None = None) -> None:
    """The entry point: `incidents worker` passes the settings it read; `python -m workers.main` reads them."""
    settings = settings or Settings.load()
    configure_logging(settings.log_format, settings.log_level)  # `python -m workers.main` logs like `incidents worker`
    worker = worker_settings(settings)
    problem = worker.webhook_secret_problem()
    if problem is not None:  # before connecting: a worker with a forgeable secret must never take a task
        print(f"incidents worker: {problem}", file=sys.stderr, flush=True)
        raise SystemExit(EXIT_BAD_SECRET)
    try:  # before connecting too: the policies incidents may name, and the calendars they are checked against
        policies = worker.policy_catalogue()
    except PolicyError as error:
        print(f"incidents worker: {error}", file=sys.stderr, flush=True)
        raise SystemExit(EXIT_BAD_SECRET) from None
    freeze_start_up_objects()
    asyncio.run(run_worker(settings, worker, policies=policies))


if __name__ == "__main__":
    main()
    exit_process(0)
