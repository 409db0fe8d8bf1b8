"""The browser tier: the Temporal web UI of a dev server, read in Debian's chromium (`make browser`)
through Playwright, which never downloads a browser here."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from temporalio.testing import WorkflowEnvironment

from infra.binaries import temporal_cli
from tests.harness import dev_server
from tests.sandbox_servers import free_port
from workflows import search_attributes

SRE_TOKEN = "sre-browser-test-token"


@pytest.fixture(scope="session")
async def dev_env(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[WorkflowEnvironment]:
    """The dev server the agent desk's pages run on (the web UI's own server is `ui`'s)."""
    async with dev_server(tmp_path_factory.mktemp("temporal") / "temporal.sqlite") as env:
        yield env


@pytest.fixture
async def ui() -> AsyncIterator[tuple[WorkflowEnvironment, str, int, str]]:
    """A dev server with its web UI, the UI's URL, and the port and SRE token its codec endpoint expects."""
    ui_port, codec_port = free_port(), free_port()
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli(),
        ui=True,
        ui_port=ui_port,
        search_attributes=list(search_attributes.ALL_KEYS),
        dev_server_extra_args=["--ui-codec-endpoint", f"http://127.0.0.1:{codec_port}/sre/{SRE_TOKEN}"],
    )
    yield env, f"http://127.0.0.1:{ui_port}", codec_port, SRE_TOKEN
    await env.shutdown()
