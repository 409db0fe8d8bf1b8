"""Structured logs: every worker line names its incident, replays do not log twice, secrets never show."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from infra.connection import data_converter
from infra.logging_setup import configure_logging
from starter.api import create_app
from starter.auth import Role, load_tokens, write_dev_tokens
from starter.incidents import IncidentService
from tests.harness import WEBHOOK_SECRET, Sandboxes, running_worker
from tests.helpers import send, start_incident
from tests.policies import fast_policy
from tests.sandbox_servers import serve
from workflows.incident_workflow import IncidentWorkflow


@contextlib.contextmanager
def captured_logs(level: str) -> Iterator[io.StringIO]:
    """The process's logging, configured as production does (JSON lines), into a string."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    stream = io.StringIO()
    configure_logging("json", level, stream)
    try:
        yield stream
    finally:
        root.handlers = saved[0]
        root.setLevel(saved[1])


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    with captured_logs("INFO") as stream:
        yield stream


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


async def test_api_tokens_and_the_webhook_secret_stay_out_of_every_line_even_at_debug(
    dev_env: WorkflowEnvironment, sandboxes: Sandboxes, tmp_path: Path
):
    with captured_logs("DEBUG") as stream:
        issued = {role: token for role, token in write_dev_tokens(tmp_path / "tokens.yml").values()}  # dev-agent last
        async with running_worker(dev_env.client, sandboxes) as running:
            service = IncidentService(running.client, policy=fast_policy(), task_queue=running.task_queue)
            async with serve(create_app(service, load_tokens(tmp_path / "tokens.yml"))) as api:
                opened = await sandboxes.http.post(
                    f"{api.url}/incidents",
                    json={
                        "customer_id": f"logs-{uuid.uuid4().hex[:6]}",
                        "category": "tariff_change",
                        "description": "d",
                        "channel": "app",
                        "contact": "bob@example.com",
                    },
                    headers={"Authorization": f"Bearer {issued[Role.service]}"},
                )
                assert opened.status_code == 201, opened.text
                ticket = opened.json()["ticket_id"]
                acknowledged = await sandboxes.http.post(
                    f"{api.url}/incidents/{ticket}/acknowledge",
                    json={"agent": "ann"},
                    headers={"Authorization": f"Bearer {issued[Role.agent]}"},
                )
                assert acknowledged.status_code == 200, acknowledged.text
                refused = await sandboxes.http.post(
                    f"{api.url}/incidents/{ticket}/acknowledge",
                    json={"agent": "ann"},
                    headers={"Authorization": f"Bearer {issued[Role.viewer]}"},
                )
                assert refused.status_code == 403, refused.text
    text = stream.getvalue()
    assert any(line["level"] == "debug" for line in parsed(stream)), "debug lines were captured too"
    assert any(line.get("ticket_id") == ticket and line["event"] == "acknowledged" for line in parsed(stream))
    for secret in [*issued.values(), WEBHOOK_SECRET]:
        assert secret not in text, "a token or the webhook secret reached the log"
    assert "bob@example.com" not in text, "no customer contact in the logs"
