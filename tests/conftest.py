"""What the tiers share. Each tier's own environment is in its folder's conftest.py: tests/unit (no
server), tests/workflow (the time-skipping server), tests/stack (the dev server, the whole stack, the CLI
and the HTTP API), tests/browser (the web UI in chromium)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.harness import Sandboxes, served_sandboxes


@pytest.fixture
async def sandboxes() -> AsyncIterator[Sandboxes]:
    """The payment provider and the notification sink on real sockets, fresh for each test."""
    async with served_sandboxes() as boxes:
        yield boxes


@pytest.fixture(autouse=True)
def logging_as_it_was() -> Iterator[None]:
    """A test that runs a CLI command configures the process's logging (root handlers, quiet libraries):
    put it back, so that no later test depends on the order the tiers run in."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {
        name: logger.level
        for name, logger in logging.Logger.manager.loggerDict.items()
        if isinstance(logger, logging.Logger)
    }
    yield
    root.handlers[:], root.level = handlers, level
    for name, logger in logging.Logger.manager.loggerDict.items():
        if isinstance(logger, logging.Logger):
            logger.setLevel(levels.get(name, logging.NOTSET))
