"""A payment provider sandbox that speaks a Stripe-like protocol over real HTTP.

`POST /refunds` with an `Idempotency-Key` header pays once per key; a repeat
with the same body gets the key's first answer back (`Idempotent-Replayed:
true`), a business rejection too (as Stripe does: a key refused stays refused,
so a retry needs a new key); a repeat with a different body is refused.
`GET /refunds` lists the ledger (`?reference=`, `?idempotency_key=`,
`?charge=` filter it). Faults come from SANDBOX_PAYMENTS_FAIL_FIRST,
SANDBOX_PAYMENTS_DOWN_FOR, SANDBOX_PAYMENTS_REJECT and
SANDBOX_PAYMENTS_REJECT_AFTER_PAYING, or `PUT /_sandbox/faults` at run time.
Answers of 503 (a fault, the provider "down") are not kept: the key was never
processed.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import secrets
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Header
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from sandboxes.faults import Faults, FaultState

ENV_PREFIX = "SANDBOX_PAYMENTS_"


class RefundBody(BaseModel):
    kind: Literal["refund", "credit"] = "refund"
    reference: str = Field(min_length=1, max_length=200)
    customer_id: str = Field(min_length=1, max_length=200)
    amount: Decimal = Field(gt=0, decimal_places=2)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    charge: str | None = Field(default=None, max_length=200, description="the charge this refund reverses")


class LedgerEntry(BaseModel):
    id: str
    idempotency_key: str
    kind: str
    reference: str
    customer_id: str
    amount: str
    currency: str
    status: str
    created_at: datetime
    charge: str | None = None


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def create_app(faults: Faults | None = None, ledger_file: str | Path | None = None) -> FastAPI:
    app = FastAPI(title="Payment provider sandbox", version="1")
    state = FaultState(faults if faults is not None else Faults.from_env(os.environ, ENV_PREFIX))
    ledger_path = Path(ledger_file) if ledger_file else None
    ledger: dict[str, LedgerEntry] = {}
    fingerprints: dict[str, str] = {}
    # Keys answered with a business rejection: (fingerprint, status, error code, message), answered again so.
    refusals: dict[str, tuple[str, int, str, str]] = {}
    if ledger_path is not None and ledger_path.exists():
        for item in json.loads(ledger_path.read_text()):
            entry = LedgerEntry.model_validate(item["entry"])
            ledger[entry.idempotency_key] = entry
            fingerprints[entry.idempotency_key] = item["fingerprint"]

    def persist() -> None:
        if ledger_path is None:
            return
        items = [{"entry": e.model_dump(mode="json"), "fingerprint": fingerprints[k]} for k, e in ledger.items()]
        tmp = ledger_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(items))
        tmp.replace(ledger_path)

    @app.post("/refunds", status_code=201)
    async def create_refund(body: RefundBody, idempotency_key: Annotated[str | None, Header()] = None) -> JSONResponse:
        if not idempotency_key:
            return _error(400, "idempotency_key_missing", "send an Idempotency-Key header")
        attempt = state.count_attempt(idempotency_key)
        if state.faults.delay_seconds:  # counted on arrival, answered late: a slow provider
            await asyncio.sleep(state.faults.delay_seconds)
        if state.is_down() or state.should_fail(attempt):
            return _error(503, "unavailable", f"sandbox fault injected (attempt {attempt})")
        # Without the optional fields unset: a request of before they existed keeps its fingerprint.
        fingerprint = hashlib.sha256(body.model_dump_json(exclude_none=True).encode()).hexdigest()
        refused = refusals.get(idempotency_key)
        if refused is not None:
            refused_fingerprint, status, code, message = refused
            if refused_fingerprint != fingerprint:
                return _error(422, "idempotency_key_reused", "this key was used with a different request")
            answer = _error(status, code, message)
            answer.headers["Idempotent-Replayed"] = "true"
            return answer
        existing = ledger.get(idempotency_key)
        if existing is not None:
            if fingerprints[idempotency_key] != fingerprint:
                return _error(422, "idempotency_key_reused", "this key was used with a different request")
            return JSONResponse(
                existing.model_dump(mode="json"), status_code=200, headers={"Idempotent-Replayed": "true"}
            )
        if state.faults.reject:
            refusals[idempotency_key] = (fingerprint, 402, "card_closed", "the customer's card is closed")
            return _error(402, "card_closed", "the customer's card is closed")
        entry = LedgerEntry(
            id=f"pay_{secrets.token_hex(8)}",
            idempotency_key=idempotency_key,
            kind=body.kind,
            reference=body.reference,
            customer_id=body.customer_id,
            amount=f"{body.amount:.2f}",
            currency=body.currency,
            status="succeeded",
            created_at=datetime.now(UTC),
            charge=body.charge,
        )
        ledger[idempotency_key] = entry
        fingerprints[idempotency_key] = fingerprint
        persist()
        if state.faults.reject_after_paying:
            # The money moved, the answer says no: what a ledger lookup by the key is for.
            refusals[idempotency_key] = (fingerprint, 402, "card_closed", "the customer's card is closed")
            return _error(402, "card_closed", "the customer's card is closed")
        return JSONResponse(entry.model_dump(mode="json"), status_code=201)

    @app.get("/refunds")
    async def list_refunds(
        reference: str | None = None, idempotency_key: str | None = None, charge: str | None = None
    ) -> list[LedgerEntry]:
        wanted = {"reference": reference, "idempotency_key": idempotency_key, "charge": charge}
        filters = {name: value for name, value in wanted.items() if value is not None}
        return [e for e in ledger.values() if all(getattr(e, name) == value for name, value in filters.items())]

    @app.get("/_sandbox/attempts")
    async def attempts() -> dict[str, int]:
        return dict(state.attempts)

    @app.get("/_sandbox/faults")
    async def get_faults() -> Faults:
        return state.faults

    @app.put("/_sandbox/faults")
    async def put_faults(faults: Faults) -> Faults:
        state.set(faults)
        return faults

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"ok": True, "ledger": len(ledger)}

    return app
