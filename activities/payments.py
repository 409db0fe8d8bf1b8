"""Pay refunds and goodwill credits through the payment provider's HTTP API, exactly once.

Exactly once comes from the idempotency key, derived from the ticket and the
refund (or from the charge it reverses): however often Temporal retries this
activity (or a worker dies in the middle of it), the provider pays a key once
and answers repeats with the same result. Business rejections (a closed card)
are final and not retried; the provider answers that key with them from then
on, so a later retry pays under a new key, once `find_payment` says the ledger
holds nothing under the old one.
"""

from __future__ import annotations

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from workflows.contracts import (
    FIND_PAYMENT,
    MAKE_PAYMENT,
    PAYMENT_REJECTED,
    PaymentLookup,
    PaymentReceipt,
    PaymentRequest,
)

# Statuses that mean "the provider understood and said no"; anything else unexpected is retried.
BUSINESS_REJECTIONS = frozenset({402, 422})


class PaymentActivities:
    def __init__(self, http: httpx.AsyncClient, payments_url: str) -> None:
        self._http = http
        self._url = payments_url.rstrip("/") + "/refunds"

    @activity.defn(name=MAKE_PAYMENT)
    async def make_payment(self, request: PaymentRequest) -> PaymentReceipt:
        body = {
            "kind": request.kind,
            "reference": request.ticket_id,
            "customer_id": request.customer_id,
            "amount": f"{request.money.amount:.2f}",
            "currency": request.money.currency,
        }
        if request.charge is not None:
            body["charge"] = request.charge
        try:
            response = await self._http.post(self._url, json=body, headers={"Idempotency-Key": request.idempotency_key})
        except httpx.HTTPError as error:
            raise ApplicationError(f"payment provider unreachable: {error!r}") from error
        if response.status_code in BUSINESS_REJECTIONS:
            raise ApplicationError(_provider_message(response), type=PAYMENT_REJECTED, non_retryable=True)
        if response.status_code >= 400:
            raise ApplicationError(f"payment provider answered {response.status_code}: {response.text[:200]}")
        payload = response.json()
        activity.logger.info(
            "payment made",
            extra={
                "kind": request.kind,
                "idempotency_key": request.idempotency_key,
                "payment": payload["id"],
                "replayed": response.headers.get("Idempotent-Replayed") == "true",
            },
        )
        return PaymentReceipt(
            payment_id=payload["id"],
            status=payload.get("status", "succeeded"),
            replayed=response.headers.get("Idempotent-Replayed") == "true",
        )

    @activity.defn(name=FIND_PAYMENT)
    async def find_payment(self, idempotency_key: str) -> PaymentLookup:
        """What the provider's ledger holds under `idempotency_key`: a payment, or nothing."""
        try:
            response = await self._http.get(self._url, params={"idempotency_key": idempotency_key})
        except httpx.HTTPError as error:
            raise ApplicationError(f"payment provider unreachable: {error!r}") from error
        if response.status_code >= 400:
            raise ApplicationError(f"payment ledger answered {response.status_code}: {response.text[:200]}")
        entries = [e for e in response.json() if e.get("idempotency_key") == idempotency_key]
        if not entries:
            return PaymentLookup(idempotency_key=idempotency_key)
        found = entries[0]
        receipt = PaymentReceipt(payment_id=found["id"], status=found.get("status", "succeeded"), replayed=True)
        return PaymentLookup(idempotency_key=idempotency_key, payment=receipt)


def _provider_message(response: httpx.Response) -> str:
    try:
        error = response.json().get("error", {})
        return f"{error.get('code', response.status_code)}: {error.get('message', '')}".strip(": ")
    except ValueError:
        return f"{response.status_code}: {response.text[:200]}"
