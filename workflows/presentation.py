"""How an incident reads in the Temporal web UI: summaries and the workflow's current details.

Pure text functions; no customer contact data ever goes into them because the
UI shows them without the payload codec.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from workflows.domain.incident import Notify
from workflows.domain.models import IncidentState
from workflows.domain.sla import Deadline


def static_summary(severity: str, category: str, customer_id: str) -> str:
    return f"{severity} · {category} · customer {customer_id}"


def static_details(ticket_id: str, severity: str, category: str, customer_id: str, channel: str) -> str:
    return (
        f"**Ticket {ticket_id}**\n\n"
        f"- severity: {severity}\n- category: {category}\n- customer: {customer_id}\n- channel: {channel}\n"
    )


def _moment(at: datetime) -> str:
    """`at` as strftime("%Y-%m-%d %H:%M:%S UTC") writes it, without strftime: in the workflow sandbox each
    call imports `time` through the sandbox's import hook, and the details are written on every task."""
    return f"{at.year:04d}-{at.month:02d}-{at.day:02d} {at.hour:02d}:{at.minute:02d}:{at.second:02d} UTC"


def _when(deadline: Deadline | None) -> str:
    if deadline is None:
        return "none"
    return f"{deadline.label}, due {_moment(deadline.due_at)}"


def current_details(state: IncidentState, upcoming: Deadline | None) -> str:
    lines = [
        f"**{state.ticket_id}** · {state.severity.value} · {state.status.value} · line {state.line}",
        f"- assignee: {state.assignee or 'nobody yet'}",
        f"- next deadline: {_when(upcoming)}",
    ]
    if state.outage is not None and state.outage.active:
        lines.append(f"- linked to {state.outage.outage_id}: the major incident owns escalation; SLA clocks stopped")
    elif state.outage is not None:
        lines.append(f"- part of {state.outage.outage_id} ({state.outage.ended})")
    if state.sla_breaches:
        lines.append(f"- SLA breached: {', '.join(state.sla_breaches)}")
    if state.refund is not None:
        lines.append(f"- refund: {state.refund.amount:.2f} {state.refund.currency} {state.refund.status.value}")
    if state.awaiting:
        lines.append(f"- waiting for: {state.awaiting}")
    if state.waiting is not None:
        # Not the question itself: the UI shows this without the payload codec, and an agent's words may be personal.
        asked = _moment(state.waiting.asked_at)
        lines.append(f"- waiting on the customer's answer to {state.waiting.asked_by}'s question of {asked}")
    if state.closed_as is not None:
        lines.append(f"- closed as: {state.closed_as.value}")
    return "\n".join(lines)


def _audience(recipient: str) -> str:
    return "customer" if recipient == "customer" else recipient.replace("_", " ")


def notification_summary(effects: Sequence[Notify]) -> str:
    parts = [f"{_audience(e.recipient)}: {e.kind.replace('_', ' ')}" for e in effects]
    return "notify " + "; ".join(parts)
