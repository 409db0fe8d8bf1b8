"""What the tiers share. Each tier's own environment is in its folder's conftest.py: tests/unit (no
server), tests/workflow (the time-skipping server), tests/stack (the dev server, the whole stack, the CLI
and the HTTP API), tests/browser (the web UI in chromium)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.harness import Sandboxes, served_sandboxes


@pytest.fixture
async def sandboxes() -> AsyncIterator[Sandboxes]:
    """The payment provider and the notification sink on real sockets, fresh for each test."""
    async with served_sandboxes() as boxes:
        yield boxes
