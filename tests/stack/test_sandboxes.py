"""The stand-ins for third parties speak their protocol over real sockets: signed webhooks are
verified, payments honour idempotency keys."""

from __future__ import annotations

import json

from activities.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign, verify
from tests.harness import WEBHOOK_SECRET, Sandboxes

SECRET = WEBHOOK_SECRET.encode()


def test_signatures_bind_key_body_secret_and_time():
    body = b'{"id": "INC-1:2"}'
    headers = sign(SECRET, "INC-1:2", body, timestamp=1_000_000)
    good = (headers[SIGNATURE_HEADER], headers[TIMESTAMP_HEADER])
    assert verify(SECRET, "INC-1:2", body, *good, now=1_000_010) is None
    assert verify([b"new secret", SECRET], "INC-1:2", body, *good, now=1_000_010) is None, "any accepted secret"
    assert verify(SECRET, "INC-1:2", body + b" ", *good, now=1_000_010) == "signature does not match"
    assert verify(SECRET, "INC-1:3", body, *good, now=1_000_010) == "signature does not match"
    assert verify(b"other secret", "INC-1:2", body, *good, now=1_000_010) == "signature does not match"
    assert "away from now" in (verify(SECRET, "INC-1:2", body, *good, now=1_000_000 + 3600) or "")
    assert "missing" in (verify(SECRET, "INC-1:2", body, None, None) or "")
    assert "missing" in (verify(SECRET, None, body, *good, now=1_000_010) or "")


async def test_the_sink_refuses_unsigned_and_forged_webhooks(sandboxes: Sandboxes):
    body = json.dumps({"id": "x:1", "ticket_id": "x", "recipient": "customer", "kind": "k", "message": "m"}).encode()
    unsigned = await sandboxes.http.post(sandboxes.notify_url, content=body, headers={"Idempotency-Key": "x:1"})
    forged = await sandboxes.http.post(sandboxes.notify_url, content=body, headers=sign(b"guess", "x:1", body))
    assert unsigned.status_code == forged.status_code == 401
    signed = sign(SECRET, "x:1", body)
    first = await sandboxes.http.post(sandboxes.notify_url, content=body, headers=signed)
    again = await sandboxes.http.post(sandboxes.notify_url, content=body, headers=signed)
    assert (first.status_code, again.status_code) == (202, 200)
    assert len(await sandboxes.notifications(ticket_id="x")) == 1, "a repeat is dropped"


async def test_the_payment_provider_pays_a_key_once_and_refuses_reuse(sandboxes: Sandboxes):
    url = f"{sandboxes.payments_url}/refunds"
    body = {"reference": "INC-PAY1", "customer_id": "42", "amount": "10.00", "currency": "RUB"}
    missing = await sandboxes.http.post(url, json=body)
    assert missing.status_code == 400 and "Idempotency-Key" in missing.text
    first = await sandboxes.http.post(url, json=body, headers={"Idempotency-Key": "k1"})
    replay = await sandboxes.http.post(url, json=body, headers={"Idempotency-Key": "k1"})
    assert first.status_code == 201 and replay.status_code == 200
    assert replay.headers["Idempotent-Replayed"] == "true" and replay.json()["id"] == first.json()["id"]
    reused = await sandboxes.http.post(url, json={**body, "amount": "99.00"}, headers={"Idempotency-Key": "k1"})
    assert reused.status_code == 422 and reused.json()["error"]["code"] == "idempotency_key_reused"
    assert len(await sandboxes.ledger(reference="INC-PAY1")) == 1
    await sandboxes.set_payment_faults(reject=True)
    rejected = await sandboxes.http.post(url, json={**body, "reference": "INC-PAY2"}, headers={"Idempotency-Key": "k2"})
    assert rejected.status_code == 402 and rejected.json()["error"]["code"] == "card_closed"
