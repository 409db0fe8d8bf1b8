"""The incident state machine: pure rules, no I/O, no clocks of its own.

The workflow feeds it actions, expired deadlines and payment outcomes, each
with the workflow's `now`; it mutates the incident state, appends to the
domain event log and returns the side effects the workflow must carry out
(notifications, payments). An action that is not valid in the current state
is recorded as `action_rejected`, never raised.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic_core import to_json

from workflows.domain.actions import (
    CATALOGUE,
    Acknowledge,
    ActionModel,
    AddNote,
    AddRefund,
    ApproveRefund,
    Assign,
    CustomerContact,
    Escalate,
    Feedback,
    Reclassify,
    Reopen,
    Resolve,
    RetryRefund,
    SettleCompensation,
    SettleRefund,
)
from workflows.domain.durations import format_duration
from workflows.domain.models import (
    SETTLED_REFUND,
    CompensationState,
    EventType,
    FeedbackRecord,
    IncidentEvent,
    IncidentState,
    Money,
    OpenIncident,
    RefundState,
    RefundStatus,
    ReminderState,
    Severity,
    Status,
    UndeliveredNotification,
)
from workflows.domain.policy import LAST_LINE, Policy, SeverityPolicy
from workflows.domain.sla import Clock, Deadline
from workflows.domain.triage import triage

Recipient = Literal["customer", "line_1", "line_2", "line_3"]
REOPEN_LINE = 2
# A rejection's reason quotes what the sender sent; the log keeps a bounded part of it.
MAX_REASON = 300
BAD_FEEDBACK = 2

# Behaviour switched on by the workflow once its `workflow.patched` marker says this run may use it.
ANNOUNCE_ACKNOWLEDGEMENT = "announce-acknowledgement"
RECONTACT_REOPENS = "recontact-reopens"
# Nothing that is not closed waits without a clock: reminder ladders chase owned-but-idle work on the
# last line, refund tasks and failed credits (a failed credit is a task that holds the closing until
# `settle_compensation`); a reopen promises a new fix time, and compensation judges the reopened fix by it.
FOLLOW_THROUGH = "follow-through"

ReminderLadder = Literal["owned", "refund", "compensation"]
REMINDER_LADDERS: dict[Clock, ReminderLadder] = {
    Clock.owned_reminder: "owned",
    Clock.refund_reminder: "refund",
    Clock.compensation_reminder: "compensation",
}
# Reminder subjects of money on its way to the customer: chased only once the payment's give-up time has passed.
_IN_FLIGHT = ("refund:requested", "refund:approved", "compensation:granting")


@dataclass(frozen=True)
class Notify:
    recipient: Recipient
    kind: str
    message: str
    event_seq: int
    # When delivery is given up on; None: a fresh notification, the workflow's give-up time from now.
    give_up_at: datetime | None = None


@dataclass(frozen=True)
class PayRefund:
    idempotency_key: str
    money: Money


@dataclass(frozen=True)
class GrantCompensation:
    idempotency_key: str
    money: Money


Effect = Notify | PayRefund | GrantCompensation


@dataclass
class Outcome:
    accepted: bool
    event_seq: int
    reason: str | None = None
    code: str | None = None
    effects: list[Effect] = field(default_factory=list)


class Rejected(Exception):
    """Raised inside the state machine only, to turn into an `action_rejected` event."""

    def __init__(self, reason: str, code: str = "invalid") -> None:
        super().__init__(reason)
        self.code = code


# Refusal codes a program acts on (the intake opens a new incident for these two).
CLOSED = "closed"
REOPEN_WINDOW_PASSED = "reopen_window_passed"


def line_recipient(line: int) -> Recipient:
    recipients: dict[int, Recipient] = {1: "line_1", 2: "line_2", 3: "line_3"}
    return recipients[line]


def _fmt_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _fmt_money(money: Money) -> str:
    return f"{money.amount:.2f} {money.currency}"


Handler = Callable[["Incident", Any, datetime], IncidentEvent]
# Each action's handler, by action name: filled by @handles as the class body runs.
_HANDLERS: dict[str, Handler] = {}


def handles(model: type[ActionModel]) -> Callable[[Handler], Handler]:
    """Mark a method as the handler of one catalogue action (workflows/domain/actions.py)."""

    def register(method: Handler) -> Handler:
        _HANDLERS[model.action_name()] = method
        return method

    return register


def unhandled_actions() -> set[str]:
    """Catalogue actions without a handler: none, or the state machine cannot take them (tests check)."""
    return set(CATALOGUE) - set(_HANDLERS)


class Incident:
    def __init__(self, state: IncidentState, policy: Policy, features: frozenset[str] = frozenset()) -> None:
        self.state = state
        self.policy = policy
        self.features = set(features)
        self._effects: list[Effect] = []

    # --- construction ---

    @classmethod
    def open(
        cls,
        ticket_id: str,
        request: OpenIncident,
        policy: Policy,
        now: datetime,
        features: frozenset[str] = frozenset(),
        previous_ticket: str | None = None,
    ) -> tuple[Incident, list[Effect]]:
        verdict = triage(request.category, policy)
        rules = policy.for_severity(verdict.severity)
        state = IncidentState(
            ticket_id=ticket_id,
            customer_id=request.customer_id,
            category=request.category,
            description=request.description,
            channel=request.channel,
            contact=request.contact,
            request_id=request.request_id,
            previous_ticket=previous_ticket,
            severity=verdict.severity,
            triage_note=verdict.note,
            policy_name=policy.name,
            line_entered_at=now,
            opened_at=now,
            expected_fix_by=now + rules.line_timeouts[1],
        )
        incident = cls(state, policy, features)
        data: dict[str, Any] = {
            "severity": verdict.severity.value,
            "category": request.category,
            "channel": request.channel.value,
            "policy": policy.name,
        }
        if verdict.note:
            data["triage_note"] = verdict.note
        if previous_ticket:
            data["previous_ticket"] = previous_ticket
        incident._record(EventType.opened, now, by=request.channel.value, **data)
        incident._start_line_clock(now)
        if rules.acknowledge_within is not None:
            incident.state.clock.start(
                Clock.acknowledge,
                now,
                rules.acknowledge_within,
                f"acknowledge within {format_duration(rules.acknowledge_within)}",
            )
        incident._start_customer_updates(now)
        incident._notify_customer("ticket_opened", incident._opening_message(), now)
        incident._notify_line(
            1,
            "new_incident",
            f"New {verdict.severity.value} incident {ticket_id} ({request.category}): {request.description}",
            now,
        )
        if request.refund is not None:
            incident._owe_refund(request.refund, added_by="opened", approver_line=1, now=now)
        incident._refresh(now)
        return incident, incident._take_effects()

    # --- reading ---

    @property
    def rules(self) -> SeverityPolicy:
        return self.policy.for_severity(self.state.severity)

    @property
    def finished(self) -> bool:
        return self.state.status is Status.closed

    @property
    def money_in_flight(self) -> bool:
        refund, compensation = self.state.refund, self.state.compensation
        return (refund is not None and refund.status is RefundStatus.requested) or (
            compensation is not None and compensation.status == "granting"
        )

    def next_deadline(self) -> Deadline | None:
        return self.state.clock.next()

    def follow_through_matters(self) -> bool:
        """Whether switching FOLLOW_THROUGH on would change what this incident does from here on.

        Not while it is open below the last line with no money and no reopen: there the line's SLA
        clock chases it and the first fix is judged as before. The workflow asks its `patched`
        marker only once this holds, so an incident that was running before the change switches on
        when the rules first apply to it, and replays the same way.
        """
        state = self.state
        if state.status is Status.closed:
            return False
        return (
            state.status is Status.resolved
            or state.line >= LAST_LINE
            or state.reopen_count > 0
            or state.refund is not None
            or state.compensation is not None
        )

    def enable(self, feature: str, now: datetime) -> list[Effect]:
        """Switch `feature` on for the rest of the incident's life (the workflow's patch allows it).

        For FOLLOW_THROUGH the incident then behaves as if it had been on all along where that still
        matters: the reminders of the work waiting now start from `now`, and an incident reopened
        while it was off gets the fix time its reopen would have promised.
        """
        if feature in self.features:
            return []
        self.features.add(feature)
        state = self.state
        if feature == FOLLOW_THROUGH and state.status is Status.open and state.reopen_count:
            reopened = next((e for e in reversed(state.events) if e.type is EventType.reopened), None)
            if reopened is not None:
                self._renew_fix_time(reopened.at)
        self._refresh(now)
        return self._take_effects()

    def resume_effects(self) -> list[Effect]:
        """What was on its way when the previous run continued as new: send and ask again, same ids and keys.

        Notifications keep their id (`TICKET:event_seq`, the receiver drops repeats) and their give-up
        time; payments keep their idempotency key (the provider pays at most once).
        """
        state = self.state
        effects: list[Effect] = [
            Notify(n.recipient, n.kind, n.message, n.event_seq, n.give_up_at) for n in state.undelivered
        ]
        state.undelivered = []  # the workflow tracks them again from here, and carries them if still in flight
        refund, compensation = state.refund, state.compensation
        if refund is not None and refund.status is RefundStatus.requested:
            effects.append(PayRefund(idempotency_key=refund.idempotency_key, money=refund.money))
        if compensation is not None and compensation.status == "granting":
            money = Money(amount=compensation.amount, currency=compensation.currency)
            effects.append(GrantCompensation(idempotency_key=compensation.idempotency_key, money=money))
        return effects

    def carry_undelivered(self, notifications: list[Notify], max_bytes: int, now: datetime) -> int:
        """Keep notifications still in flight in the state for the next run, within `max_bytes` of JSON.

        An endpoint down for days can leave more undelivered than a continue-as-new may carry; the oldest
        beyond the budget are given up on (a `notification_failed` event keeps that visible). Returns how
        many were given up on.
        """
        carried: list[UndeliveredNotification] = []
        size = 2
        for effect in sorted(notifications, key=lambda n: n.event_seq, reverse=True):
            assert effect.give_up_at is not None, "the workflow gives every notification in flight a give-up time"
            item = UndeliveredNotification(
                event_seq=effect.event_seq,
                recipient=effect.recipient,
                kind=effect.kind,
                message=effect.message,
                give_up_at=effect.give_up_at,
            )
            size += len(to_json(item)) + 1
            if size > max_bytes:
                break
            carried.append(item)
        carried.reverse()
        self.state.undelivered = carried
        kept = {n.event_seq for n in carried}
        dropped = sorted(n.event_seq for n in notifications if n.event_seq not in kept)
        if dropped:
            self.notifications_failed(
                dropped,
                f"gave up: {len(dropped)} undelivered notifications are more than a continue-as-new carries",
                now,
            )
        return len(dropped)

    def compact(self, keep: int | None = None, max_bytes: int | None = None) -> int:
        """Summarise the oldest events into counts by type; returns how many went.

        What stays is the newest tail: at most `keep` events, and no more than lets the whole state
        weigh at most `max_bytes` of JSON (what continue-as-new carries must stay below Temporal's
        payload limit, and a few hundred long notes are megabytes).
        """
        state = self.state
        count = len(state.events)
        cut = max(count - keep, 0) if keep is not None else 0
        if max_bytes is not None:
            room = max_bytes - len(to_json(state.model_copy(update={"events": []})))
            fits_from = count
            for event in reversed(state.events[cut:]):
                room -= len(to_json(event)) + 1
                if room < 0:
                    break
                fits_from -= 1
            cut = max(cut, fits_from)
        if cut == 0:
            return 0
        for event in state.events[:cut]:
            state.compacted_counts[event.type.value] = state.compacted_counts.get(event.type.value, 0) + 1
        state.events = state.events[cut:]
        state.events_compacted += cut
        return cut

    # --- inputs ---

    def act(self, action: ActionModel, now: datetime) -> Outcome:
        handler = _HANDLERS[action.type]
        try:
            event = handler(self, action, now)
        except Rejected as rejection:
            return self.reject(action.type, _actor(action), str(rejection), now, rejection.code)
        self._refresh(now)
        return Outcome(accepted=True, event_seq=event.seq, effects=self._take_effects())

    def reject(self, action_type: str, by: str | None, reason: str, now: datetime, code: str = "invalid") -> Outcome:
        """Record an action that cannot apply (also used for payloads that did not even parse)."""
        self._take_effects()
        reason = reason if len(reason) <= MAX_REASON else reason[: MAX_REASON - 1] + "…"
        event = self._record(EventType.action_rejected, now, by=by, action=action_type, reason=reason)
        return Outcome(accepted=False, event_seq=event.seq, reason=reason, code=code)

    def advance(self, now: datetime) -> list[Effect]:
        """Fire every deadline that is due at `now`, oldest first."""
        handlers = {
            Clock.acknowledge: self._acknowledge_overdue,
            Clock.line: self._line_timeout,
            Clock.renotify: self._renotify_last_line,
            Clock.customer_update: self._customer_update,
            Clock.callback: self._callback_due,
            Clock.feedback: self._feedback_window_over,
            Clock.owned_reminder: self._remind,
            Clock.refund_reminder: self._remind,
            Clock.compensation_reminder: self._remind,
        }
        # A handler may start a clock that is already due (a reclassified incident); bound the chain.
        for _ in range(20):
            expired = self.state.clock.expired(now)
            if not expired:
                break
            for deadline in expired:
                if self.state.clock.deadlines.get(deadline.clock) == deadline:
                    self.state.clock.stop(deadline.clock)
                    handlers[deadline.clock](deadline, now)
        self._refresh(now)
        return self._take_effects()

    def refund_paid(self, payment_id: str, now: datetime) -> list[Effect]:
        refund = self._require_refund()
        refund.status = RefundStatus.paid
        refund.payment_id = payment_id
        refund.failure = None
        self._record(EventType.refund_succeeded, now, payment_id=payment_id, **self._refund_data(refund))
        self._notify_customer(
            "refund_paid", f"Your refund of {_fmt_money(refund.money)} has been sent (ticket {self.t}).", now
        )
        self._close_if_pending(now)
        self._refresh(now)
        return self._take_effects()

    def refund_failed(self, reason: str, now: datetime) -> list[Effect]:
        refund = self._require_refund()
        refund.status = RefundStatus.failed
        refund.failure = reason
        self._record(
            EventType.refund_failed,
            now,
            reason=reason,
            owed_since=refund.owed_since.isoformat(),
            rounds=refund.attempts_started,
            **self._refund_data(refund),
        )
        self._notify_line(
            2,
            "refund_task",
            f"Refund of {_fmt_money(refund.money)} for {self.t} (owed since {_fmt_time(refund.owed_since)}, "
            f"payment round {refund.attempts_started}) failed: {reason}. "
            "Retry it (retry_refund) or record how it was paid (settle_refund).",
            now,
        )
        self._refresh(now)
        return self._take_effects()

    def compensation_paid(self, payment_id: str, now: datetime) -> list[Effect]:
        compensation = self.state.compensation
        assert compensation is not None, "compensation result without a compensation"
        compensation.status = "granted"
        compensation.payment_id = payment_id
        money = Money(amount=compensation.amount, currency=compensation.currency)
        self._record(
            EventType.compensation_granted,
            now,
            amount=f"{money.amount:.2f}",
            currency=money.currency,
            payment_id=payment_id,
        )
        self._notify_customer(
            "compensation",
            f"We are sorry it took longer than promised: {_fmt_money(money)} has been credited "
            f"to your account (ticket {self.t}).",
            now,
        )
        self._close_if_pending(now)
        self._refresh(now)
        return self._take_effects()

    def compensation_failed(self, reason: str, now: datetime) -> list[Effect]:
        compensation = self.state.compensation
        assert compensation is not None, "compensation result without a compensation"
        compensation.status = "failed"
        compensation.failure = reason
        self._record(EventType.compensation_failed, now, reason=reason, idempotency_key=compensation.idempotency_key)
        what_to_do = (
            "Credit it by hand and record it (settle_compensation with a reference); the incident closes after that."
            if FOLLOW_THROUGH in self.features
            else "Credit it by hand."
        )
        self._notify_line(
            2,
            "compensation_task",
            f"Compensation of {compensation.amount:.2f} {compensation.currency} for {self.t} could not be "
            f"credited: {reason}. {what_to_do}",
            now,
        )
        self._close_if_pending(now)
        self._refresh(now)
        return self._take_effects()

    def notifications_failed(self, notification_seqs: list[int], reason: str, now: datetime) -> list[Effect]:
        """Delivery gave up; the record keeps the promise visible even though the message never left."""
        self._record(EventType.notification_failed, now, notifications=notification_seqs, reason=reason)
        self.state.notifications_failed += len(notification_seqs)
        self._refresh()
        return self._take_effects()

    # --- action handlers: each returns the event it recorded or raises Rejected ---

    @handles(Acknowledge)
    def _acknowledge(self, action: Acknowledge, now: datetime) -> IncidentEvent:
        self._require_status(Status.open, "acknowledge")
        if self.state.assignee == action.agent:
            raise Rejected(f"already acknowledged by {action.agent}")
        event = self._record(EventType.acknowledged, now, by=action.agent, **self._take_ownership(action.agent, now))
        if ANNOUNCE_ACKNOWLEDGEMENT in self.features and self.rules.customer_updates_every is not None:
            # Seed 000: a critical customer hears at once that a person has their case, not only a ticket.
            self._notify_customer(
                "acknowledged",
                f"A line-{self.state.line} specialist is now working on your ticket {self.t}.",
                now,
            )
        return event

    @handles(Assign)
    def _assign(self, action: Assign, now: datetime) -> IncidentEvent:
        self._require_status(Status.open, "assign")
        if self.state.assignee == action.assignee:
            raise Rejected(f"already with {action.assignee}")
        data = self._take_ownership(action.assignee, now)
        event = self._record(EventType.assigned, now, by=action.agent, assignee=action.assignee, **data)
        message = f"Incident {self.t} is now with {action.assignee} ({action.agent} assigned it)."
        self._notify_line(self.state.line, "assigned", message, now)
        return event

    def _take_ownership(self, owner: str, now: datetime) -> dict[str, Any]:
        previous = self.state.assignee
        self.state.assignee = owner
        if self.state.acknowledged_at is None:
            self.state.acknowledged_at = now
        # Someone owning it stops the first-response clock, never the resolution clock.
        self.state.clock.stop(Clock.acknowledge, Clock.renotify)
        data: dict[str, Any] = {"line": self.state.line}
        if previous:
            data["took_over_from"] = previous
        return data

    @handles(AddNote)
    def _add_note(self, action: AddNote, now: datetime) -> IncidentEvent:
        self._require_not_closed("add a note")
        self.state.notes += 1
        return self._record(EventType.note_added, now, by=action.agent, text=action.text)

    @handles(Escalate)
    def _escalate_manually(self, action: Escalate, now: datetime) -> IncidentEvent:
        self._require_status(Status.open, "escalate")
        if self.state.line >= LAST_LINE:
            raise Rejected(f"already on line {LAST_LINE}, the last line")
        return self._escalate("manual", now, by=action.agent, comment=action.reason)

    @handles(Resolve)
    def _resolve(self, action: Resolve, now: datetime) -> IncidentEvent:
        self._require_status(Status.open, "resolve")
        state = self.state
        state.status = Status.resolved
        state.resolved_at = now
        state.resolution = action.resolution
        state.clock.stop(Clock.acknowledge, Clock.line, Clock.renotify, Clock.customer_update)
        event = self._record(EventType.resolved, now, by=action.agent, line=state.line, resolution=action.resolution)
        self._notify_customer("resolved", f"Your incident {self.t} is resolved: {action.resolution}", now)
        self._grant_compensation_if_owed(now)
        rules = self.rules
        if rules.callback_after is not None:
            state.awaiting = "callback"
            deadline = state.clock.start(
                Clock.callback,
                now,
                rules.callback_after,
                f"satisfaction callback after {format_duration(rules.callback_after)}",
            )
            self._record(EventType.callback_scheduled, now, due_at=deadline.due_at.isoformat())
        else:
            self._close_when_money_settles("resolved", now)
        return event

    @handles(CustomerContact)
    def _customer_contact(self, action: CustomerContact, now: datetime) -> IncidentEvent:
        state = self.state
        if state.status is Status.closed:
            raise Rejected("cannot join a customer contact to a closed incident", CLOSED)
        reopens = state.status is Status.resolved and RECONTACT_REOPENS in self.features
        if reopens and state.resolved_at is not None:
            window = self.policy.recontact_reopens_within
            if now - state.resolved_at > window:
                raise Rejected(
                    f"resolved more than {format_duration(window)} ago: a new incident follows it", REOPEN_WINDOW_PASSED
                )
        repeats_refund = False
        if action.refund is not None and state.refund is not None:
            if state.refund.money != action.refund:
                raise Rejected(
                    f"refund: {_fmt_money(state.refund.money)} is already owed on this incident; "
                    f"a second refund of {_fmt_money(action.refund)} needs an agent"
                )
            repeats_refund = True
        state.recontacts += 1
        data: dict[str, Any] = {"channel": action.channel.value, "text": action.text, "count": state.recontacts}
        if action.contact and action.contact != state.contact:
            state.contact = action.contact
            data["contact_updated"] = True  # the contact itself stays out of the event log
        if repeats_refund:
            data["refund_already_owed"] = True
        event = self._record(EventType.customer_recontacted, now, by="customer", **data)
        who = f" ({state.assignee})" if state.assignee else ""
        self._notify_line(
            state.line,
            "customer_recontacted",
            f"Customer got in touch again about {self.t}{who} via {action.channel.value}: {action.text}",
            now,
        )
        if action.refund is not None and not repeats_refund:
            self._owe_refund(action.refund, added_by="opened", approver_line=1, now=now)
        if reopens:
            # Seed 003: "is this about the same issue?" yes, so the same case, back with the line that resolved it.
            self._reopen("the customer got in touch again after the resolution", now, by="customer", line=state.line)
        return event

    @handles(Feedback)
    def _feedback(self, action: Feedback, now: datetime) -> IncidentEvent:
        if self.state.status is not Status.resolved:
            raise Rejected(f"feedback is accepted only after resolution; the incident is {self.state.status}")
        state = self.state
        state.feedback = FeedbackRecord(score=action.score, comment=action.comment, at=now)
        state.clock.stop(Clock.callback, Clock.feedback)
        state.awaiting = None
        data: dict[str, Any] = {"score": action.score}
        if action.comment:
            data["comment"] = action.comment
        event = self._record(EventType.feedback_received, now, by="customer", **data)
        if action.score <= BAD_FEEDBACK:
            self._reopen(f"customer feedback scored {action.score}", now, by="customer")
        else:
            self._close_when_money_settles(f"customer feedback scored {action.score}", now)
        return event

    @handles(Reopen)
    def _reopen_manually(self, action: Reopen, now: datetime) -> IncidentEvent:
        self._require_status(Status.resolved, "reopen")
        return self._reopen(action.reason, now, by=action.by)

    @handles(AddRefund)
    def _add_refund(self, action: AddRefund, now: datetime) -> IncidentEvent:
        self._require_not_closed("add a refund to")
        if self.state.line < 2:
            raise Rejected("only line 2 and above may add a refund; escalate the incident first")
        if self.state.refund is not None:
            raise Rejected(f"a refund of {_fmt_money(self.state.refund.money)} is already owed on this incident")
        return self._owe_refund(action.refund, added_by=action.agent, approver_line=self.state.line, now=now)

    @handles(ApproveRefund)
    def _approve_refund(self, action: ApproveRefund, now: datetime) -> IncidentEvent:
        refund = self.state.refund
        if refund is None or refund.status is not RefundStatus.awaiting_approval:
            status = refund.status.value if refund else "none owed"
            raise Rejected(f"no refund is awaiting approval (refund: {status})")
        if not self.policy.may_approve(action.line, refund.amount):
            limit = self.policy.approval_limit(action.line)
            raise Rejected(
                f"{_fmt_money(refund.money)} exceeds the line-{action.line} approval limit "
                f"{limit:.2f}; a higher line must approve it"
            )
        refund.approved_by = action.agent
        refund.status = RefundStatus.approved
        event = self._record(EventType.refund_approved, now, by=action.agent, line=action.line)
        self._request_payment(refund, now)
        return event

    @handles(RetryRefund)
    def _retry_refund(self, action: RetryRefund, now: datetime) -> IncidentEvent:
        refund = self.state.refund
        if refund is None or refund.status is not RefundStatus.failed:
            status = refund.status.value if refund else "none owed"
            raise Rejected(f"only a failed refund can be retried (refund: {status})")
        return self._request_payment(refund, now, by=action.agent)

    @handles(SettleRefund)
    def _settle_refund(self, action: SettleRefund, now: datetime) -> IncidentEvent:
        refund = self.state.refund
        if refund is None or refund.status not in (RefundStatus.failed, RefundStatus.awaiting_approval):
            status = refund.status.value if refund else "none owed"
            raise Rejected(f"only a failed or unapproved refund can be settled by hand (refund: {status})")
        refund.status = RefundStatus.settled
        event = self._record(
            EventType.refund_settled,
            now,
            by=action.agent,
            reference=action.reference,
            **self._refund_data(refund),
        )
        self._close_if_pending(now)
        return event

    @handles(SettleCompensation)
    def _settle_compensation(self, action: SettleCompensation, now: datetime) -> IncidentEvent:
        self._require_not_closed("settle the compensation of")
        compensation = self.state.compensation
        if compensation is None or compensation.status != "failed":
            status = compensation.status if compensation else "none owed"
            raise Rejected(f"only a failed compensation can be settled by hand (compensation: {status})")
        compensation.status = "settled"
        compensation.reference = action.reference
        money = Money(amount=compensation.amount, currency=compensation.currency)
        event = self._record(
            EventType.compensation_settled,
            now,
            by=action.agent,
            reference=action.reference,
            amount=f"{money.amount:.2f}",
            currency=money.currency,
            idempotency_key=compensation.idempotency_key,
        )
        self._notify_customer(
            "compensation",
            f"We are sorry it took longer than promised: {_fmt_money(money)} has been credited "
            f"to your account (ticket {self.t}).",
            now,
        )
        self._close_if_pending(now)
        return event

    @handles(Reclassify)
    def _reclassify(self, action: Reclassify, now: datetime) -> IncidentEvent:
        self._require_status(Status.open, "reclassify")
        previous = self.state.severity
        if action.severity is previous:
            raise Rejected(f"already {previous.value}")
        self.state.severity = action.severity
        event = self._record(
            EventType.severity_changed,
            now,
            by=action.agent,
            **{"from": previous.value, "to": action.severity.value, "reason": action.reason},
        )
        # The new class's clocks count from when they would have started: a shorter SLA may be due now.
        clock, rules = self.state.clock, self.rules
        if self.state.line < LAST_LINE:
            self._start_line_clock(self.state.line_entered_at)
        awaiting_first_response = (
            self.state.line == 1 and self.state.acknowledged_at is None and "acknowledge" not in self.state.sla_breaches
        )
        clock.stop(Clock.acknowledge)
        if awaiting_first_response and rules.acknowledge_within is not None:
            clock.start_from(
                Clock.acknowledge,
                self.state.opened_at,
                rules.acknowledge_within,
                f"acknowledge within {format_duration(rules.acknowledge_within)}",
            )
        clock.stop(Clock.customer_update)
        self._start_customer_updates(now)
        return event

    # --- deadline handlers ---

    def _acknowledge_overdue(self, deadline: Deadline, now: datetime) -> None:
        self._breach("acknowledge", deadline, now)
        self._notify_line(
            1,
            "acknowledge_overdue",
            f"Incident {self.t} ({self.state.severity.value}) has not been acknowledged "
            f"since {_fmt_time(self.state.opened_at)}: please take it.",
            now,
        )

    def _line_timeout(self, deadline: Deadline, now: datetime) -> None:
        self._breach(f"line_{self.state.line}", deadline, now)
        self._escalate("timeout", now)

    def _renotify_last_line(self, deadline: Deadline, now: datetime) -> None:
        self._notify_line(
            LAST_LINE,
            "renotify",
            f"Incident {self.t} ({self.state.severity.value}) is still waiting on line {LAST_LINE} "
            f"since {_fmt_time(self.state.line_entered_at)}: please act.",
            now,
        )
        self._start_renotify(now)

    def _customer_update(self, deadline: Deadline, now: datetime) -> None:
        self._notify_customer(
            "status_update",
            f"Update on {self.t}: line {self.state.line} is still working on it. We will tell you when it is fixed.",
            now,
        )
        self._start_customer_updates(now)

    def _callback_due(self, deadline: Deadline, now: datetime) -> None:
        rules = self.rules
        window = rules.feedback_window
        assert window is not None, "policy validation guarantees a feedback window with a callback"
        self.state.awaiting = "feedback"
        answer_by = self.state.clock.start(
            Clock.feedback, now, window, f"feedback window {format_duration(window)}"
        ).due_at
        self._record(EventType.feedback_requested, now, answer_by=answer_by.isoformat())
        self._notify_customer(
            "feedback_request",
            f"Is everything fine now with {self.t}? Please rate our help from 1 to 5.",
            now,
        )
        self._notify_line(1, "callback_due", f"Satisfaction callback due for {self.t}: ask the customer.", now)

    def _feedback_window_over(self, deadline: Deadline, now: datetime) -> None:
        self.state.awaiting = None
        self._close_when_money_settles("no feedback within the window", now)

    def _remind(self, deadline: Deadline, now: datetime) -> None:
        reminder = self.state.reminders.get(deadline.clock.value)
        if reminder is None:
            return
        reminder.sent += 1
        line, kind, message = self._reminder(deadline.clock, reminder)
        self._notify_line(line, kind, message, now, reminder=reminder.sent)
        self._start_reminder(deadline.clock, now)

    # --- shared transitions ---

    def _escalate(self, reason: str, now: datetime, by: str | None = None, comment: str | None = None) -> IncidentEvent:
        state = self.state
        from_line, to_line = state.line, state.line + 1
        data: dict[str, Any] = {"from_line": from_line, "to_line": to_line, "reason": reason}
        if comment:
            data["comment"] = comment
        event = self._record(EventType.escalated, now, by=by, **data)
        state.line = to_line
        state.line_entered_at = now
        state.assignee = None
        state.clock.stop(Clock.acknowledge)
        self._start_line_clock(now)
        why = "its time on the previous line ran out" if reason == "timeout" else f"{by} escalated it"
        self._notify_line(
            to_line,
            "escalated",
            f"Incident {self.t} ({state.severity.value}, {state.category}) escalated to line {to_line}: "
            f"{why}. {state.description}",
            now,
        )
        if self.rules.customer_updates_every is not None:
            self._notify_customer(
                "escalated",
                f"Update on {self.t}: your case is now with our line-{to_line} specialists.",
                now,
            )
            self._start_customer_updates(now)  # the customer just heard from us; the next update counts from here
        return event

    def _reopen(self, reason: str, now: datetime, by: str, line: int = REOPEN_LINE) -> IncidentEvent:
        state = self.state
        state.status = Status.open
        state.awaiting = None
        state.close_pending = None
        state.reopen_count += 1
        state.line = line
        state.line_entered_at = now
        state.assignee = None
        state.clock.stop(Clock.callback, Clock.feedback)
        data: dict[str, Any] = {"reason": reason, "line": state.line}
        message = f"We have reopened {self.t} and are working on it again."
        if FOLLOW_THROUGH in self.features:
            # A new promise: the reopened incident is judged (and compensated) by this fix time.
            self._renew_fix_time(now)
            data["expected_fix_by"] = state.expected_fix_by.isoformat()
            if state.severity is Severity.critical:
                message += f" We expect to fix it by {_fmt_time(state.expected_fix_by)}."
        event = self._record(EventType.reopened, now, by=by, **data)
        self._start_line_clock(now)
        self._start_customer_updates(now)
        self._notify_line(state.line, "reopened", f"Incident {self.t} reopened: {reason}", now)
        self._notify_customer("reopened", message, now)
        return event

    def _renew_fix_time(self, since: datetime) -> None:
        # The line it reopens on promises by its own SLA; the last line has none, so line 2's stands in.
        timeouts = self.rules.line_timeouts
        self.state.expected_fix_by = since + timeouts.get(self.state.line, timeouts[REOPEN_LINE])

    def _close_when_money_settles(self, reason: str, now: datetime) -> None:
        self.state.close_pending = reason
        self._close_if_pending(now)

    def _close_if_pending(self, now: datetime) -> None:
        state = self.state
        if state.close_pending is None or state.status is not Status.resolved:
            return
        if state.refund is not None and state.refund.status not in SETTLED_REFUND:
            return
        if state.compensation is not None and state.compensation.status == "granting":
            return
        if FOLLOW_THROUGH in self.features and state.compensation is not None and state.compensation.status == "failed":
            return  # a credit that could not be paid is a task: it closes when settled by hand
        reason, state.close_pending = state.close_pending, None
        state.status = Status.closed
        state.closed_at = now
        state.awaiting = None
        state.clock.stop_all()
        self._record(EventType.closed, now, reason=reason)

    def _owe_refund(self, money: Money, added_by: str, approver_line: int, now: datetime) -> IncidentEvent:
        refund = RefundState(
            amount=money.amount,
            currency=money.currency,
            status=RefundStatus.awaiting_approval,
            idempotency_key=f"{self.t}:refund:{money.amount:.2f}{money.currency}",
            owed_since=now,
            added_by=added_by,
        )
        self.state.refund = refund
        if self.policy.may_approve(approver_line, money.amount):
            refund.status = RefundStatus.approved
            refund.approved_by = added_by if added_by != "opened" else f"policy: line-{approver_line} limit"
            return self._request_payment(refund, now, by=None if added_by == "opened" else added_by)
        event = self._record(
            EventType.refund_requested,
            now,
            by=None if added_by == "opened" else added_by,
            awaiting="approval",
            **self._refund_data(refund),
        )
        limit = self.policy.approval_limit(approver_line)
        self._notify_line(
            2,
            "refund_approval",
            f"Refund of {_fmt_money(money)} for {self.t} is above the line-{approver_line} limit "
            f"{limit:.2f}: approve it (approve_refund) or settle it.",
            now,
        )
        return event

    def _request_payment(self, refund: RefundState, now: datetime, by: str | None = None) -> IncidentEvent:
        refund.status = RefundStatus.requested
        refund.attempts_started += 1
        refund.failure = None
        event = self._record(
            EventType.refund_requested, now, by=by, round=refund.attempts_started, **self._refund_data(refund)
        )
        self._effects.append(PayRefund(idempotency_key=refund.idempotency_key, money=refund.money))
        return event

    def _grant_compensation_if_owed(self, now: datetime) -> None:
        state, money = self.state, self.rules.compensation
        if FOLLOW_THROUGH in self.features:
            self._grant_compensation_for_this_fix(now)
            return
        if money is None or state.compensation is not None or state.resolved_at is None:
            return
        breached = "line_1" in state.sla_breaches or state.resolved_at > state.expected_fix_by
        if not breached:
            return
        key = f"{self.t}:compensation"
        state.compensation = CompensationState(
            amount=money.amount, currency=money.currency, status="granting", idempotency_key=key
        )
        self._effects.append(GrantCompensation(idempotency_key=key, money=money))

    def _grant_compensation_for_this_fix(self, now: datetime) -> None:
        """Judge the fix just recorded by the promise in force: the opening's, or the latest reopen's.

        One credit per incident: a reopened incident that is late again is credited again only if
        the policy says so (`compensate_again_after_reopen`), and only once the earlier credit has
        reached the customer; a credit still unpaid stays the one task to settle.
        """
        state, money = self.state, self.rules.compensation
        if money is None or state.resolved_at is None:
            return
        late = state.resolved_at > state.expected_fix_by
        if state.reopen_count == 0:
            late = late or "line_1" in state.sla_breaches
        if not late:
            return
        earlier = state.compensation
        if earlier is not None and not (
            self.rules.compensate_again_after_reopen and earlier.status in ("granted", "settled")
        ):
            return
        key = f"{self.t}:compensation" if earlier is None else f"{self.t}:compensation:{state.reopen_count}"
        state.compensation = CompensationState(
            amount=money.amount, currency=money.currency, status="granting", idempotency_key=key
        )
        self._effects.append(GrantCompensation(idempotency_key=key, money=money))

    # --- reminders: work that waits on a person always has a clock ---

    def _reminders_wanted(self) -> dict[Clock, str]:
        """Which reminder ladders the incident needs now, each with what it is about."""
        state, wanted = self.state, {}
        if state.status is Status.closed:
            return {}
        if state.status is Status.open and state.line >= LAST_LINE and state.assignee is not None:
            # Owned on the last line: nothing escalates it any more. A note is news and starts over.
            wanted[Clock.owned_reminder] = f"owned:{state.assignee}:{state.notes}"
        refund = state.refund
        if refund is not None and refund.status not in SETTLED_REFUND:
            wanted[Clock.refund_reminder] = f"refund:{refund.status.value}:{refund.attempts_started}"
        compensation = state.compensation
        if compensation is not None and compensation.status in ("granting", "failed"):
            wanted[Clock.compensation_reminder] = f"compensation:{compensation.status}:{compensation.idempotency_key}"
        return wanted

    def _keep_reminders(self, now: datetime) -> None:
        """Start, restart or stop each reminder ladder so that it matches the work waiting now."""
        if FOLLOW_THROUGH not in self.features:
            return
        state, wanted = self.state, self._reminders_wanted()
        for clock in REMINDER_LADDERS:
            about = wanted.get(clock)
            current = state.reminders.get(clock.value)
            if about is None:
                state.reminders.pop(clock.value, None)
                state.clock.stop(clock)
            elif current is None or current.about != about:
                state.reminders[clock.value] = ReminderState(about=about, since=now)
                self._start_reminder(clock, now)
            elif not state.clock.running(clock):
                self._start_reminder(clock, now)

    def _start_reminder(self, clock: Clock, now: datetime) -> None:
        reminder = self.state.reminders[clock.value]
        ladder = REMINDER_LADDERS[clock]
        wait = self.policy.reminders_for(self.state.severity).wait(ladder, reminder.sent)
        label = f"{ladder} reminder {reminder.sent + 1} in {format_duration(wait)}"
        if reminder.sent == 0 and reminder.about.startswith(_IN_FLIGHT):
            # The payment is retried until its give-up time; only an outcome later than that is news.
            wait += self.policy.refund_give_up_after
            label = f"{ladder} payment outcome overdue after {format_duration(wait)}"
        self.state.clock.start(clock, now, wait, label)

    def _reminder(self, clock: Clock, reminder: ReminderState) -> tuple[int, str, str]:
        """Whom to remind (the line that owns the work), the notification kind, and what to do."""
        state, n, since = self.state, reminder.sent, _fmt_time(reminder.since)
        refund, compensation = state.refund, state.compensation
        if clock is Clock.owned_reminder:
            return (
                state.line,
                "owned_reminder",
                f"Reminder {n}: incident {self.t} ({state.severity.value}) is with {state.assignee} on line "
                f"{state.line} with no news since {since}. Add a note on the progress (add_note), resolve it "
                "(resolve), or let another agent take it over (acknowledge).",
            )
        if clock is Clock.refund_reminder and refund is not None:
            money = _fmt_money(refund.money)
            if refund.status is RefundStatus.awaiting_approval:
                line = self.policy.approver_line(refund.amount)
                return (
                    line,
                    "refund_reminder",
                    f"Reminder {n}: the refund of {money} for {self.t} has awaited approval since "
                    f"{_fmt_time(refund.owed_since)}. Approve it (approve_refund, line {line} or above) or "
                    "record how it was paid (settle_refund).",
                )
            if refund.status is RefundStatus.failed:
                return (
                    2,
                    "refund_reminder",
                    f"Reminder {n}: the refund of {money} for {self.t} (owed since {_fmt_time(refund.owed_since)}) "
                    f"failed: {refund.failure}. Retry it (retry_refund) or record how it was paid (settle_refund).",
                )
            return (
                2,
                "payment_overdue",
                f"Reminder {n}: the refund of {money} for {self.t} was sent to the payment provider at {since} "
                f"(round {refund.attempts_started}) and has no outcome past its give-up time. Check the worker "
                f"and the provider for idempotency key {refund.idempotency_key}.",
            )
        if clock is Clock.compensation_reminder and compensation is not None:
            money = f"{compensation.amount:.2f} {compensation.currency}"
            if compensation.status == "failed":
                return (
                    2,
                    "compensation_reminder",
                    f"Reminder {n}: the goodwill credit of {money} for {self.t} could not be paid "
                    f"({compensation.failure}). Credit it by hand and record it (settle_compensation with a "
                    "reference); the incident closes after that.",
                )
            return (
                2,
                "payment_overdue",
                f"Reminder {n}: the goodwill credit of {money} for {self.t} was sent to the payment provider at "
                f"{since} and has no outcome past its give-up time. Check the worker and the provider for "
                f"idempotency key {compensation.idempotency_key}.",
            )
        return state.line, "reminder", f"Reminder {n}: incident {self.t} is waiting on line {state.line}."

    def _breach(self, clock_name: str, deadline: Deadline, now: datetime) -> None:
        if clock_name not in self.state.sla_breaches:
            self.state.sla_breaches.append(clock_name)
        self._record(
            EventType.sla_breached, now, clock=clock_name, deadline=deadline.due_at.isoformat(), label=deadline.label
        )

    def _start_line_clock(self, since: datetime) -> None:
        clock, line = self.state.clock, self.state.line
        if line >= LAST_LINE:
            clock.stop(Clock.line)
            self._start_renotify(since)
            return
        timeout = self.rules.line_timeouts[line]
        clock.start_from(Clock.line, since, timeout, f"line-{line} SLA {format_duration(timeout)}")

    def _start_renotify(self, now: datetime) -> None:
        every = self.rules.renotify_every
        self.state.clock.start(Clock.renotify, now, every, f"line-{LAST_LINE} re-notify every {format_duration(every)}")

    def _start_customer_updates(self, now: datetime) -> None:
        every = self.rules.customer_updates_every
        if every is not None and self.state.status is Status.open:
            self.state.clock.start(
                Clock.customer_update, now, every, f"customer status update every {format_duration(every)}"
            )

    # --- plumbing ---

    @property
    def t(self) -> str:
        return self.state.ticket_id

    def _opening_message(self) -> str:
        if self.state.severity is Severity.critical:
            return (
                f"We are sorry for the trouble. Your ticket number is {self.t}. Our specialists are on it and "
                f"we expect to fix it by {_fmt_time(self.state.expected_fix_by)}; we will keep you informed."
            )
        return f"Thank you, we have registered your request. Your ticket number is {self.t}."

    def _record(self, event_type: EventType, now: datetime, by: str | None = None, **data: Any) -> IncidentEvent:
        self.state.event_seq += 1
        event = IncidentEvent(seq=self.state.event_seq, type=event_type, at=now, by=by, data=data)
        self.state.events.append(event)
        return event

    def _notify_customer(self, kind: str, message: str, now: datetime) -> None:
        event = self._record(EventType.customer_notified, now, kind=kind)
        self._effects.append(Notify("customer", kind, message, event.seq))

    def _notify_line(self, line: int, kind: str, message: str, now: datetime, **data: Any) -> None:
        event = self._record(EventType.line_notified, now, line=line, kind=kind, **data)
        self._effects.append(Notify(line_recipient(line), kind, message, event.seq))

    def _require_status(self, status: Status, verb: str) -> None:
        if self.state.status is not status:
            raise Rejected(f"cannot {verb}: the incident is {self.state.status.value}, not {status.value}")

    def _require_not_closed(self, verb: str) -> None:
        if self.state.status is Status.closed:
            raise Rejected(f"cannot {verb} a closed incident")

    def _require_refund(self) -> RefundState:
        assert self.state.refund is not None, "payment result without a refund"
        return self.state.refund

    @staticmethod
    def _refund_data(refund: RefundState) -> dict[str, Any]:
        return {
            "amount": f"{refund.amount:.2f}",
            "currency": refund.currency,
            "idempotency_key": refund.idempotency_key,
        }

    def _refresh(self, now: datetime | None = None) -> None:
        """Keep the reminders in step with the work waiting (given `now`), and the deadline fields with the clock."""
        if now is not None:
            self._keep_reminders(now)
        clock = self.state.clock
        self.state.sla_deadline = clock.due_at(Clock.line)
        self.state.acknowledge_deadline = clock.due_at(Clock.acknowledge)
        upcoming = clock.next()
        self.state.next_deadline = upcoming.due_at if upcoming else None

    def _take_effects(self) -> list[Effect]:
        effects, self._effects = self._effects, []
        return effects


def _actor(action: ActionModel) -> str | None:
    for name in ("agent", "by"):
        value = getattr(action, name, None)
        if isinstance(value, str):
            return value
    return "customer" if action.type in ("feedback", "customer_contact") else None
