"""The incident's money: a refund owed to the customer and a goodwill credit for a late fix.

A sub-machine of its own, as functions over the incident (`IncidentCore`). A
refund is owed (at opening, on a recontact, or added by line 2), approved by a
line whose limit covers it (or at once by the policy), paid through the provider
with one idempotency key, and retried or settled by hand when it fails. A credit
is granted when the fix came later than promised, and settled by hand when it
could not be paid. While money is on its way or waiting on a person, the
incident does not close, and a reminder ladder chases it (FOLLOW_THROUGH).
The lifecycle (incident.py) calls in here and closes the incident once nothing
is owed; the action handlers here join the catalogue through `@handles`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from workflows.domain.actions import AddRefund, ApproveRefund, RetryRefund, SettleCompensation, SettleRefund
from workflows.domain.core import (
    FOLLOW_THROUGH,
    Effect,
    GrantCompensation,
    IncidentCore,
    PayRefund,
    Rejected,
    handles,
)
from workflows.domain.messages import Message, fmt_amount, fmt_money, fmt_time
from workflows.domain.models import (
    FINISHED_REFUND,
    CompensationState,
    EventType,
    IncidentEvent,
    IncidentState,
    Money,
    Refund,
    RefundState,
    RefundStatus,
    ReminderState,
)
from workflows.domain.sla import Clock

# Refund authority is the acting agent's own (switched on per incident through `workflow.patched`): an action
# carrying `actor_line` (the API sets it from the agent's token) is judged by that line, not the incident's: line 1
# adds and pays a refund within its limit without escalating, and is refused above it. A refund above the
# policy's four-eyes threshold needs two approvals by different agents. A refund is settled by hand only once
# approved (failed after its attempts): never while unapproved, never while a payment may be in flight.
# A raw signal without `actor_line` keeps the behaviour of before (the incident's line, or the claimed `line`).
AGENT_AUTHORITY = "agent-authority"
# After the provider answered a refund's idempotency key with a final no (a business rejection, which the provider
# answers that key with from then on), a retry pays under a new key, but only once a ledger lookup by the old key
# says nothing was paid under it; if something was, the refund is recorded as paid. Switched on (through
# `workflow.patched`) by an incident's first retry_refund; before, a retry sent the same key again.
NEW_KEY_AFTER_LOOKUP = "new-key-after-lookup"

# Reminder subjects of money on its way to the customer: chased only once the payment's give-up time has passed.
IN_FLIGHT = ("refund:requested", "refund:approved", "compensation:granting")


# --- reading ---


def in_flight(state: IncidentState) -> bool:
    """Whether a payment is with the provider now (its outcome is still to come)."""
    refund, compensation = state.refund, state.compensation
    return (refund is not None and refund.status is RefundStatus.requested) or (
        compensation is not None and compensation.status == "granting"
    )


def payments_in_flight(state: IncidentState) -> list[Effect]:
    """The payments to ask for again after a continue-as-new: same idempotency keys, so paid at most once."""
    effects: list[Effect] = []
    refund, compensation = state.refund, state.compensation
    if refund is not None and refund.status is RefundStatus.requested:
        effects.append(_payment(refund))
    if compensation is not None and compensation.status == "granting":
        money = Money(amount=compensation.amount, currency=compensation.currency)
        effects.append(GrantCompensation(idempotency_key=compensation.idempotency_key, money=money))
    return effects


def holds_closing(state: IncidentState, features: set[str]) -> bool:
    """Whether money still keeps a resolved incident open: unpaid, on its way, or (FOLLOW_THROUGH) a failed credit."""
    if state.refund is not None and state.refund.status not in FINISHED_REFUND:
        return True
    if state.compensation is not None and state.compensation.status == "granting":
        return True
    # A credit that could not be paid is a task: it closes when settled by hand.
    return FOLLOW_THROUGH in features and state.compensation is not None and state.compensation.status == "failed"


def refund_data(refund: RefundState) -> dict[str, Any]:
    data = {
        "amount": f"{refund.amount:.2f}",
        "currency": refund.currency,
        "idempotency_key": refund.idempotency_key,
    }
    if refund.charge is not None:
        data["charge"] = refund.charge
    return data


def owed_refund(state: IncidentState) -> RefundState | None:
    """The incident's refund, unless it was refused (its charge is refunded elsewhere): then none is owed here."""
    refund = state.refund
    return refund if refund is not None and refund.status is not RefundStatus.refused else None


def same_refund(owed: RefundState, asked: Refund) -> bool:
    """Whether `asked` is the refund already owed (a repeat), not a second one."""
    return (owed.amount, owed.currency) == (asked.amount, asked.currency) and asked.charge in (None, owed.charge)


def _refund_key(incident: IncidentCore, refund: Money, charge: str | None, round: int = 1) -> str:
    # A charge's refund takes its key from the charge alone: beyond what the charge's claim covers (see
    # workflows/charge_workflow.py), the provider itself refuses to pay that charge again for another incident.
    base = f"refund:{charge}" if charge else f"{incident.t}:refund:{refund.amount:.2f}{refund.currency}"
    return base if round == 1 else f"{base}:round-{round}"


def _payment(refund: RefundState) -> PayRefund:
    return PayRefund(
        idempotency_key=refund.idempotency_key,
        money=refund.money,
        charge=refund.charge,
        look_up_key=refund.look_up_key,
    )


# --- owing and paying ---


def owe_refund(
    incident: IncidentCore, money: Refund, added_by: str, approver_line: int, now: datetime
) -> IncidentEvent:
    refund = RefundState(
        amount=money.amount,
        currency=money.currency,
        status=RefundStatus.awaiting_approval,
        idempotency_key=_refund_key(incident, money, money.charge),
        owed_since=now,
        added_by=added_by,
        charge=money.charge,
    )
    incident.state.refund = refund
    by = None if added_by == "opened" else added_by
    if AGENT_AUTHORITY in incident.features and incident.policy.needs_four_eyes(money.amount):
        return _owe_with_four_eyes(incident, refund, by, approver_line, now)
    if incident.policy.may_approve(approver_line, money.amount):
        refund.status = RefundStatus.approved
        refund.approved_by = added_by if added_by != "opened" else f"policy: line-{approver_line} limit"
        return request_payment(incident, refund, now, by=None if added_by == "opened" else added_by)
    event = incident.record(
        EventType.refund_requested,
        now,
        by=None if added_by == "opened" else added_by,
        awaiting="approval",
        **refund_data(refund),
    )
    limit = incident.policy.approval_limit(approver_line)
    text = incident.text(Message.REFUND_APPROVAL, money=fmt_money(money), line=approver_line, limit=f"{limit:.2f}")
    incident.notify_line(2, "refund_approval", text, now)
    return event


def _owe_with_four_eyes(
    incident: IncidentCore, refund: RefundState, by: str | None, approver_line: int, now: datetime
) -> IncidentEvent:
    """A refund above the four-eyes threshold: the agent adding it (if their line may approve it) is the first
    approval; it waits for a second one from another agent."""
    if by is not None and incident.policy.may_approve(approver_line, refund.amount):
        refund.first_approved_by = by
    event = incident.record(
        EventType.refund_requested, now, by=by, awaiting="approval", four_eyes=True, **refund_data(refund)
    )
    _ask_for_approval(incident, refund, approver_line, now)
    return event


def _ask_for_approval(incident: IncidentCore, refund: RefundState, approver_line: int, now: datetime) -> None:
    money = refund.money
    threshold = incident.policy.refund_four_eyes_above
    if refund.first_approved_by is not None and threshold is not None:
        text = incident.text(
            Message.REFUND_SECOND_APPROVAL,
            money=fmt_money(money),
            threshold=fmt_amount(threshold, money.currency),
            first=refund.first_approved_by,
        )
    else:
        limit = incident.policy.approval_limit(approver_line)
        limit_text = f"{limit:.2f}" if limit is not None else "none"
        text = incident.text(Message.REFUND_APPROVAL, money=fmt_money(money), line=approver_line, limit=limit_text)
    incident.notify_line(max(2, incident.policy.approver_line(money.amount)), "refund_approval", text, now)


def request_payment(incident: IncidentCore, refund: RefundState, now: datetime, by: str | None = None) -> IncidentEvent:
    refund.status = RefundStatus.requested
    refund.attempts_started += 1
    refund.failure = None
    looked_up = {"look_up_key": refund.look_up_key} if refund.look_up_key is not None else {}
    event = incident.record(
        EventType.refund_requested, now, by=by, round=refund.attempts_started, **refund_data(refund), **looked_up
    )
    incident.emit(_payment(refund))
    return event


def grant_compensation_if_owed(incident: IncidentCore, now: datetime) -> None:
    """Judge the fix just recorded: a late one earns the policy's goodwill credit."""
    state, money = incident.state, incident.rules.compensation
    if FOLLOW_THROUGH in incident.features:
        _grant_compensation_for_this_fix(incident, now)
        return
    if money is None or state.compensation is not None or state.resolved_at is None:
        return
    breached = "line_1" in state.sla_breaches or state.resolved_at > state.expected_fix_by
    if not breached:
        return
    key = f"{incident.t}:compensation"
    state.compensation = CompensationState(
        amount=money.amount, currency=money.currency, status="granting", idempotency_key=key
    )
    incident.emit(GrantCompensation(idempotency_key=key, money=money))


def _grant_compensation_for_this_fix(incident: IncidentCore, now: datetime) -> None:
    """Judge the fix just recorded by the promise in force: the opening's, or the latest reopen's.

    One credit per incident: a reopened incident that is late again is credited again only if
    the policy says so (`compensate_again_after_reopen`), and only once the earlier credit has
    reached the customer; a credit still unpaid stays the one task to settle.
    """
    state, money = incident.state, incident.rules.compensation
    if money is None or state.resolved_at is None:
        return
    late = state.resolved_at > state.expected_fix_by
    if state.reopen_count == 0:
        late = late or "line_1" in state.sla_breaches
    if not late:
        return
    earlier = state.compensation
    if earlier is not None and not (
        incident.rules.compensate_again_after_reopen and earlier.status in ("granted", "settled")
    ):
        return
    key = f"{incident.t}:compensation" if earlier is None else f"{incident.t}:compensation:{state.reopen_count}"
    state.compensation = CompensationState(
        amount=money.amount, currency=money.currency, status="granting", idempotency_key=key
    )
    incident.emit(GrantCompensation(idempotency_key=key, money=money))


# --- payment outcomes ---


def _require_refund(incident: IncidentCore) -> RefundState:
    assert incident.state.refund is not None, "payment result without a refund"
    return incident.state.refund


def _require_compensation(incident: IncidentCore) -> CompensationState:
    assert incident.state.compensation is not None, "compensation result without a compensation"
    return incident.state.compensation


def refund_paid(incident: IncidentCore, payment_id: str, now: datetime, found_under: str | None = None) -> None:
    """The provider paid it; `found_under`: found paid in the ledger under that earlier key, not paid now."""
    refund = _require_refund(incident)
    refund.status = RefundStatus.paid
    refund.payment_id = payment_id
    refund.failure = None
    refund.look_up_key = None
    found = {"found_in_ledger_under": found_under} if found_under is not None else {}
    incident.record(EventType.refund_succeeded, now, payment_id=payment_id, **refund_data(refund), **found)
    incident.notify_customer("refund_paid", Message.REFUND_PAID, now, money=refund.money)
    incident.close_if_pending(now)


def refund_failed(incident: IncidentCore, reason: str, now: datetime, answered_no: bool = False) -> None:
    """The payment failed; `answered_no`: the provider refused its key for good (a business rejection)."""
    refund = _require_refund(incident)
    refund.status = RefundStatus.failed
    refund.failure = reason
    refund.key_answered_no = answered_no
    incident.record(
        EventType.refund_failed,
        now,
        reason=reason,
        owed_since=refund.owed_since.isoformat(),
        rounds=refund.attempts_started,
        **refund_data(refund),
    )
    text = incident.text(
        Message.REFUND_TASK,
        money=fmt_money(refund.money),
        owed_since=fmt_time(refund.owed_since),
        round=refund.attempts_started,
        reason=reason,
    )
    incident.notify_line(2, "refund_task", text, now)


def refund_refused(incident: IncidentCore, refunded_by: str, now: datetime) -> None:
    """Another incident holds the refund's charge: it refunds it, so nothing is paid here, ever."""
    refund = _require_refund(incident)
    refund.status = RefundStatus.refused
    refund.refunded_by = refunded_by
    refund.failure = f"charge {refund.charge} is refunded by {refunded_by}: a charge is refunded once"
    refund.look_up_key = None
    incident.record(
        EventType.refund_refused, now, refunded_by=refunded_by, reason=refund.failure, **refund_data(refund)
    )
    about = {"charge": refund.charge, "other": refunded_by}
    incident.notify_customer("refund_elsewhere", Message.REFUND_ELSEWHERE, now, money=refund.money, **about)
    text = incident.text(Message.REFUND_REFUSED, money=fmt_money(refund.money), **about)
    incident.notify_line(incident.state.line, "refund_refused", text, now)
    incident.close_if_pending(now)


def compensation_paid(incident: IncidentCore, payment_id: str, now: datetime) -> None:
    compensation = _require_compensation(incident)
    compensation.status = "granted"
    compensation.payment_id = payment_id
    money = Money(amount=compensation.amount, currency=compensation.currency)
    incident.record(
        EventType.compensation_granted,
        now,
        amount=f"{money.amount:.2f}",
        currency=money.currency,
        payment_id=payment_id,
    )
    incident.notify_customer("compensation", Message.COMPENSATION, now, money=money)
    incident.close_if_pending(now)


def compensation_failed(incident: IncidentCore, reason: str, now: datetime) -> None:
    compensation = _require_compensation(incident)
    compensation.status = "failed"
    compensation.failure = reason
    incident.record(EventType.compensation_failed, now, reason=reason, idempotency_key=compensation.idempotency_key)
    message = Message.COMPENSATION_TASK_TO_SETTLE if FOLLOW_THROUGH in incident.features else Message.COMPENSATION_TASK
    money = fmt_amount(compensation.amount, compensation.currency)
    incident.notify_line(2, "compensation_task", incident.text(message, money=money, reason=reason), now)
    incident.close_if_pending(now)


# --- action handlers: each returns the event it recorded or raises Rejected ---


@handles(AddRefund)
def add_refund(incident: IncidentCore, action: AddRefund, now: datetime) -> IncidentEvent:
    incident.require_not_closed("add a refund to")
    own_line = action.actor_line if AGENT_AUTHORITY in incident.features else None
    if own_line is None and incident.state.line < 2:
        raise Rejected("only line 2 and above may add a refund; escalate the incident first")
    owed = owed_refund(incident.state)
    if owed is not None:
        raise Rejected(f"a refund of {fmt_money(owed.money)} is already owed on this incident")
    if own_line == 1 and not incident.policy.may_approve(1, action.refund.amount):
        limit = incident.policy.approval_limit(1)
        raise Rejected(
            f"{fmt_money(action.refund)} exceeds your line-1 limit {limit:.2f}; escalate the incident "
            "so a higher line adds it"
        )
    line = own_line if own_line is not None else incident.state.line
    return owe_refund(incident, action.refund, added_by=action.agent, approver_line=line, now=now)


@handles(ApproveRefund)
def approve_refund(incident: IncidentCore, action: ApproveRefund, now: datetime) -> IncidentEvent:
    refund = incident.state.refund
    if refund is None or refund.status is not RefundStatus.awaiting_approval:
        status = refund.status.value if refund else "none owed"
        raise Rejected(f"no refund is awaiting approval (refund: {status})")
    authority = AGENT_AUTHORITY in incident.features
    line = action.actor_line if authority and action.actor_line is not None else action.line
    if not incident.policy.may_approve(line, refund.amount):
        limit = incident.policy.approval_limit(line)
        raise Rejected(
            f"{fmt_money(refund.money)} exceeds the line-{line} approval limit {limit:.2f}; "
            "a higher line must approve it"
        )
    if authority and incident.policy.needs_four_eyes(refund.amount):
        if refund.first_approved_by is None:
            refund.first_approved_by = action.agent
            event = incident.record(EventType.refund_approved, now, by=action.agent, line=line, approval="first")
            _ask_for_approval(incident, refund, line, now)
            return event
        if refund.first_approved_by == action.agent:
            raise Rejected(
                f"{action.agent} already approved this refund; above "
                f"{incident.policy.refund_four_eyes_above:.2f} a second, different agent must approve it"
            )
    refund.approved_by = action.agent
    refund.status = RefundStatus.approved
    event = incident.record(EventType.refund_approved, now, by=action.agent, line=line)
    request_payment(incident, refund, now)
    return event


@handles(RetryRefund)
def retry_refund(incident: IncidentCore, action: RetryRefund, now: datetime) -> IncidentEvent:
    refund = incident.state.refund
    if refund is None or refund.status is not RefundStatus.failed:
        status = refund.status.value if refund else "none owed"
        raise Rejected(f"only a failed refund can be retried (refund: {status})")
    if NEW_KEY_AFTER_LOOKUP in incident.features and refund.key_answered_no:
        # The provider answers the old key with its no forever: pay under a new one, once the ledger says
        # nothing was paid under the old (the workflow asks it first, `PayRefund.look_up_key`).
        refund.look_up_key = refund.idempotency_key
        refund.idempotency_key = _refund_key(incident, refund.money, refund.charge, round=refund.attempts_started + 1)
        refund.key_answered_no = False
    return request_payment(incident, refund, now, by=action.agent)


@handles(SettleRefund)
def settle_refund(incident: IncidentCore, action: SettleRefund, now: datetime) -> IncidentEvent:
    refund = incident.state.refund
    if AGENT_AUTHORITY in incident.features:
        # Settling by hand pays without the provider: only a refund approved (and not on its way now) may be,
        # or the approval limits and four eyes would be a formality.
        if refund is None or refund.status not in (RefundStatus.failed, RefundStatus.approved):
            status = refund.status.value if refund else "none owed"
            hint = (
                {
                    RefundStatus.awaiting_approval: "; approve it first",
                    RefundStatus.requested: "; a payment attempt may still be in flight",
                }.get(refund.status, "")
                if refund
                else ""
            )
            raise Rejected(
                f"only an approved refund whose payment failed can be settled by hand (refund: {status}{hint})"
            )
    elif refund is None or refund.status not in (RefundStatus.failed, RefundStatus.awaiting_approval):
        status = refund.status.value if refund else "none owed"
        raise Rejected(f"only a failed or unapproved refund can be settled by hand (refund: {status})")
    refund.status = RefundStatus.settled
    event = incident.record(
        EventType.refund_settled,
        now,
        by=action.agent,
        reference=action.reference,
        **refund_data(refund),
    )
    incident.close_if_pending(now)
    return event


@handles(SettleCompensation)
def settle_compensation(incident: IncidentCore, action: SettleCompensation, now: datetime) -> IncidentEvent:
    incident.require_not_closed("settle the compensation of")
    compensation = incident.state.compensation
    if compensation is None or compensation.status != "failed":
        status = compensation.status if compensation else "none owed"
        raise Rejected(f"only a failed compensation can be settled by hand (compensation: {status})")
    compensation.status = "settled"
    compensation.reference = action.reference
    money = Money(amount=compensation.amount, currency=compensation.currency)
    event = incident.record(
        EventType.compensation_settled,
        now,
        by=action.agent,
        reference=action.reference,
        amount=f"{money.amount:.2f}",
        currency=money.currency,
        idempotency_key=compensation.idempotency_key,
    )
    incident.notify_customer("compensation", Message.COMPENSATION, now, money=money)
    incident.close_if_pending(now)
    return event


# --- reminders: money waiting on a person, or a payment with no outcome, is chased ---


def reminders_wanted(state: IncidentState) -> dict[Clock, str]:
    """The money reminder ladders the incident needs now, each with what it is about."""
    wanted: dict[Clock, str] = {}
    refund = state.refund
    if refund is not None and refund.status not in FINISHED_REFUND:
        wanted[Clock.refund_reminder] = f"refund:{refund.status.value}:{refund.attempts_started}"
    compensation = state.compensation
    if compensation is not None and compensation.status in ("granting", "failed"):
        wanted[Clock.compensation_reminder] = f"compensation:{compensation.status}:{compensation.idempotency_key}"
    return wanted


def reminder_text(incident: IncidentCore, clock: Clock, reminder: ReminderState) -> tuple[int, str, str] | None:
    """Whom to remind of the money (line 2, or the line that may approve), the kind, and the text; None if no money."""
    state, n, since = incident.state, reminder.sent, fmt_time(reminder.since)
    refund, compensation = state.refund, state.compensation
    if clock is Clock.refund_reminder and refund is not None:
        money = fmt_money(refund.money)
        if refund.status is RefundStatus.awaiting_approval:
            line = incident.policy.approver_line(refund.amount)
            text = incident.text(
                Message.REFUND_AWAITS_APPROVAL_REMINDER,
                n=n,
                money=money,
                owed_since=fmt_time(refund.owed_since),
                line=line,
            )
            return line, "refund_reminder", text
        if refund.status is RefundStatus.failed:
            text = incident.text(
                Message.REFUND_FAILED_REMINDER,
                n=n,
                money=money,
                owed_since=fmt_time(refund.owed_since),
                reason=refund.failure,
            )
            return 2, "refund_reminder", text
        text = incident.text(
            Message.REFUND_OVERDUE_REMINDER,
            n=n,
            money=money,
            since=since,
            round=refund.attempts_started,
            idempotency_key=refund.idempotency_key,
        )
        return 2, "payment_overdue", text
    if clock is Clock.compensation_reminder and compensation is not None:
        money = fmt_amount(compensation.amount, compensation.currency)
        if compensation.status == "failed":
            text = incident.text(Message.COMPENSATION_FAILED_REMINDER, n=n, money=money, reason=compensation.failure)
            return 2, "compensation_reminder", text
        text = incident.text(
            Message.COMPENSATION_OVERDUE_REMINDER,
            n=n,
            money=money,
            since=since,
            idempotency_key=compensation.idempotency_key,
        )
        return 2, "payment_overdue", text
    return None
