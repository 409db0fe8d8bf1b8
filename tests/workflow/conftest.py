"""The workflow tier: the real Temporal time-skipping test server, so hours-long SLAs pass in no time."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from temporalio.testing import WorkflowEnvironment

from tests.harness import RunningWorker, Sandboxes, running_worker
from tests.time_skipping import time_skipping_environment


@pytest.fixture
async def time_env() -> AsyncIterator[WorkflowEnvironment]:
    """A fresh time-skipping server per test: an activity abandoned by one test would freeze the next one's clock."""
    env = await time_skipping_environment()
    yield env
    await env.shutdown()


@pytest.fixture
async def skipping(time_env: WorkflowEnvironment, sandboxes: Sandboxes) -> AsyncIterator[RunningWorker]:
    """A worker on the time-skipping server, with real sandboxes over HTTP."""
    async with running_worker(time_env.client, sandboxes) as running:
        yield running
