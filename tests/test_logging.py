"""Structured logs: every worker line names its incident, replays do not log twice, secrets never show."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from starter.connection import data_converter
from tests.conftest import WEBHOOK_SECRET, Sandboxes, running_worker
from tests.helpers import send, start_incident
from workers.logging_setup import configure_logging
from workflows.incident_workflow import IncidentWorkflow


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    stream = io.StringIO()
    configure_logging("json", "INFO", stream)
    yield stream
    root.handlers = saved[0]
    root.setLevel(saved[1])


def parsed(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{")]


async def test_worker_lines_carry_the_incident_and_replays_stay_silent(
    dev_env: WorkflowEnvironment, sandboxes: Sandboxes, log_lines: io.StringIO
):
    async with running_worker(dev_env.client, sandboxes) as running:
        handle = await start_incident(running, category="tariff_change", contact="ann@example.com")
        await send(handle, "acknowledge", agent="ann")
        await send(handle, "resolve", agent="ann", resolution="done")
        await handle.result()
    lines = [line for line in parsed(log_lines) if line.get("workflow_id") == handle.id]
    run_id = handle.result_run_id
    workflow_lines = [line for line in lines if line.get("activity") is None]
    assert {"opened", "acknowledged", "resolved", "closed"} <= {line["event"] for line in workflow_lines}
    for line in workflow_lines:
        assert line["ticket_id"] == handle.id and line["run_id"] == run_id and line["level"] == "info"
    activity_lines = [line for line in lines if line.get("activity") == "send_notifications"]
    assert activity_lines and all(line["attempt"] == 1 and line["ticket_id"] == handle.id for line in activity_lines)
    assert "ann@example.com" not in log_lines.getvalue(), "no customer contact in the logs"
    assert WEBHOOK_SECRET not in log_lines.getvalue()

    before = len(parsed(log_lines))
    history = await handle.fetch_history()
    result = await Replayer(workflows=[IncidentWorkflow], data_converter=data_converter()).replay_workflow(history)
    assert result.replay_failure is None
    assert len(parsed(log_lines)) == before, "replaying the history wrote no log line again"


def test_secrets_never_reach_the_log(log_lines: io.StringIO):
    logger = logging.getLogger("incidents.test")
    logger.info(
        "calling the provider",
        extra={
            "api_token": "tok-123",
            "webhook_secret": WEBHOOK_SECRET,
            "authorization": "Bearer tok-123",
            "ticket_id": "INC-1",
        },
    )
    text = log_lines.getvalue()
    assert "tok-123" not in text and WEBHOOK_SECRET not in text
    line = parsed(log_lines)[-1]
    assert line["api_token"] == line["webhook_secret"] == line["authorization"] == "[redacted]"
    assert line["ticket_id"] == "INC-1"
