"""The stack tier: the real Temporal dev server (one per session, on a SQLite file) and what runs on it:
a worker in the test process, the HTTP API on a real socket; modules here also start the whole stack,
the CLI and the benchmark as child processes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from infra.binaries import temporal_cli
from infra.connection import data_converter
from starter.incidents import IncidentService
from tests.harness import Sandboxes, running_worker
from tests.policies import fast_policy
from tests.served_api import Api, served_api
from workflows import search_attributes


@pytest.fixture(scope="session")
async def dev_env(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[WorkflowEnvironment]:
    db = tmp_path_factory.mktemp("temporal") / "temporal.sqlite"
    env = await WorkflowEnvironment.start_local(
        data_converter=data_converter(),
        dev_server_existing_path=temporal_cli(),
        dev_server_database_filename=str(db),
        search_attributes=list(search_attributes.ALL_KEYS),
        dev_server_extra_args=[
            *["--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal"],
            *search_attributes.reported_problems_flags(),
        ],
    )
    yield env
    await env.shutdown()


@pytest.fixture
async def api(dev_env: WorkflowEnvironment, sandboxes: Sandboxes, tmp_path: Path) -> AsyncIterator[Api]:
    """The HTTP API over a real socket, on the dev server, with a worker of its own."""
    async with running_worker(dev_env.client, sandboxes) as running:
        # Line timers of an hour: nothing escalates by itself while a test looks.
        policy = fast_policy(line_timeouts={"1": "1h", "2": "1h"})
        service = IncidentService(running.client, policy=policy, task_queue=running.task_queue)
        async with served_api(service, tmp_path) as served:
            yield served
