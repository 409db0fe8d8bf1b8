"""A notification sink: receives the signed webhooks a real notifier (SMS, e-mail, the agents' chat)
would get, verifies each signature (over the `Idempotency-Key`, the time and the body, under any of the
secrets it accepts: the current and, during a rotation, the previous), drops repeats by that key, and lists
what arrived."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable, Sequence
from typing import Annotated, Any

from fastapi import FastAPI, Header, Request
from fastapi.responses import JSONResponse

from activities.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from sandboxes.faults import Faults, FaultState

ENV_PREFIX = "SANDBOX_NOTIFY_"


def _always(secrets: bytes | Sequence[bytes]) -> Callable[[], Sequence[bytes]]:
    fixed = [secrets] if isinstance(secrets, bytes) else list(secrets)
    return lambda: fixed


def create_app(
    secrets: bytes | Sequence[bytes] | Callable[[], Sequence[bytes]], faults: Faults | None = None
) -> FastAPI:
    """`secrets`: the one it accepts, or several (during a rotation: the new and the old), or a function that
    says which at each request (`activities.signing.AcceptedSecrets`: files re-read as they change)."""
    accepted_now = secrets if callable(secrets) else _always(secrets)
    if not accepted_now() or not all(accepted_now()):
        raise ValueError("the notification sink needs at least one non-empty secret")
    app = FastAPI(title="Notification sink sandbox", version="1")
    state = FaultState(faults if faults is not None else Faults.from_env(os.environ, ENV_PREFIX))
    received: dict[str, dict[str, Any]] = {}
    rejected_signatures: list[str] = []
    signed_with: dict[str, int] = {}

    @app.post("/notifications", status_code=202)
    async def receive(
        request: Request,
        idempotency_key: Annotated[str | None, Header()] = None,
    ) -> JSONResponse:
        body = await request.body()
        signature, timestamp = request.headers.get(SIGNATURE_HEADER), request.headers.get(TIMESTAMP_HEADER)
        accepted = list(accepted_now())
        problem = verify(accepted, idempotency_key, body, signature, timestamp)
        if problem is not None:
            rejected_signatures.append(problem)
            return JSONResponse({"error": {"code": "bad_signature", "message": problem}}, status_code=401)
        key = idempotency_key or ""  # signed, so present
        attempt = state.count_attempt(key)
        if state.faults.delay_seconds:  # counted on arrival, answered late: a slow provider
            await asyncio.sleep(state.faults.delay_seconds)
        if state.is_down() or state.should_fail(attempt):
            return JSONResponse({"error": {"code": "unavailable", "message": "sandbox fault"}}, status_code=503)
        try:
            payload = json.loads(body)
        except ValueError:
            return JSONResponse({"error": {"code": "bad_json", "message": "body is not JSON"}}, status_code=400)
        if key in received:
            return JSONResponse({"status": "duplicate"}, status_code=200)
        received[key] = payload
        # Which secret signed it (0: the current, 1: the previous): the old one may go once none is signed with it.
        signed_with[key] = next(
            i for i, one in enumerate(accepted) if verify(one, key, body, signature, timestamp) is None
        )
        return JSONResponse({"status": "accepted"}, status_code=202)

    @app.get("/notifications")
    async def listing(ticket_id: str | None = None, recipient: str | None = None) -> list[dict[str, Any]]:
        return [
            n
            for n in received.values()
            if (ticket_id is None or n.get("ticket_id") == ticket_id)
            and (recipient is None or n.get("recipient") == recipient)
        ]

    @app.get("/_sandbox/rejected")
    async def rejected() -> list[str]:
        return list(rejected_signatures)

    @app.get("/_sandbox/signed-with")
    async def which_secret() -> dict[str, int]:
        return dict(signed_with)

    @app.get("/_sandbox/faults")
    async def get_faults() -> Faults:
        return state.faults

    @app.put("/_sandbox/faults")
    async def put_faults(faults: Faults) -> Faults:
        state.set(faults)
        return faults

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"ok": True, "received": len(received)}

    return app
