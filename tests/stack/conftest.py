"""The stack tier: the real Temporal dev server (one per session, on a SQLite file) and what runs on it:
a worker in the test process, the HTTP API on a real socket; modules here also start the whole stack,
the CLI and the benchmark as child processes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from starter.incidents import IncidentService
from tests.harness import Sandboxes, dev_server, running_worker
from tests.policies import fast_policy
from tests.served_api import Api, served_api


@pytest.fixture(scope="session")
async def dev_env(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[WorkflowEnvironment]:
    async with dev_server(tmp_path_factory.mktemp("temporal") / "temporal.sqlite") as env:
        yield env


@pytest.fixture
async def api(dev_env: WorkflowEnvironment, sandboxes: Sandboxes, tmp_path: Path) -> AsyncIterator[Api]:
    """The HTTP API over a real socket, on the dev server, with a worker of its own."""
    async with running_worker(dev_env.client, sandboxes) as running:
        # Line timers of an hour: nothing escalates by itself while a test looks.
        policy = fast_policy(line_timeouts={"1": "1h", "2": "1h"})
        service = IncidentService(running.client, policy=policy, task_queue=running.task_queue)
        async with served_api(service, tmp_path) as served:
            yield served
