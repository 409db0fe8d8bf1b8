"""The incident in words, for the desk and for the customer's ticket page: events, clocks, times.

Times are shown in the reader's time zone (an agent's from the browser at sign-in; the customer's page in
the browser's too, or UTC). Event types that a later change adds still read, as their name and data,
until they get words of their own here.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from starter.render import event_words, kind_words, visible
from workflows.domain.models import IncidentState, Status
from workflows.domain.sla import Clock

__all__ = ["event_words"]  # the one describer of events, shared with the CLI (starter/render.py)

# A deadline this close is "breaching soon": the queue marks it.
SOON = timedelta(minutes=15)


def zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def known_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def local(moment: datetime | None, tz: ZoneInfo) -> str:
    """`2026-03-01 14:05 MSK`: the date, the time and the zone's abbreviation, in the reader's zone."""
    if moment is None:
        return "-"
    shown = moment.astimezone(tz)
    return shown.strftime("%Y-%m-%d %H:%M ") + (shown.tzname() or tz.key)


def relative(moment: datetime | None, now: datetime) -> str:
    """`in 12 min`, `3 h ago`: how far `moment` is from `now`, in the largest whole unit."""
    if moment is None:
        return ""
    seconds = (moment - now).total_seconds()
    span = abs(seconds)
    if span < 60:
        amount = f"{int(span)} s"
    elif span < 3600:
        amount = f"{int(span // 60)} min"
    elif span < 86400 * 2:
        amount = f"{int(span // 3600)} h {int(span % 3600 // 60)} min"
    else:
        amount = f"{int(span // 86400)} days"
    return f"in {amount}" if seconds >= 0 else f"{amount} ago"


def urgency(due: datetime | None, now: datetime) -> str:
    """overdue, soon or later: how the queue marks a deadline."""
    if due is None:
        return "none"
    if due <= now:
        return "overdue"
    return "soon" if due - now <= SOON else "later"


def now_utc() -> datetime:
    return datetime.now(UTC)


# --- the customer's ticket page: plain words, only what the customer may see ---

_CUSTOMER_KINDS = {
    "ticket_opened": "We registered your request.",
    "acknowledged": "A specialist is now working on it.",
    "status_update": "We are still working on it.",
    "escalated": "Your case went to our specialists.",
    "resolved": "We fixed it.",
    "feedback_request": "We asked how we did.",
    "reopened": "We reopened it and are working on it again.",
    "refund_paid": "Your refund was sent.",
    "compensation": "We credited a goodwill gift to your account.",
}
# Internal events the ticket page never shows, whatever a later change adds beside them.
_INTERNAL_PREFIXES = ("note", "line_", "action_rejected", "sla_", "assigned", "severity_")


def customer_messages(state: IncidentState) -> list[tuple[datetime, str, str]]:
    """What the customer was told and wrote, oldest first: (when, who, text). No notes, no agent names."""
    shown: list[tuple[datetime, str, str]] = []
    for event in state.events:
        t, d = event.type.value, event.data
        if t == "customer_notified":
            kind = str(d.get("kind", ""))
            text = _CUSTOMER_KINDS.get(kind, kind_words(kind).capitalize() + ".")
            if kind == "resolved" and state.resolution:
                text = f"We fixed it: {state.resolution}"
            shown.append((event.at, "us", text))
        elif t == "customer_recontacted":
            shown.append((event.at, "you", str(d.get("text", ""))))
        elif t == "feedback_received":
            shown.append((event.at, "you", f"You rated our help {d.get('score')}/5."))
        elif t.startswith("customer_") and not t.startswith(_INTERNAL_PREFIXES):
            # A message an agent sent the customer (an action a later change adds): its words, if it has any.
            said = d.get("text") or d.get("message") or d.get("question")
            if said:
                shown.append((event.at, "us", str(said)))
    return shown


def customer_status(state: IncidentState) -> str:
    if state.status is Status.closed:
        return "Closed: this request is finished."
    if state.status is Status.resolved:
        return "Resolved: we believe it is fixed."
    if state.assignee is None:
        return "Received: it is waiting for a specialist."
    return "In progress: a specialist is working on it."


def customer_next(state: IncidentState, tz: ZoneInfo) -> str:
    """What happens next and by when, in plain words."""
    if state.status is Status.closed:
        return "Nothing more: thank you for your patience."
    if state.status is Status.resolved:
        if state.awaiting == "feedback":
            return "Please tell us how we did (below). If it is not fixed, write to us and we reopen it."
        return "If it is not fixed, write to us below and we reopen it."
    ack = state.clock.due_at(Clock.acknowledge)
    if state.assignee is None and ack is not None:
        return f"A specialist takes it by {local(ack, tz)}; we expect to fix it by {local(state.expected_fix_by, tz)}."
    return f"We expect to fix it by {local(state.expected_fix_by, tz)}; we will tell you when it is done."


def shown(text: str | None) -> str:
    """User text with control characters written out (no text reorders or hides what follows it)."""
    return visible(text or "")
