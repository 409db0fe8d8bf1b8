"""Real processes for fault tests, as infra/processes.py's Supervisor runs them: a dev server on a SQLite
file and worker processes, each of which a test can kill with SIGKILL and start again. Each dies with
the test run, however it ends."""

from __future__ import annotations

import sys
from pathlib import Path

from temporalio.client import Client

from infra.binaries import dev_server_argv
from infra.processes import Child, free_port, temporal_serving, worker_polling
from workflows.search_attributes import dev_server_flags

ROOT = Path(__file__).resolve().parent.parent


def dev_server(db: Path, port: int) -> Child:
    """`temporal server start-dev` on a SQLite file, as `incidents dev` runs it; started again, it keeps
    its port and its file."""
    extra = [*dev_server_flags(), "--http-port", str(free_port()), "--metrics-port", str(free_port())]
    return Child(
        "temporal",
        dev_server_argv(str(db), port, extra=extra),
        ready=temporal_serving("127.0.0.1", port),
        log=db.with_suffix(".log"),
    )


def worker(name: str, client: Client, task_queue: str, env: dict[str, str], log: Path) -> Child:
    """`python -m workers.main` (what `incidents worker` runs), ready once it polls `task_queue`."""
    return Child(
        name,
        [sys.executable, "-m", "workers.main"],
        ready=worker_polling(client, task_queue),
        log=log,
        extra_env={
            **env,
            "TEMPORAL_ADDRESS": client.service_client.config.target_host,
            "INCIDENTS_TASK_QUEUE": task_queue,
            "PYTHONPATH": str(ROOT),
        },
        cwd=ROOT,
    )
