"""Malformed signals sent with the `temporal` CLI (any Temporal client can send them) are recorded
as `action_rejected`, and the incident carries on."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import subprocess
from pathlib import Path

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from infra.binaries import temporal_cli
from infra.codec import EncryptionCodec, write_new_keys
from starter.codec_server import SreTokens, create_codec_app
from tests.harness import Sandboxes, running_worker
from tests.helpers import events_of, start_incident, until
from tests.policies import fast_policy
from tests.sandbox_servers import serve


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


async def test_signals_with_no_payload_two_payloads_or_an_unopenable_one_never_freeze_the_incident(
    dev_env: WorkflowEnvironment, sandboxes: Sandboxes, tmp_path: Path
):
    """Each of these failed the workflow task forever: no timer fired and no query answered."""
    address = dev_env.client.service_client.config.target_host
    codec = EncryptionCodec(write_new_keys(tmp_path / "ours.yml", "k1"))
    client = await Client.connect(
        address, data_converter=dataclasses.replace(pydantic_data_converter, payload_codec=codec)
    )
    # Another client's key file under the same key id (every generated file once called its key k1).
    stranger = EncryptionCodec(write_new_keys(tmp_path / "theirs.yml", "k1"))
    token = "sre-token-of-the-other-client"
    async with (
        running_worker(client, sandboxes) as running,
        serve(create_codec_app(stranger, SreTokens.of_plain(token), ui_origins=[])) as stranger_codec,
    ):
        handle = await start_incident(running, policy=fast_policy(line_timeouts={"1": "4s", "2": "1h"}))
        sends = [
            ("escalate",),  # an agent who forgot --input
            ("escalate", "--input", '{"agent": "ann", "reason": "a"}', "--input", '{"agent": "bob"}'),
            # An encoding and key id this worker does not hold.
            (
                "acknowledge",
                "--input-meta",
                "encoding=binary/encrypted",
                "--input-meta",
                "encryption-key-id=k9",
                "--input-base64",
                "--input",
                "AAAAAAAAAAAAAAAAAAAAAAAA",
            ),
            # A well-formed payload sealed with a different key under our key id.
            (
                "acknowledge",
                "--input",
                '{"agent": "mallory"}',
                "--codec-endpoint",
                stranger_codec.url,
                "--codec-auth",
                f"Bearer {token}",
            ),
            ("x" * 900, "--input", "{}"),  # an unknown, long signal name (the server caps it near 1,000)
        ]
        for name, *args in sends:
            result = await asyncio.to_thread(signal, address, handle.id, name, *args)
            assert result.returncode == 0, result.stderr
        # The incident answers queries and escalates on time despite all of it.
        state = await until(handle, lambda s: s.line == 2, within=30)
        rejected = events_of(state, "action_rejected")
        reasons = [e.data["reason"] for e in rejected]
        assert len(rejected) == len(sends), reasons
        assert "got 0" in reasons[0] and "got 2" in reasons[1]
        assert "key 'k9'" in reasons[2]
        assert "failed authentication" in reasons[3]
        assert state.assignee is None, "nothing sealed with a stranger's key was believed"
        assert len(rejected[4].data["action"]) <= 101 and "unknown action" in reasons[4]
        assert all(len(reason) <= 300 for reason in reasons)
        history = await handle.fetch_history()
        assert not any(e.HasField("workflow_task_failed_event_attributes") for e in history.events), (
            "no signal made the workflow task fail"
        )
