"""The incident state machine: pure rules, no I/O, no clocks of its own.

The workflow feeds it actions, expired deadlines and payment outcomes, each
with the workflow's `now`; it mutates the incident state, appends to the
domain event log and returns the side effects the workflow must carry out
(notifications, payments). An action that is not valid in the current state
is recorded as `action_rejected`, never raised.

This module is the incident's lifecycle: opened on line 1, acknowledged or
assigned, escalated (by hand or when a line's time runs out), resolved, asked
for feedback, reopened, closed, and the deadlines that drive it. The money it
owes (refunds, goodwill credits) is the sub-machine in money.py, what it says
the templates in messages.py, the plumbing both share core.py.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal

from pydantic_core import to_json

from workflows.domain import linking, money
from workflows.domain.actions import (
    CATALOGUE,
    Acknowledge,
    ActionModel,
    AddNote,
    AskCustomer,
    Assign,
    CustomerContact,
    CustomerReply,
    Escalate,
    Feedback,
    MessageCustomer,
    Reclassify,
    Reopen,
    Resolve,
    SelfHelpFailed,
    SelfHelpWorked,
)
from workflows.domain.core import (
    ANNOUNCE_ACKNOWLEDGEMENT,
    CLOSED,
    CUSTOMER_LOCALE,
    CUSTOMER_TIME,
    FOLLOW_THROUGH,
    HANDLERS,
    RECONTACT_REOPENS,
    REOPEN_WINDOW_PASSED,
    Effect,
    GrantCompensation,
    IncidentCore,
    Notify,
    Outcome,
    PayRefund,
    Recipient,
    Rejected,
    handles,
    line_recipient,
)
from workflows.domain.durations import format_duration
from workflows.domain.messages import ENGLISH, Message, fmt_amount, fmt_money, fmt_time
from workflows.domain.models import (
    SETTLED_REFUND,
    Channel,
    ClosedAs,
    EventType,
    FeedbackRecord,
    IncidentEvent,
    IncidentState,
    OpenIncident,
    ReminderState,
    Severity,
    Status,
    UndeliveredNotification,
    WaitingState,
)
from workflows.domain.notice import OutageNotice
from workflows.domain.policy import LAST_LINE, Policy
from workflows.domain.sla import PAUSED_FOR_CUSTOMER, SLA_CLOCKS, Clock, Deadline
from workflows.domain.triage import triage

# What the workflow, the intake and the tests import from here (defined in core.py, shared with money.py).
__all__ = [
    "ANNOUNCE_ACKNOWLEDGEMENT",
    "CLOSED",
    "CUSTOMER_LOCALE",
    "CUSTOMER_TIME",
    "FOLLOW_THROUGH",
    "RECONTACT_REOPENS",
    "REOPEN_WINDOW_PASSED",
    "Effect",
    "GrantCompensation",
    "Incident",
    "Notify",
    "Outcome",
    "PayRefund",
    "Recipient",
    "Rejected",
    "line_recipient",
    "unhandled_actions",
]

REOPEN_LINE = 2
# The statuses an agent works an incident in: open, or waiting on the customer's answer to a question.
ACTIVE = (Status.open, Status.waiting_on_customer)
# A rejection's reason quotes what the sender sent; the log keeps a bounded part of it.
MAX_REASON = 300
BAD_FEEDBACK = 2

ReminderLadder = Literal["owned", "refund", "compensation"]
REMINDER_LADDERS: dict[Clock, ReminderLadder] = {
    Clock.owned_reminder: "owned",
    Clock.refund_reminder: "refund",
    Clock.compensation_reminder: "compensation",
}


def unhandled_actions() -> set[str]:
    """Catalogue actions without a handler: none, or the state machine cannot take them (tests check)."""
    return set(CATALOGUE) - set(HANDLERS)


class Incident(IncidentCore):
    """One customer incident: `Incident(state, policy, features)` picks up a stored state, `open` starts one."""

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
        outage: OutageNotice | None = None,
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
            expected_fix_by=policy.working_time(verdict.severity).after(now, rules.line_timeouts[1]),
            area=request.area,
        )
        if CUSTOMER_LOCALE in features:
            state.language = request.language or policy.default_customer_language
            state.time_zone = request.time_zone or policy.default_customer_time_zone
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
        if policy.self_help_for(request.category):
            state.self_help = "offered"
            data["self_help_steps"] = len(policy.self_help_for(request.category))
        incident.record(EventType.opened, now, by=request.channel.value, **data)
        incident._start_line_clock(now)
        if rules.acknowledge_within is not None:
            incident.state.clock.start(
                Clock.acknowledge,
                now,
                rules.acknowledge_within,
                f"acknowledge within {format_duration(rules.acknowledge_within)}",
            )
        incident._start_customer_updates(now)
        if outage is not None:
            # Opened in the area of a major incident (the intake found it): "not only you", and no page.
            linking.link(incident, outage, now, by=outage.outage_id)
        else:
            opening, fields = incident._opening_message()
            incident.notify_customer("ticket_opened", opening, now, **fields)
            new = incident.text(
                Message.NEW_INCIDENT,
                severity=verdict.severity.value,
                category=request.category,
                description=request.description,
            )
            incident.notify_line(1, "new_incident", new, now)
        if request.refund is not None:
            money.owe_refund(incident, request.refund, added_by="opened", approver_line=1, now=now)
        incident._refresh(now)
        return incident, incident.take_effects()

    # --- reading ---

    @property
    def finished(self) -> bool:
        """Closed for good: a close for lack of a reply waits out the window in which a reply reopens it."""
        return self.state.status is Status.closed and not self.state.clock.running(Clock.reopen_window)

    @property
    def money_in_flight(self) -> bool:
        return money.in_flight(self.state)

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
        return self.take_effects()

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
        return effects + money.payments_in_flight(state)

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
        handler = HANDLERS[action.type]
        try:
            event = handler(self, action, now)
        except Rejected as rejection:
            return self.reject(action.type, _actor(action), str(rejection), now, rejection.code)
        self._refresh(now)
        return Outcome(accepted=True, event_seq=event.seq, effects=self.take_effects())

    def reject(self, action_type: str, by: str | None, reason: str, now: datetime, code: str = "invalid") -> Outcome:
        """Record an action that cannot apply (also used for payloads that did not even parse)."""
        self.take_effects()
        reason = reason if len(reason) <= MAX_REASON else reason[: MAX_REASON - 1] + "…"
        event = self.record(EventType.action_rejected, now, by=by, action=action_type, reason=reason)
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
            Clock.reply_reminder: self._remind_customer,
            Clock.reply_deadline: self._silence_over,
            Clock.reopen_window: self._reopen_window_over,
            Clock.outage: self._outage_silent,
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
        return self.take_effects()

    def refund_paid(self, payment_id: str, now: datetime, found_under: str | None = None) -> list[Effect]:
        money.refund_paid(self, payment_id, now, found_under)
        self._refresh(now)
        return self.take_effects()

    def refund_failed(self, reason: str, now: datetime, answered_no: bool = False) -> list[Effect]:
        money.refund_failed(self, reason, now, answered_no)
        self._refresh(now)
        return self.take_effects()

    def refund_refused(self, refunded_by: str, now: datetime) -> list[Effect]:
        money.refund_refused(self, refunded_by, now)
        self._refresh(now)
        return self.take_effects()

    def compensation_paid(self, payment_id: str, now: datetime) -> list[Effect]:
        money.compensation_paid(self, payment_id, now)
        self._refresh(now)
        return self.take_effects()

    def compensation_failed(self, reason: str, now: datetime) -> list[Effect]:
        money.compensation_failed(self, reason, now)
        self._refresh(now)
        return self.take_effects()

    def notifications_failed(self, notification_seqs: list[int], reason: str, now: datetime) -> list[Effect]:
        """Delivery gave up; the record keeps the promise visible even though the message never left."""
        self.record(EventType.notification_failed, now, notifications=notification_seqs, reason=reason)
        self.state.notifications_failed += len(notification_seqs)
        self._refresh()
        return self.take_effects()

    # --- action handlers: each returns the event it recorded or raises Rejected (the money's are in money.py) ---

    @handles(Acknowledge)
    def _acknowledge(self, action: Acknowledge, now: datetime) -> IncidentEvent:
        self._require_active("acknowledge")
        if self.state.assignee == action.agent:
            raise Rejected(f"already acknowledged by {action.agent}")
        event = self.record(EventType.acknowledged, now, by=action.agent, **self._take_ownership(action.agent, now))
        if ANNOUNCE_ACKNOWLEDGEMENT in self.features and self.rules.customer_updates_every is not None:
            # Seed 000: a critical customer hears at once that a person has their case, not only a ticket.
            self.notify_customer("acknowledged", Message.ACKNOWLEDGED, now, line=self.state.line)
        return event

    @handles(Assign)
    def _assign(self, action: Assign, now: datetime) -> IncidentEvent:
        self._require_active("assign")
        if self.state.assignee == action.assignee:
            raise Rejected(f"already with {action.assignee}")
        data = self._take_ownership(action.assignee, now)
        event = self.record(EventType.assigned, now, by=action.agent, assignee=action.assignee, **data)
        message = self.text(Message.ASSIGNED, assignee=action.assignee, agent=action.agent)
        self.notify_line(self.state.line, "assigned", message, now)
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
        self.require_not_closed("add a note")
        self.state.notes += 1
        return self.record(EventType.note_added, now, by=action.agent, text=action.text)

    @handles(Escalate)
    def _escalate_manually(self, action: Escalate, now: datetime) -> IncidentEvent:
        self._require_active("escalate")
        if self.state.line >= LAST_LINE:
            raise Rejected(f"already on line {LAST_LINE}, the last line")
        # Handing it on is not waiting any more: the next line works on it now, its clocks running.
        self._end_wait(now)
        return self._escalate("manual", now, by=action.agent, comment=action.reason)

    @handles(Resolve)
    def _resolve(self, action: Resolve, now: datetime) -> IncidentEvent:
        self._require_active("resolve")
        self._end_wait(now)  # fixed without the answer: the question is moot
        linking.end_by_own_resolution(self, now)
        return self.resolve(action.agent, action.resolution, now)

    def resolve(
        self,
        by: str,
        resolution: str,
        now: datetime,
        notice: Message = Message.RESOLVED,
        compensate: Callable[[], None] | None = None,
        **data: Any,
    ) -> IncidentEvent:
        """Record the fix: the customer is told (`notice`, with the resolution), money judged, callback set.

        `compensate` replaces the late-fix rule (a major incident's credit for its duration, linking.py).
        """
        state = self.state
        state.status = Status.resolved
        state.resolved_at = now
        state.resolution = resolution
        state.clock.stop(Clock.acknowledge, Clock.line, Clock.renotify, Clock.customer_update)
        event = self.record(EventType.resolved, now, by=by, line=state.line, resolution=resolution, **data)
        self.notify_customer("resolved", notice, now, resolution=resolution)
        if compensate is not None:
            compensate()
        else:
            money.grant_compensation_if_owed(self, now)
        rules = self.rules
        if rules.callback_after is not None:
            state.awaiting = "callback"
            deadline = state.clock.start(
                Clock.callback,
                now,
                rules.callback_after,
                f"satisfaction callback after {format_duration(rules.callback_after)}",
            )
            self.record(EventType.callback_scheduled, now, due_at=deadline.due_at.isoformat())
        else:
            self._close_when_money_settles("resolved", now)
        return event

    @handles(MessageCustomer)
    def _message_customer(self, action: MessageCustomer, now: datetime) -> IncidentEvent:
        # Seed 003: the agent sends the instructions, and the case keeps them. A closed incident has no one
        # to write for: the customer's next contact opens a new one.
        self.require_not_closed("message the customer of")
        event = self.record(EventType.customer_messaged, now, by=action.agent, text=action.text)
        self.notify_customer("agent_message", Message.AGENT_MESSAGE, now, text=action.text)
        return event

    @handles(CustomerContact)
    def _customer_contact(self, action: CustomerContact, now: datetime) -> IncidentEvent:
        state = self.state
        answers = self._awaits_answer()
        if state.status is Status.closed and not answers:
            raise Rejected("cannot join a customer contact to a closed incident", CLOSED)
        reopens = state.status is Status.resolved and RECONTACT_REOPENS in self.features
        if reopens and state.resolved_at is not None:
            window = self.policy.recontact_reopens_within
            if now - state.resolved_at > window:
                raise Rejected(
                    f"resolved more than {format_duration(window)} ago: a new incident follows it", REOPEN_WINDOW_PASSED
                )
        repeats_refund = False
        owed = money.owed_refund(state)
        if action.refund is not None and owed is not None:
            if not money.same_refund(owed, action.refund):
                raise Rejected(
                    f"refund: {fmt_money(owed.money)} is already owed on this incident; "
                    f"a second refund of {fmt_money(action.refund)} needs an agent"
                )
            repeats_refund = True
        if answers:
            # We asked them something: whatever they say now is their answer (seed 003: the same case).
            contact_updated = bool(action.contact and action.contact != state.contact)
            if contact_updated:
                state.contact = action.contact
            event = self._take_answer(action.channel, action.text, now, contact_updated=contact_updated)
            if action.refund is not None and not repeats_refund:
                money.owe_refund(self, action.refund, added_by="opened", approver_line=1, now=now)
            return event
        state.recontacts += 1
        data: dict[str, Any] = {"channel": action.channel.value, "text": action.text, "count": state.recontacts}
        if action.contact and action.contact != state.contact:
            state.contact = action.contact
            data["contact_updated"] = True  # the contact itself stays out of the event log
        if repeats_refund:
            data["refund_already_owed"] = True
        event = self.record(EventType.customer_recontacted, now, by="customer", **data)
        said = {"channel": action.channel.value, "text": action.text}
        if state.assignee:
            message = self.text(Message.CUSTOMER_RECONTACTED_OWNED, assignee=state.assignee, **said)
        else:
            message = self.text(Message.CUSTOMER_RECONTACTED, **said)
        self.notify_line(state.line, "customer_recontacted", message, now)
        if action.refund is not None and not repeats_refund:
            money.owe_refund(self, action.refund, added_by="opened", approver_line=1, now=now)
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
        event = self.record(EventType.feedback_received, now, by="customer", **data)
        if action.score <= BAD_FEEDBACK:
            self._reopen(f"customer feedback scored {action.score}", now, by="customer")
        else:
            self._close_when_money_settles(f"customer feedback scored {action.score}", now)
        return event

    @handles(Reopen)
    def _reopen_manually(self, action: Reopen, now: datetime) -> IncidentEvent:
        self.require_status(Status.resolved, "reopen")
        return self._reopen(action.reason, now, by=action.by)

    @handles(AskCustomer)
    def _ask_customer(self, action: AskCustomer, now: datetime) -> IncidentEvent:
        state = self.state
        if state.status is Status.closed:
            raise Rejected("cannot ask the customer about a closed incident", CLOSED)
        if state.status not in ACTIVE:
            raise Rejected(
                f"cannot ask the customer: the incident is {state.status.value}; the satisfaction callback asks "
                "them, and a customer contact or a reopen brings it back"
            )
        if state.status is Status.open:
            # The customer owes us an answer: the team's SLA clocks stop, and so does what chases the team or
            # tells the customer that the team is on it (restarted by the answer).
            state.clock.pause(now, PAUSED_FOR_CUSTOMER)
            state.clock.stop(Clock.renotify, Clock.customer_update)
            resume_to: Status = state.status
        else:
            assert state.waiting is not None, "waiting on the customer always has its question"
            resume_to = state.waiting.resume_to  # a further question: the pause goes on, the ladder starts over
        state.waiting = WaitingState(question=action.question, asked_by=action.agent, asked_at=now, resume_to=resume_to)
        state.status = Status.waiting_on_customer
        silence = self.policy.customer_silence
        close = state.clock.start(
            Clock.reply_deadline,
            now,
            silence.close_after,
            f"close if the customer does not answer within {format_duration(silence.close_after)}",
        )
        state.clock.stop(Clock.reply_reminder)
        self._start_reply_reminder(now)
        event = self.record(
            EventType.customer_asked,
            now,
            by=action.agent,
            question=action.question,
            line=state.line,
            answer_by=close.due_at.isoformat(),
        )
        self.notify_customer("question", Message.QUESTION, now, question=action.question)
        return event

    @handles(CustomerReply)
    def _customer_reply(self, action: CustomerReply, now: datetime) -> IncidentEvent:
        state = self.state
        if not self._awaits_answer():
            if state.status is Status.closed:
                raise Rejected("cannot take a reply for a closed incident: nothing was asked", CLOSED)
            raise Rejected(
                f"nobody asked the customer anything (the incident is {state.status.value}); "
                "send what they said as a customer contact"
            )
        return self._take_answer(action.channel, action.text, now)

    @handles(SelfHelpWorked)
    def _self_help_worked(self, action: SelfHelpWorked, now: datetime) -> IncidentEvent:
        state = self.state
        self._require_self_help("that the self-help fixed it")
        if state.status is not Status.open:
            raise Rejected(
                f"the incident is {state.status.value}: an agent is on it; tell them, and they resolve it"
                if state.status is Status.waiting_on_customer
                else f"the incident is already {state.status.value}"
            )
        # Self-resolved means no agent's time: once one has worked on it, they close it (resolve) with the answer.
        if state.acknowledged_at is not None:
            raise Rejected(
                f"{state.assignee or 'an agent'} has taken the incident since {fmt_time(state.acknowledged_at)}: "
                "tell them the self-help fixed it, and they resolve it"
            )
        if state.compacted_counts.get(EventType.customer_asked.value) or any(
            e.type is EventType.customer_asked for e in state.events
        ):
            raise Rejected(
                "an agent has asked the customer about it: tell them the self-help fixed it, and they resolve it"
            )
        if money.holds_closing(state, self.features):
            raise Rejected("money is still owed to the customer on this incident: an agent sees it through")
        event = self._record_self_help(action.channel, action.comment, worked=True, now=now)
        state.status = Status.closed
        state.closed_at = now
        state.closed_as = ClosedAs.self_resolved
        state.clock.stop_all()
        self.record(EventType.closed, now, reason="the customer's self-help fixed it", closed_as=state.closed_as.value)
        self.notify_customer("self_resolved", Message.SELF_RESOLVED, now)
        self.notify_line(state.line, "self_resolved", self.text(Message.LINE_SELF_RESOLVED), now)
        return event

    @handles(SelfHelpFailed)
    def _self_help_failed(self, action: SelfHelpFailed, now: datetime) -> IncidentEvent:
        state = self.state
        self._require_self_help("that the self-help did not fix it")
        if state.status not in ACTIVE:
            raise Rejected(f"the incident is already {state.status.value}")
        if state.self_help == "failed":
            raise Rejected("the customer already said the self-help did not fix it")
        # Nothing else changes: the SLA clocks never stopped for self-help, the team is on it all along.
        state.self_help = "failed"
        return self._record_self_help(action.channel, action.comment, worked=False, now=now)

    @handles(Reclassify)
    def _reclassify(self, action: Reclassify, now: datetime) -> IncidentEvent:
        # While waiting on the customer too: the new class's clocks start from when they would have (paused as
        # the others are), so the customer's reply resumes them with what the new class leaves.
        self._require_active("reclassify")
        previous = self.state.severity
        if action.severity is previous:
            raise Rejected(f"already {previous.value}")
        self.state.severity = action.severity
        self.count_working_time()
        event = self.record(
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
        elif (
            self.state.line > 1
            and self.state.assignee is None
            and f"acknowledge_line_{self.state.line}" not in self.state.sla_breaches
        ):
            self._start_line_acknowledge(self.state.line_entered_at)
        clock.stop(Clock.customer_update)
        self._start_customer_updates(now)
        return event

    # --- deadline handlers ---

    def _acknowledge_overdue(self, deadline: Deadline, now: datetime) -> None:
        line = self.state.line
        if line > 1:
            self._breach(f"acknowledge_line_{line}", deadline, now)
            message = self.text(
                Message.LINE_ACKNOWLEDGE_OVERDUE,
                severity=self.state.severity.value,
                line=line,
                since=fmt_time(self.state.line_entered_at),
            )
            self.notify_line(line, "acknowledge_overdue", message, now)
            return
        self._breach("acknowledge", deadline, now)
        message = self.text(
            Message.ACKNOWLEDGE_OVERDUE, severity=self.state.severity.value, opened_at=fmt_time(self.state.opened_at)
        )
        self.notify_line(1, "acknowledge_overdue", message, now)

    def _line_timeout(self, deadline: Deadline, now: datetime) -> None:
        self._breach(f"line_{self.state.line}", deadline, now)
        self._escalate("timeout", now)

    def _renotify_last_line(self, deadline: Deadline, now: datetime) -> None:
        message = self.text(
            Message.RENOTIFY,
            severity=self.state.severity.value,
            line=LAST_LINE,
            since=fmt_time(self.state.line_entered_at),
        )
        self.notify_line(LAST_LINE, "renotify", message, now)
        self._start_renotify(now)

    def _customer_update(self, deadline: Deadline, now: datetime) -> None:
        if linking.linked(self.state):
            message, fields = linking.status_update(self)
        else:
            message, fields = Message.STATUS_UPDATE, {"line": self.state.line}
        self.notify_customer("status_update", message, now, **fields)
        self._start_customer_updates(now)

    def _outage_silent(self, deadline: Deadline, now: datetime) -> None:
        linking.silent(self, deadline, now)

    def _callback_due(self, deadline: Deadline, now: datetime) -> None:
        rules = self.rules
        window = rules.feedback_window
        assert window is not None, "policy validation guarantees a feedback window with a callback"
        self.state.awaiting = "feedback"
        answer_by = self.state.clock.start(
            Clock.feedback, now, window, f"feedback window {format_duration(window)}"
        ).due_at
        self.record(EventType.feedback_requested, now, answer_by=answer_by.isoformat())
        self.notify_customer("feedback_request", Message.FEEDBACK_REQUEST, now)
        self.notify_line(1, "callback_due", self.text(Message.CALLBACK_DUE), now)

    def _feedback_window_over(self, deadline: Deadline, now: datetime) -> None:
        self.state.awaiting = None
        self._close_when_money_settles("no feedback within the window", now)

    def _remind(self, deadline: Deadline, now: datetime) -> None:
        reminder = self.state.reminders.get(deadline.clock.value)
        if reminder is None:
            return
        reminder.sent += 1
        line, kind, message = self._reminder(deadline.clock, reminder)
        self.notify_line(line, kind, message, now, reminder=reminder.sent)
        self._start_reminder(deadline.clock, now)

    # --- shared transitions ---

    def _escalate(self, reason: str, now: datetime, by: str | None = None, comment: str | None = None) -> IncidentEvent:
        state = self.state
        from_line, to_line = state.line, state.line + 1
        data: dict[str, Any] = {"from_line": from_line, "to_line": to_line, "reason": reason}
        if comment:
            data["comment"] = comment
        event = self.record(EventType.escalated, now, by=by, **data)
        state.line = to_line
        state.line_entered_at = now
        state.assignee = None
        state.clock.stop(Clock.acknowledge)
        self._start_line_clock(now)
        self._start_line_acknowledge(now)
        about = {"severity": state.severity.value, "category": state.category, "description": state.description}
        if reason == "timeout":
            message = self.text(Message.LINE_ESCALATED_TIMEOUT, line=to_line, **about)
        else:
            message = self.text(Message.LINE_ESCALATED_MANUAL, line=to_line, agent=by, **about)
        self.notify_line(to_line, "escalated", message, now)
        if self.rules.customer_updates_every is not None:
            self.notify_customer("escalated", Message.ESCALATED, now, line=to_line)
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
        message, fields = Message.REOPENED, dict[str, object]()
        if FOLLOW_THROUGH in self.features:
            # A new promise: the reopened incident is judged (and compensated) by this fix time.
            self._renew_fix_time(now)
            data["expected_fix_by"] = state.expected_fix_by.isoformat()
            if state.severity is Severity.critical:
                message, fields = Message.REOPENED_WITH_FIX_TIME, {"fix_by": state.expected_fix_by}
        event = self.record(EventType.reopened, now, by=by, **data)
        self._start_line_clock(now)
        self._start_line_acknowledge(now)
        self._start_customer_updates(now)
        self.notify_line(state.line, "reopened", self.text(Message.LINE_REOPENED, reason=reason), now)
        self.notify_customer("reopened", message, now, **fields)
        return event

    # --- waiting on the customer ---

    def _require_active(self, verb: str) -> None:
        if self.state.status not in ACTIVE:
            raise Rejected(f"cannot {verb}: the incident is {self.state.status.value}, not open")

    def _awaits_answer(self) -> bool:
        """Whether what the customer says now answers an agent's question (also just after a close for silence)."""
        state = self.state
        if state.waiting is None:
            return False
        return state.status is Status.waiting_on_customer or (
            state.status is Status.closed and state.clock.running(Clock.reopen_window)
        )

    def _take_answer(self, channel: Channel, text: str, now: datetime, contact_updated: bool = False) -> IncidentEvent:
        """The customer answered: the clocks run on where they stopped; after a close for silence, it reopens."""
        state, waiting = self.state, self.state.waiting
        assert waiting is not None, "an answer needs a question"
        reopening = state.status is Status.closed
        waited = format_duration(now - waiting.asked_at)
        data: dict[str, Any] = {"channel": channel.value, "text": text, "asked_by": waiting.asked_by, "waited": waited}
        if contact_updated:
            data["contact_updated"] = True  # the contact itself stays out of the event log
        event = self.record(EventType.customer_replied, now, by="customer", **data)
        self._end_wait(now)
        if reopening:
            state.closed_at = None
            state.closed_as = None
            state.reopen_count += 1
            reason = "the customer answered after it closed for lack of a reply"
            self.record(EventType.reopened, now, by="customer", reason=reason, line=state.line)
            self.notify_customer("reopened", Message.REOPENED, now)
        else:
            self.notify_customer("reply_received", Message.REPLY_RECEIVED, now)
        message = self.text(
            Message.LINE_CUSTOMER_REPLIED, agent=waiting.asked_by, channel=channel.value, text=text, waited=waited
        )
        self.notify_line(state.line, "customer_replied", message, now)
        return event

    def _end_wait(self, now: datetime) -> None:
        """Nothing waits on the customer any more: the SLA clocks (and the promised fix time) move on by the
        pause, and the incident is back in the status it was asked from."""
        state = self.state
        waiting = state.waiting
        if waiting is None:
            return
        clock = state.clock
        if clock.resumes_on(PAUSED_FOR_CUSTOMER):  # a major incident may still hold the clocks
            state.expected_fix_by = clock.moved_by_pause(state.expected_fix_by, now)
        clock.resume(now, PAUSED_FOR_CUSTOMER)
        clock.stop(Clock.reply_reminder, Clock.reply_deadline, Clock.reopen_window)
        state.waiting = None
        state.status = waiting.resume_to
        if state.status is Status.open:
            self._start_customer_updates(now)
            if state.line >= LAST_LINE and state.assignee is None:
                self._start_renotify(now)

    def _start_reply_reminder(self, now: datetime) -> None:
        state, waiting = self.state, self.state.waiting
        assert waiting is not None, "a reminder needs a question"
        rungs = self.policy.customer_silence.remind_after
        if waiting.reminders_sent >= len(rungs):
            return
        wait = rungs[waiting.reminders_sent]
        reminder = state.clock.start(
            Clock.reply_reminder, now, wait, f"remind the customer of the question in {format_duration(wait)}"
        )
        close = state.clock.due_at(Clock.reply_deadline)
        if close is not None and reminder.due_at >= close:
            state.clock.stop(Clock.reply_reminder)  # the close notice says it all

    def _remind_customer(self, deadline: Deadline, now: datetime) -> None:
        state, waiting = self.state, self.state.waiting
        if waiting is None or state.status is not Status.waiting_on_customer:
            return
        waiting.reminders_sent += 1
        close = state.clock.due_at(Clock.reply_deadline)
        assert close is not None, "waiting on the customer always has its close"
        self.notify_customer("reply_reminder", Message.REPLY_REMINDER, now, question=waiting.question, close_by=close)
        self._start_reply_reminder(now)

    def _silence_over(self, deadline: Deadline, now: datetime) -> None:
        state, waiting = self.state, self.state.waiting
        if waiting is None or state.status is not Status.waiting_on_customer:
            return
        waited = format_duration(now - waiting.asked_at)
        if money.holds_closing(state, self.features):
            # Seed 002: money owed never vanishes with a silent customer; the team carries on.
            owed = self._money_owed()
            self._end_wait(now)
            message = self.text(Message.LINE_NO_REPLY_MONEY_OWED, agent=waiting.asked_by, waited=waited, money=owed)
            self.notify_line(state.line, "no_reply", message, now)
            return
        clock = state.clock
        # The paused SLA deadlines stay, so that a reply within the window resumes them where they stopped.
        clock.stop(*(c for c in list(clock.deadlines) if c not in SLA_CLOCKS))
        window = self.policy.recontact_reopens_within
        reopen = clock.start(Clock.reopen_window, now, window, f"a reply reopens it within {format_duration(window)}")
        state.status = Status.closed
        state.closed_at = now
        state.closed_as = ClosedAs.no_reply
        self.record(
            EventType.closed,
            now,
            reason=f"no answer from the customer within {waited}",
            closed_as=ClosedAs.no_reply.value,
            reopen_by=reopen.due_at.isoformat(),
        )
        reopen_by = fmt_time(reopen.due_at)
        self.notify_customer("closed_no_reply", Message.CLOSED_NO_REPLY, now, reopen_by=reopen.due_at)
        message = self.text(Message.LINE_CLOSED_NO_REPLY, agent=waiting.asked_by, waited=waited, reopen_by=reopen_by)
        self.notify_line(state.line, "closed_no_reply", message, now)

    def _reopen_window_over(self, deadline: Deadline, now: datetime) -> None:
        state = self.state
        state.waiting = None
        state.clock.stop_all()
        state.clock.resume(now, PAUSED_FOR_CUSTOMER)  # no deadline is left to move: this only ends the pause

    def _money_owed(self) -> str:
        refund, compensation = self.state.refund, self.state.compensation
        if refund is not None and refund.status not in SETTLED_REFUND:
            return fmt_money(refund.money)
        if compensation is not None:
            return fmt_amount(compensation.amount, compensation.currency)
        return "money"

    # --- self-help (seed 004, level 1) ---

    def _require_self_help(self, what: str) -> None:
        if self.state.self_help is None:
            category = self.state.category
            raise Rejected(f"cannot record {what}: no self-help steps went out for this incident ({category})")

    def _record_self_help(self, channel: Channel, comment: str | None, worked: bool, now: datetime) -> IncidentEvent:
        data: dict[str, Any] = {"worked": worked, "channel": channel.value}
        if comment:
            data["comment"] = comment
        return self.record(EventType.self_help_answered, now, by="customer", **data)

    def _renew_fix_time(self, since: datetime) -> None:
        # The line it reopens on promises by its own SLA; the last line has none, so line 2's stands in.
        timeouts = self.rules.line_timeouts
        timeout = timeouts.get(self.state.line, timeouts[REOPEN_LINE])
        self.state.expected_fix_by = self.state.clock.after(Clock.line, since, timeout)

    def _close_when_money_settles(self, reason: str, now: datetime) -> None:
        self.state.close_pending = reason
        self.close_if_pending(now)

    def close_if_pending(self, now: datetime) -> None:
        state = self.state
        if state.close_pending is None or state.status is not Status.resolved:
            return
        if money.holds_closing(state, self.features):
            return
        reason, state.close_pending = state.close_pending, None
        state.status = Status.closed
        state.closed_at = now
        state.closed_as = ClosedAs.resolved
        state.awaiting = None
        state.clock.stop_all()
        self.record(EventType.closed, now, reason=reason)

    # --- reminders: work that waits on a person always has a clock ---

    def _reminders_wanted(self) -> dict[Clock, str]:
        """Which reminder ladders the incident needs now, each with what it is about."""
        state, wanted = self.state, {}
        if state.status is Status.closed:
            return {}
        if (
            state.status is Status.open
            and state.line >= LAST_LINE
            and state.assignee is not None
            and not linking.linked(state)  # the major incident owns escalation while linked
        ):
            # Owned on the last line: nothing escalates it any more. A note is news and starts over.
            wanted[Clock.owned_reminder] = f"owned:{state.assignee}:{state.notes}"
        wanted.update(money.reminders_wanted(state))
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
        if reminder.sent == 0 and reminder.about.startswith(money.IN_FLIGHT):
            # The payment is retried until its give-up time; only an outcome later than that is news.
            wait += self.policy.refund_give_up_after
            label = f"{ladder} payment outcome overdue after {format_duration(wait)}"
        self.state.clock.start(clock, now, wait, label)

    def _reminder(self, clock: Clock, reminder: ReminderState) -> tuple[int, str, str]:
        """Whom to remind (the line that owns the work), the notification kind, and what to do."""
        state, n = self.state, reminder.sent
        if clock is Clock.owned_reminder:
            message = self.text(
                Message.OWNED_REMINDER,
                n=n,
                severity=state.severity.value,
                assignee=state.assignee,
                line=state.line,
                since=fmt_time(reminder.since),
            )
            return state.line, "owned_reminder", message
        about_money = money.reminder_text(self, clock, reminder)
        if about_money is not None:
            return about_money
        return state.line, "reminder", self.text(Message.REMINDER, n=n, line=state.line)

    def _breach(self, clock_name: str, deadline: Deadline, now: datetime) -> None:
        if clock_name not in self.state.sla_breaches:
            self.state.sla_breaches.append(clock_name)
        self.record(
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

    def _start_line_acknowledge(self, since: datetime) -> None:
        """The first-response clock of the line the incident has just reached (lines 2 and 3, if the policy says)."""
        line = self.state.line
        within = self.rules.line_acknowledge_within.get(line)
        if line > 1 and within is not None:
            self.state.clock.start_from(
                Clock.acknowledge, since, within, f"line-{line} acknowledge within {format_duration(within)}"
            )

    def _start_renotify(self, now: datetime) -> None:
        if linking.linked(self.state):
            return  # the major incident owns escalation while linked; unlinking starts it again
        every = self.rules.renotify_every
        self.state.clock.start(Clock.renotify, now, every, f"line-{LAST_LINE} re-notify every {format_duration(every)}")

    def _start_renotify_if_waiting(self, now: datetime) -> None:
        """On the last line with nobody owning it, the re-notification runs (again: after a link ended)."""
        state = self.state
        if state.status is Status.open and state.line >= LAST_LINE and state.assignee is None:
            self._start_renotify(now)

    def _start_customer_updates(self, now: datetime) -> None:
        every = self.rules.customer_updates_every
        if every is not None and self.state.status is Status.open:
            self.state.clock.start(
                Clock.customer_update, now, every, f"customer status update every {format_duration(every)}"
            )

    # --- plumbing ---

    def _opening_message(self) -> tuple[Message, dict[str, object]]:
        # An incident opened before languages is written to in English (messages.render_for_customer).
        steps = self.policy.self_help_for(self.state.category, self.state.language or ENGLISH)
        critical = self.state.severity is Severity.critical
        fields: dict[str, object] = {"fix_by": self.state.expected_fix_by} if critical else {}
        if steps:
            fields["steps"] = "\n".join(f"{number}. {step}" for number, step in enumerate(steps, start=1))
            return (Message.TICKET_OPENED_CRITICAL_SELF_HELP if critical else Message.TICKET_OPENED_SELF_HELP), fields
        return (Message.TICKET_OPENED_CRITICAL if critical else Message.TICKET_OPENED), fields

    def _refresh(self, now: datetime | None = None) -> None:
        """Keep the reminders in step with the work waiting (given `now`), and the deadline fields with the clock."""
        if now is not None:
            self._keep_reminders(now)
        clock = self.state.clock
        # Paused SLA clocks have no due time until the customer answers (the audit must not count them overdue).
        paused = clock.paused_since is not None
        self.state.sla_deadline = None if paused else clock.due_at(Clock.line)
        self.state.acknowledge_deadline = None if paused else clock.due_at(Clock.acknowledge)
        upcoming = clock.next()
        self.state.next_deadline = upcoming.due_at if upcoming else None


def _actor(action: ActionModel) -> str | None:
    for name in ("agent", "by"):
        value = getattr(action, name, None)
        if isinstance(value, str):
            return value
    return "customer" if action.meta.role == "customer_voice" else None
