"""An incident linked to a major incident (OUT-...): the incident's side of workflows/domain/outage.py.

Seed 002's customer never learned that the whole city had the same failure,
and every one of those calls paged line 2 on its own. A linked incident:

- tells its customer at once "we know, it is not only you, expected by ..."
  (and nothing about any other customer);
- stops paging lines on its own: its SLA clocks stop (`SlaClock.pause`), the
  last line's re-notification and the owned-work reminder stay silent; the
  major incident owns escalation. Its record, its other clocks (customer
  updates at its severity's cadence), its refunds stay its own;
- takes its own clock back when unlinked (a mistaken match), with the time it
  had (`SlaClock.resume`), or when it hears nothing from the major incident
  past the notice's `check_by` (a major incident that went silent must not
  leave its customers waiting without a clock);
- is resolved with the major incident, each with its own notice, its own
  satisfaction callback per severity, and the credit the major incident's
  policy gives its severity for the outage's duration. A customer who says it
  is still broken reopens only their own incident.

These are functions over the incident, like money.py; their handlers join the
action catalogue through `@handles` when incident.py imports this module.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from workflows.domain.actions import LinkOutage, OutageResolved, OutageUpdate, UnlinkOutage
from workflows.domain.core import GrantCompensation, Rejected, handles
from workflows.domain.messages import Message, fmt_time
from workflows.domain.models import CompensationState, EventType, IncidentEvent, IncidentState, Money, Status
from workflows.domain.notice import NoticeStatus, OutageLink, OutageNotice
from workflows.domain.sla import PAUSED_FOR_OUTAGE, Clock, Deadline

if TYPE_CHECKING:
    from workflows.domain.incident import Incident

# Links are new behaviour: the workflow switches it on through `workflow.patched` the first time an incident
# takes an outage action (one opened linked has it from its input, which older incidents never had).
OUTAGE_LINKS = "outage-links"
OUTAGE_ACTIONS = frozenset({"link_outage", "unlink_outage", "outage_update", "outage_resolved"})


def linked(state: IncidentState) -> bool:
    """Whether a major incident owns this incident's escalation now."""
    return state.outage is not None and state.outage.active


def outage_id_of(state: IncidentState) -> str | None:
    """The major incident this incident belongs to (also once resolved together); None when never or unlinked."""
    return state.outage.outage_id if state.outage is not None else None


# --- linking ---


def link(incident: Incident, notice: OutageNotice, now: datetime, by: str) -> IncidentEvent:
    """Put the incident under the major incident: the customer hears "not only you", the lines hear nothing."""
    state = incident.state
    clock = state.clock
    # Kept in the link for the record (histories before pause reasons read it); the clock itself now knows
    # which pauses hold it, so unlinking never ends the customer's.
    pauses = clock.paused_since is None
    clock.pause(now, PAUSED_FOR_OUTAGE)
    clock.stop(Clock.renotify)
    state.outage = OutageLink(notice=notice, linked_at=now, linked_by=by, paused_clock=pauses, news_at=now)
    _watch(incident, now)
    event = incident.record(
        EventType.outage_linked,
        now,
        by=by,
        outage=notice.outage_id,
        area=notice.area.path,
        expected_fix_by=notice.expected_fix_by.isoformat(),
    )
    incident.notify_customer(
        "not_only_you", Message.NOT_ONLY_YOU, now, summary=notice.summary, fix_by=notice.expected_fix_by
    )
    incident._start_customer_updates(now)  # the customer just heard from us: the next update counts from here
    return event


@handles(LinkOutage)
def _link_outage(incident: Incident, action: LinkOutage, now: datetime) -> IncidentEvent:
    state = incident.state
    incident.require_status(Status.open, "link to a major incident")
    notice = action.notice
    if notice is None:
        raise Rejected("notice: the major incident's notice is missing (link through the API or `incidents link`)")
    if notice.outage_id != action.outage_id:
        raise Rejected(f"notice: it is {notice.outage_id}'s, not {action.outage_id}'s")
    if state.outage is not None and state.outage.active:
        if state.outage.outage_id == notice.outage_id:
            raise Rejected(f"already linked to {notice.outage_id}")
        raise Rejected(f"already linked to {state.outage.outage_id}: unlink it first")
    if notice.status is NoticeStatus.resolved:
        raise Rejected(f"{notice.outage_id} is resolved already")
    if state.area is not None and not notice.area.covers(state.area):
        raise Rejected(f"the customer's area {state.area.path} is outside {notice.outage_id}'s area {notice.area.path}")
    if notice.categories and state.category not in notice.categories:
        raise Rejected(
            f"{state.category} is not among {notice.outage_id}'s categories ({', '.join(notice.categories)})"
        )
    if action.agent == notice.outage_id and _unlinked_from(state, notice.outage_id):
        # The major incident's own sweep: an agent took this one out of it before, and the agent's word stands.
        raise Rejected(f"unlinked from {notice.outage_id} before; only an agent links it again")
    return link(incident, notice, now, by=action.agent)


# --- news while linked ---


@handles(OutageUpdate)
def _outage_update(incident: Incident, action: OutageUpdate, now: datetime) -> IncidentEvent:
    current = _linked_to(incident, action.notice.outage_id, "take news of")
    notice = action.notice
    moved = notice.expected_fix_by != current.notice.expected_fix_by
    current.notice = notice
    current.news_at = now
    _watch(incident, now)
    data: dict[str, object] = {"outage": notice.outage_id, "expected_fix_by": notice.expected_fix_by.isoformat()}
    if moved:
        data["fix_time_moved"] = True
    event = incident.record(EventType.outage_update, now, by=notice.outage_id, **data)
    news = action.news or "Our engineers are still at work."
    incident.notify_customer("outage_update", Message.OUTAGE_NEWS, now, news=news, fix_by=notice.expected_fix_by)
    incident._start_customer_updates(now)
    return event


def status_update(incident: Incident) -> tuple[Message, dict[str, object]]:
    """The periodic update of a linked incident speaks of the failure, not of a line working on it."""
    assert incident.state.outage is not None
    return Message.OUTAGE_STATUS_UPDATE, {"fix_by": incident.state.outage.notice.expected_fix_by}


# --- ending the link ---


@handles(UnlinkOutage)
def _unlink_outage(incident: Incident, action: UnlinkOutage, now: datetime) -> IncidentEvent:
    state = incident.state
    incident.require_status(Status.open, "unlink")
    if not linked(state):
        raise Rejected("not linked to a major incident")
    assert state.outage is not None
    outage = state.outage.outage_id
    event = _unlink(incident, now, by=action.agent, reason=action.reason)
    incident.notify_customer("outage_unlinked", Message.OUTAGE_UNLINKED, now, line=state.line)
    text = incident.text(Message.LINE_OUTAGE_UNLINKED, outage=outage, reason=action.reason, line=state.line)
    incident.notify_line(state.line, "outage_unlinked", text, now)
    return event


def silent(incident: Incident, deadline: Deadline, now: datetime) -> None:
    """The major incident said nothing newer past its check time: the incident is its own again."""
    state = incident.state
    if not linked(state) or state.status is not Status.open:
        return
    assert state.outage is not None
    outage, since = state.outage.outage_id, state.outage.news_at
    _unlink(incident, now, by=None, reason=f"no news from {outage} since {fmt_time(since)}")
    text = incident.text(Message.LINE_OUTAGE_SILENT, outage=outage, since=fmt_time(since), line=state.line)
    incident.notify_line(state.line, "outage_silent", text, now)


def _unlink(incident: Incident, now: datetime, by: str | None, reason: str) -> IncidentEvent:
    state = incident.state
    assert state.outage is not None
    outage = state.outage.outage_id
    release(incident, now)
    state.outage = None  # no longer one of its incidents: its mass resolve must not reach this one
    return incident.record(EventType.outage_unlinked, now, by=by, outage=outage, reason=reason)


def release(incident: Incident, now: datetime) -> None:
    """Give the incident its own clocks back, with the time they had when it was linked."""
    state = incident.state
    assert state.outage is not None
    # Ends only the major incident's hold: a clock the customer's question also paused stays paused.
    state.clock.resume(now, PAUSED_FOR_OUTAGE)
    state.clock.stop(Clock.outage)
    state.outage.ended_at = now
    incident._start_renotify_if_waiting(now)


def end_by_own_resolution(incident: Incident, now: datetime) -> None:
    """An agent resolved a linked incident on its own: the link ends there (its record keeps the outage)."""
    if linked(incident.state):
        release(incident, now)
        assert incident.state.outage is not None
        incident.state.outage.ended = "resolved on its own"


# --- resolved together ---


@handles(OutageResolved)
def _outage_resolved(incident: Incident, action: OutageResolved, now: datetime) -> IncidentEvent:
    current = _linked_to(incident, action.notice.outage_id, "be resolved with")
    release(incident, now)
    current.notice = action.notice
    current.news_at = now
    current.ended = "resolved together"
    credit = action.compensation.get(incident.state.severity)
    return incident.resolve(
        action.resolved_by,
        action.resolution,
        now,
        notice=Message.OUTAGE_RESOLVED,
        compensate=_credit(incident, credit, now),
        outage=action.notice.outage_id,
    )


def _credit(incident: Incident, credit: Money | None, now: datetime) -> Callable[[], None]:
    """The major incident's credit for the outage's duration replaces the late-fix rule: one credit per incident."""

    def grant() -> None:
        state = incident.state
        if credit is None or state.compensation is not None:
            return
        assert state.outage is not None
        key = f"{incident.t}:compensation:{state.outage.outage_id}"
        state.compensation = CompensationState(
            amount=credit.amount, currency=credit.currency, status="granting", idempotency_key=key
        )
        incident.emit(GrantCompensation(idempotency_key=key, money=credit))

    return grant


# --- plumbing ---


def _linked_to(incident: Incident, outage_id: str, verb: str) -> OutageLink:
    state = incident.state
    if state.outage is None or not state.outage.active:
        raise Rejected(f"cannot {verb} {outage_id}: not linked to a major incident")
    if state.outage.outage_id != outage_id:
        raise Rejected(f"cannot {verb} {outage_id}: linked to {state.outage.outage_id}")
    incident.require_status(Status.open, f"{verb} {outage_id}")
    return state.outage


def _unlinked_from(state: IncidentState, outage_id: str) -> bool:
    return any(e.type is EventType.outage_unlinked and e.data.get("outage") == outage_id for e in state.events)


def _watch(incident: Incident, now: datetime) -> None:
    assert incident.state.outage is not None
    check_by = incident.state.outage.notice.check_by
    incident.state.clock.start(
        Clock.outage,
        now,
        max(check_by - now, timedelta(0)),
        f"{incident.state.outage.outage_id}: news expected by {fmt_time(check_by)}",
    )
