"""The webhook secret (issue 15): what the signature binds, rotation with two accepted secrets, a 401
healed by re-reading the secret, and a worker that refuses the public dev secret outside the dev stack.

Real HTTP to the notification sink, real workers on the time-skipping server, a real worker process."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from activities.notifications import NotificationActivities
from activities.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from sandboxes import notifications as notification_sink
from sandboxes.faults import Faults
from tests.harness import WEBHOOK_SECRET, RunningWorker, Sandboxes
from tests.helpers import send, settled, start_incident
from tests.sandbox_servers import free_port, serve
from workers.settings import DEV_WEBHOOK_SECRET, WorkerSettings
from workers.worker import build_worker
from workflows.contracts import Notification

ROOT = Path(__file__).resolve().parents[2]
OLD, NEW = b"old-webhook-secret-0123456789", b"new-webhook-secret-9876543210"


def notification(key: str) -> Notification:
    return Notification(id=key, ticket_id=key.split(":")[0], recipient="customer", kind="k", message="m")


# --- what the signature binds ---


async def test_a_captured_webhook_is_refused_under_a_new_idempotency_key_or_after_the_window(sandboxes: Sandboxes):
    sent: list[httpx.Request] = []

    async def capture(request: httpx.Request) -> None:
        sent.append(request)

    async with httpx.AsyncClient(timeout=10, event_hooks={"request": [capture]}) as http:
        await NotificationActivities(http, sandboxes.notify_url, WEBHOOK_SECRET.encode()).deliver(notification("R1:1"))
    (original,) = sent
    body, headers = original.content, dict(original.headers)
    # The same signed body under a new key would be delivered a second time: the key is signed.
    replayed = await sandboxes.http.post(
        sandboxes.notify_url, content=body, headers={**headers, "idempotency-key": "R1:2"}
    )
    assert replayed.status_code == 401, replayed.text
    # A forged signature, and an old signed request replayed after the window, are refused too.
    forged = await sandboxes.http.post(
        sandboxes.notify_url, content=body, headers={**headers, SIGNATURE_HEADER.lower(): "sha256=" + "0" * 64}
    )
    assert forged.status_code == 401
    stale = sign(WEBHOOK_SECRET.encode(), "R1:3", body, timestamp=int(time.time()) - 3600)
    late = await sandboxes.http.post(sandboxes.notify_url, content=body, headers=stale)
    assert late.status_code == 401 and TIMESTAMP_HEADER in late.text
    # The original, sent again as a whole, is a duplicate: delivered once.
    again = await sandboxes.http.post(sandboxes.notify_url, content=body, headers=headers)
    assert again.status_code == 200 and again.json() == {"status": "duplicate"}
    assert [n["id"] for n in await sandboxes.notifications(ticket_id="R1")] == ["R1:1"]


# --- rotation and a 401 healed by re-reading the secret ---


@asynccontextmanager
async def sink_and_worker(
    env: WorkflowEnvironment, accepted: list[bytes], secret_file: Path
) -> AsyncIterator[tuple[Sandboxes, RunningWorker]]:
    """A sink accepting `accepted`, a worker signing with what `secret_file` holds (WEBHOOK_SECRET_FILE)."""
    async with (
        serve(notification_sink.create_app(accepted[0] if len(accepted) == 1 else accepted, Faults())) as sink,
        httpx.AsyncClient(timeout=10) as http,
    ):
        boxes = Sandboxes("http://127.0.0.1:1", f"{sink.url}/notifications", http)
        settings = WorkerSettings(NOTIFY_URL=boxes.notify_url, WEBHOOK_SECRET_FILE=secret_file)
        queue = f"incidents-test-{uuid.uuid4().hex[:8]}"
        async with build_worker(env.client, http, settings, task_queue=queue) as worker:
            running = RunningWorker(env.client, queue, worker)
            try:
                yield boxes, running
            finally:
                await running.terminate_running()


async def eventually(check: Callable[[], Any], within: float = 30.0) -> Any:
    deadline = time.monotonic() + within
    while True:
        result = await check()
        if result:
            return result
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)


async def sink_get(boxes: Sandboxes, path: str) -> Any:
    return (await boxes.http.get(boxes.notify_url.rsplit("/", 1)[0] + path)).json()


async def test_a_rotation_delivers_every_notification_once_signed_first_with_the_old_then_the_new_secret(
    time_env: WorkflowEnvironment, tmp_path: Path
):
    secret_file = tmp_path / "webhook-secret"
    secret_file.write_bytes(OLD + b"\n")
    async with sink_and_worker(time_env, [NEW, OLD], secret_file) as (boxes, running):
        handle = await start_incident(running)
        state = await settled(handle)
        before = {n["id"] for n in await boxes.notifications()}
        assert before, "opening notifies"
        secret_file.write_bytes(NEW + b"\n")  # the sender's side of the rotation: no restart
        await send(handle, "acknowledge", agent="ann")
        await send(handle, "resolve", agent="ann", resolution="done")
        state = await settled(handle)
        delivered = await boxes.notifications()
        ids = [n["id"] for n in delivered]
        signed_with = await sink_get(boxes, "/_sandbox/signed-with")
    assert state.notifications_failed == 0 and "notification_failed" not in [e.type.value for e in state.events]
    assert len(ids) == len(set(ids)) > len(before), "every notification once, and some after the rotation"
    assert all(n["ticket_id"] == state.ticket_id for n in delivered)
    assert {signed_with[key] for key in before} == {1}, "signed with the old secret before the rotation"
    assert {signed_with[key] for key in set(ids) - before} == {0}, "and with the new one after it"


async def test_a_401_after_the_receiver_dropped_our_secret_is_retried_with_the_reloaded_secret_not_given_up(
    time_env: WorkflowEnvironment, tmp_path: Path
):
    secret_file = tmp_path / "webhook-secret"
    secret_file.write_bytes(OLD)
    # The receiver rotated first and no longer accepts the old secret the worker signs with.
    async with sink_and_worker(time_env, [NEW], secret_file) as (boxes, running):
        handle = await start_incident(running)
        await eventually(lambda: sink_get(boxes, "/_sandbox/rejected"))  # a 401
        secret_file.write_bytes(NEW)  # the sender's rotation catches up
        state = await settled(handle, within=30)
        assert state.notifications_failed == 0, "the 401 was not recorded as a final failure"
        delivered = await eventually(boxes.notifications)
        rejected = await sink_get(boxes, "/_sandbox/rejected")
    assert "notification_failed" not in [e.type.value for e in state.events]
    ids = [n["id"] for n in delivered]
    assert ids and len(ids) == len(set(ids))
    assert rejected and all(r == "signature does not match" for r in rejected)


async def test_the_notify_sandbox_accepts_the_previous_secret_during_a_rotation_and_not_after(tmp_path: Path):
    """`incidents sandbox notify` as a process: its secret file and its previous-secret file, both re-read."""
    current, previous = tmp_path / "webhook-secret", tmp_path / "webhook-previous-secret"
    current.write_bytes(NEW + b"\n")
    previous.write_bytes(OLD + b"\n")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WEBHOOK_", "INCIDENTS_DEV"))}
    env |= {"WEBHOOK_SECRET_FILE": str(current), "WEBHOOK_PREVIOUS_SECRET_FILE": str(previous)}
    sink = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "starter.cli", "sandbox", "notify", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(timeout=10) as http:

            async def up() -> bool:
                try:
                    return (await http.get(f"{url}/healthz")).status_code == 200
                except httpx.HTTPError:
                    assert sink.returncode is None, f"the sink exited ({sink.returncode})"
                    return False

            await eventually(up)

            async def post(secret: bytes, key: str) -> int:
                body = notification(key).model_dump_json().encode()
                return (
                    await http.post(f"{url}/notifications", content=body, headers=sign(secret, key, body))
                ).status_code

            assert await post(OLD, "rot:1") == 202, "the previous secret, during the rotation"
            assert await post(NEW, "rot:2") == 202
            assert await post(b"another-secret-0123456789", "rot:3") == 401
            assert (await http.get(f"{url}/_sandbox/signed-with")).json() == {"rot:1": 1, "rot:2": 0}
            previous.unlink()  # the rotation is over: no restart
            assert await post(OLD, "rot:4") == 401
            assert await post(NEW, "rot:5") == 202
            third = b"third-webhook-secret-0123456789"
            current.write_bytes(third)  # the next rotation's new secret, read again as the file changes
            assert await post(third, "rot:6") == 202
    finally:
        sink.terminate()
        await asyncio.wait_for(sink.wait(), timeout=30)


# --- the worker refuses the public dev secret outside the dev stack ---


def run_worker_process(argv: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("WEBHOOK_", "TEMPORAL_", "INCIDENTS_DEV")) and k not in ("NOTIFY_URL", "PAYMENTS_URL")
    }
    # Nothing listens there: a worker that passes the check fails to connect instead, naming the server.
    clean |= {"TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}", "INCIDENTS_LOG_FORMAT": "console", **env}
    return subprocess.run(argv, cwd=ROOT, env=clean, capture_output=True, text=True, timeout=120)


WORKER_MAIN = [sys.executable, "-m", "workers.main"]
INCIDENTS_WORKER = [sys.executable, "-m", "starter.cli", "worker"]


@pytest.mark.parametrize(
    ("argv", "env", "named"),
    [
        (WORKER_MAIN, {"WEBHOOK_SECRET": DEV_WEBHOOK_SECRET}, "WEBHOOK_SECRET is the public dev secret"),
        (INCIDENTS_WORKER, {"WEBHOOK_SECRET": DEV_WEBHOOK_SECRET}, "WEBHOOK_SECRET is the public dev secret"),
        (INCIDENTS_WORKER, {}, "WEBHOOK_SECRET is not set"),
        (INCIDENTS_WORKER, {"WEBHOOK_SECRET": "short"}, "WEBHOOK_SECRET is shorter than 16"),
        (INCIDENTS_WORKER, {"INCIDENTS_DEV_CONFIG": str(ROOT / "temporal-dev.yml")}, "public dev secret"),
    ],
)
def test_the_worker_refuses_the_public_dev_secret_outside_the_dev_stack(argv, env, named):
    done = run_worker_process(argv, **env)
    assert done.returncode == 2, done.stderr[-2000:]
    assert named in done.stderr


def test_the_worker_refuses_an_empty_secret_file_naming_it(tmp_path: Path):
    empty = tmp_path / "secret"
    empty.write_text("\n")
    done = run_worker_process(INCIDENTS_WORKER, WEBHOOK_SECRET_FILE=str(empty))
    assert done.returncode == 2 and f"WEBHOOK_SECRET_FILE ({empty})" in done.stderr


@pytest.mark.parametrize(
    "env",
    [
        {"WEBHOOK_SECRET": DEV_WEBHOOK_SECRET, "INCIDENTS_DEV_STACK": "1"},
        {"WEBHOOK_SECRET": "a-real-secret-" + "x" * 20},
    ],
)
def test_the_dev_stack_marker_or_a_real_secret_passes_the_check(env):
    done = run_worker_process(WORKER_MAIN, **env)
    assert done.returncode != 0, "nothing listens at TEMPORAL_ADDRESS"
    assert "WEBHOOK_SECRET" not in done.stderr, done.stderr[-2000:]
    assert json.dumps(env["WEBHOOK_SECRET"])[1:-1] not in done.stderr + done.stdout, "the secret is never printed"
