"""The unit tier: pure Python, no server of any kind. The domain, the settings, the catalogue, replays of
stored histories; each test's environment is its own process's, which `clean_env` empties of settings."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any, NoReturn

import pytest
from temporalio.testing import WorkflowEnvironment


@pytest.fixture(autouse=True)
def no_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """A test here that starts a server (a socket that listens, a Temporal environment) fails naming the
    tier it belongs in, so `pytest tests/unit` stays quick and needs nothing running."""

    def refused(*_: Any, **__: Any) -> NoReturn:
        raise AssertionError("tests/unit starts no server: move this test to tests/workflow or tests/stack")

    monkeypatch.setattr(socket.socket, "listen", refused)
    monkeypatch.setattr(WorkflowEnvironment, "start_local", refused)
    monkeypatch.setattr(WorkflowEnvironment, "start_time_skipping", refused)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """This process's environment without any setting of ours: what a test sets is all there is."""
    for name in list(os.environ):
        if name.startswith(("TEMPORAL_", "INCIDENTS_", "INCIDENT_", "OTEL_")) or name in (
            "PAYMENTS_URL",
            "NOTIFY_URL",
            "WEBHOOK_SECRET",
        ):
            monkeypatch.delenv(name)
    monkeypatch.setenv("TEMPORAL_CONFIG_FILE", str(tmp_path / "no-temporal.toml"))  # no profile names a server
    return monkeypatch
