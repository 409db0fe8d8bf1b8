"""The time-skipping test server, started the one way the workflow tier and the history recorder use it."""

from __future__ import annotations

from datetime import timedelta

from temporalio.api.testservice.v1 import SleepRequest
from temporalio.testing import WorkflowEnvironment

from infra.binaries import temporal_test_server
from infra.connection import data_converter
from tests.harness import register_search_attributes

# The SDK's `sleep` sends its skip with Core's default deadline for a call (30 s of real time). A skip
# of hours waits, in real time, for every workflow task due on the way; on a loaded machine a long
# test's skip once outlived that deadline ("Timeout expired") with nothing wrong but the machine.
SKIP_DEADLINE = timedelta(minutes=5)


async def time_skipping_environment() -> WorkflowEnvironment:
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=data_converter(), test_server_existing_path=temporal_test_server()
    )
    await register_search_attributes(env)

    async def sleep(duration: timedelta | float) -> None:
        request = SleepRequest()
        request.duration.FromTimedelta(duration if isinstance(duration, timedelta) else timedelta(seconds=duration))
        await env.client.test_service.unlock_time_skipping_with_sleep(request, timeout=SKIP_DEADLINE)

    env.sleep = sleep  # type: ignore[method-assign]
    return env
