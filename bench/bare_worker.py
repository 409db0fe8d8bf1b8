"""The raw-Temporal worker of the benchmark: `python -m bench.bare_worker` (TEMPORAL_ADDRESS, BENCH_TASK_QUEUE;
BENCH_MAX_CACHED_WORKFLOWS, default 20,000: the evicted phase restarts it with the incident worker's smaller cache;
BENCH_METRICS_PORT: the SDK's metrics, its sticky-cache hits and misses among them, on that port).

Its workflows live in `bench.bare`, not here: a module run as `__main__` cannot be passed through
the sandbox, and would be imported again for every workflow run.
"""

from __future__ import annotations

import asyncio
import os
import signal
from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from bench.bare import TASK_QUEUE, BareEscalation, BareOutageTarget, BareShape, BareTimer, BareWaiter, noop
from infra.exiting import exit_process
from infra.telemetry import metrics_runtime


async def main() -> None:
    metrics_port = os.environ.get("BENCH_METRICS_PORT")
    client = await Client.connect(
        os.environ.get("TEMPORAL_ADDRESS", "localhost:7233"),
        runtime=metrics_runtime(int(metrics_port)) if metrics_port else None,
    )
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    asyncio.get_running_loop().add_signal_handler(signal.SIGINT, stop.set)
    async with Worker(
        client,
        task_queue=os.environ.get("BENCH_TASK_QUEUE", TASK_QUEUE),
        workflows=[BareShape, BareTimer, BareEscalation, BareWaiter, BareOutageTarget],
        activities=[noop],
        max_cached_workflows=int(os.environ.get("BENCH_MAX_CACHED_WORKFLOWS", "20000")),
        # The SDK's 5 s unless a comparison sets it as the incident worker's INCIDENTS_STICKY_QUEUE_TIMEOUT.
        sticky_queue_schedule_to_start_timeout=timedelta(
            seconds=float(os.environ.get("BENCH_STICKY_QUEUE_TIMEOUT", "5"))
        ),
        # The incident worker's sandbox set-up: workflow code imported once per process, not once per run.
        workflow_runner=SandboxedWorkflowRunner(
            restrictions=SandboxRestrictions.default.with_passthrough_modules("bench")
        ),
    ):
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
    exit_process(0)
