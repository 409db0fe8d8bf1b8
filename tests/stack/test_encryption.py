"""Customer data is encrypted at rest in Temporal and readable only through the codec server."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import os
import subprocess
from pathlib import Path

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from infra.binaries import temporal_cli
from infra.codec import CodecConfigError, EncryptionCodec, load_keys, payload_codec_from_env, write_new_keys
from starter.codec_server import SreTokens, create_codec_app
from tests.harness import Sandboxes, running_worker
from tests.helpers import start_incident, until
from tests.sandbox_servers import serve

PHONE = "+7 912 345-67-89"


def payload(text: str) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=json.dumps({"contact": text}).encode())


async def test_round_trip_and_rotation(tmp_path: Path):
    old = write_new_keys(tmp_path / "old.yml", "k1")
    encrypted = await EncryptionCodec(old).encode([payload(PHONE)])
    assert PHONE.encode() not in encrypted[0].SerializeToString()
    assert encrypted[0].metadata["encryption-key-id"] == b"k1"
    # Rotation: k2 becomes active, k1 stays to read what it wrote.
    new_key = base64.b64encode(os.urandom(32)).decode()
    (tmp_path / "rotated.yml").write_text(
        f"active: k2\nkeys:\n  k1: {base64.b64encode(old.keys['k1']).decode()}\n  k2: {new_key}\n"
    )
    rotated = EncryptionCodec(load_keys(tmp_path / "rotated.yml"))
    assert (await rotated.decode(encrypted))[0] == payload(PHONE)
    assert (await rotated.encode([payload("x")]))[0].metadata["encryption-key-id"] == b"k2"
    # Payloads from before encryption was switched on stay readable.
    assert (await rotated.decode([payload("plain")]))[0] == payload("plain")


async def test_labels_stay_readable_and_objects_are_sealed(tmp_path: Path):
    codec = EncryptionCodec(write_new_keys(tmp_path / "keys.yml"))
    label = Payload(metadata={"encoding": b"json/plain"}, data=rb'"critical \u00b7 connection_lost \u00b7 customer 42"')
    sealed_object, kept_label = await codec.encode([payload(PHONE), label])
    assert kept_label == label, "summaries and details stay readable in the web UI"
    assert sealed_object.metadata["encoding"] == b"binary/encrypted"


async def test_tampering_and_unknown_keys_are_refused(tmp_path: Path):
    codec = EncryptionCodec(write_new_keys(tmp_path / "a.yml", "a"))
    sealed = (await codec.encode([payload(PHONE)]))[0]
    tampered = Payload(metadata=sealed.metadata, data=sealed.data[:-1] + bytes([sealed.data[-1] ^ 1]))
    with pytest.raises(ValueError, match="failed authentication"):
        await codec.decode([tampered])
    stranger = EncryptionCodec(write_new_keys(tmp_path / "b.yml", "b"))
    with pytest.raises(ValueError, match="key 'a'"):
        await stranger.decode([sealed])


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("active: k9\nkeys: {k1: " + base64.b64encode(b"x" * 32).decode() + "}\n", "active key 'k9'"),
        ("active: k1\nkeys: {k1: c2hvcnQ=}\n", "32 bytes"),
        ("active: k1\nkeys: {k1: '***'}\n", "not base64"),
        ("active: k1\n", "keys"),
    ],
)
def test_a_bad_key_file_names_the_problem(tmp_path: Path, text: str, words: str):
    path = tmp_path / "keys.yml"
    path.write_text(text)
    with pytest.raises(CodecConfigError, match=words):
        payload_codec_from_env({"INCIDENTS_CODEC_KEYS_FILE": str(path)})


def temporal_show(address: str, workflow_id: str, *codec_args: str) -> str:
    result = subprocess.run(
        [
            temporal_cli(),
            "workflow",
            "show",
            "--address",
            address,
            "--workflow-id",
            workflow_id,
            "-o",
            "json",
            *codec_args,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


async def test_contact_is_encrypted_in_temporal_and_readable_through_the_codec_server(
    dev_env: WorkflowEnvironment, sandboxes: Sandboxes, tmp_path: Path
):
    codec = EncryptionCodec(write_new_keys(tmp_path / "keys.yml"))
    address = dev_env.client.service_client.config.target_host
    client = await Client.connect(
        address, data_converter=dataclasses.replace(pydantic_data_converter, payload_codec=codec)
    )
    async with running_worker(client, sandboxes) as running:
        handle = await start_incident(running, contact=PHONE, description="Router dead after the storm")
        await until(handle, lambda s: s.contact == PHONE)
    # What the server stores (and `temporal workflow show` prints) has no trace of the customer's data.
    stored = await asyncio.to_thread(temporal_show, address, handle.id)
    assert PHONE not in stored and PHONE not in _payload_texts(stored)
    assert "Router dead" not in _payload_texts(stored)
    assert base64.b64encode(b"binary/encrypted").decode() in stored
    notification = (await sandboxes.notifications(ticket_id=handle.id, recipient="customer"))[0]
    assert notification["contact"] == PHONE, "the activity itself saw the decrypted contact"

    token = "sre-token-for-the-test"
    app = create_codec_app(codec, SreTokens.of_plain(token), ui_origins=["http://localhost:8233"])
    async with serve(app) as server:
        decoded = await asyncio.to_thread(
            temporal_show, address, handle.id, "--codec-endpoint", server.url, "--codec-auth", f"Bearer {token}"
        )
        readable = _payload_texts(decoded)
        assert PHONE in readable and "Router dead" in readable
        through_ui_path = await sandboxes.http.post(
            f"{server.url}/sre/{token}/decode", json={"payloads": [json.loads(_first_input(stored))]}
        )
        assert (
            through_ui_path.status_code == 200
            and PHONE in base64.b64decode(through_ui_path.json()["payloads"][0]["data"]).decode()
        )
        for headers, url in (
            ({}, f"{server.url}/decode"),
            ({"Authorization": "Bearer wrong"}, f"{server.url}/decode"),
            ({}, f"{server.url}/sre/wrong/decode"),
        ):
            refused = await sandboxes.http.post(url, json={"payloads": []}, headers=headers)
            assert refused.status_code == 401
        preflight = await sandboxes.http.options(
            f"{server.url}/decode",
            headers={
                "Origin": "http://localhost:8233",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type",
            },
        )
        assert preflight.headers.get("access-control-allow-origin") == "http://localhost:8233"


def _first_input(show_json: str) -> str:
    events = json.loads(show_json)["events"]
    started = next(e for e in events if "workflowExecutionStartedEventAttributes" in e)
    return json.dumps(started["workflowExecutionStartedEventAttributes"]["input"]["payloads"][0])


def _payload_texts(show_json: str) -> str:
    """Every payload's data in `temporal workflow show -o json`, base64-decoded, as one text."""
    texts: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if "metadata" in node and isinstance(node.get("data"), str):
                texts.append(base64.b64decode(node["data"]).decode("utf-8", "replace"))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads(show_json))
    return "\n".join(texts)
