"""Malformed signals sent with the `temporal` CLI (any Temporal client can send them) are recorded
as `action_rejected`, and the incident carries on."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from tests.conftest import Sandboxes, running_worker
from tests.helpers import events_of, start_incident, until
from tests.policies import fast_policy
from workers.binaries import temporal_cli


def signal(address: str, workflow_id: str, name: str, *input_args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            temporal_cli(),
            "workflow",
            "signal",
            "--address",
            address,
            "--workflow-id",
            workflow_id,
            "--name",
            name,
            *input_args,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


async def test_malformed_cli_signals_are_rejected_and_recorded(
    dev_env: WorkflowEnvironment, sandboxes: Sandboxes, tmp_path: Path
):
    address = dev_env.client.service_client.config.target_host
    huge = tmp_path / "huge.json"
    huge.write_text(json.dumps({"agent": "ann", "text": "x" * 100_000}))
    sends = [
        ("acknowledge", "--input", json.dumps({"agent": 42})),  # wrong type
        ("escalate", "--input", json.dumps({"agent": "ann"})),  # missing field
        ("resolve", "--input", json.dumps({"agent": "ann", "resolution": "ok", "priority": "high"})),  # unknown field
        ("add_note", "--input-file", str(huge)),  # huge text
        ("feedback", "--input", json.dumps([5])),  # not an object
        ("feedback", "--input", "null"),  # nothing at all
        ("approve_refund", "--input", json.dumps({"agent": "ann", "line": "two"})),
    ]
    async with running_worker(dev_env.client, sandboxes) as running:
        handle = await start_incident(running, policy=fast_policy(line_timeouts={"1": "1h", "2": "1h"}))
        for name, *args in sends:
            result = await asyncio.to_thread(signal, address, handle.id, name, *args)
            assert result.returncode == 0, result.stderr
        ok = await asyncio.to_thread(signal, address, handle.id, "acknowledge", "--input", '{"agent": "ann"}')
        assert ok.returncode == 0
        state = await until(handle, lambda s: s.assignee == "ann")
        rejected = {(e.data["action"], e.data["reason"].split(":")[0]) for e in events_of(state, "action_rejected")}
        assert len(events_of(state, "action_rejected")) == len(sends)
        assert ("acknowledge", "agent") in rejected
        assert ("escalate", "reason") in rejected
        assert ("resolve", "priority") in rejected
        assert ("add_note", "text") in rejected
        assert ("approve_refund", "line") in rejected
        reasons = [e.data["reason"] for e in events_of(state, "action_rejected") if e.data["action"] == "feedback"]
        assert len(reasons) == 2 and all("JSON object" in r for r in reasons)
        assert state.status == "open" and state.notes == 0
        history = await handle.fetch_history()
        assert not any(e.HasField("workflow_task_failed_event_attributes") for e in history.events), (
            "no signal made the workflow task fail"
        )
