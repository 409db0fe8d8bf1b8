"""How a worker hands the workflow a payload its codec could not open, instead of failing the task.

Any Temporal client can send a signal whose payload claims an encoding or a key this worker does not
hold. If the codec raised, the worker would fail the workflow task on every attempt and the incident
would freeze. The worker's codec marks such a payload instead (leaving its bytes untouched) and the
workflow records the signal as rejected, with the reason.
"""

from __future__ import annotations

from temporalio.api.common.v1 import Payload

UNDECODABLE_HEADER = "incidents-undecodable"
MAX_REASON = 300


def mark_undecodable(payload: Payload, reason: str) -> Payload:
    marked = Payload()
    marked.CopyFrom(payload)
    marked.metadata[UNDECODABLE_HEADER] = bounded(reason).encode()
    return marked


def undecodable_reason(payload: Payload) -> str | None:
    mark = payload.metadata.get(UNDECODABLE_HEADER)
    return mark.decode(errors="replace") if mark is not None else None


def bounded(text: str, limit: int = MAX_REASON) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
