"""The incident's rules, without a server: transitions, clocks, refunds, compensation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from pydantic import ValidationError

from tests.helpers import open_request
from workflows.domain.actions import ACTION_ADAPTER, MAX_CUSTOMER_MESSAGE
from workflows.domain.incident import (
    ANNOUNCE_ACKNOWLEDGEMENT,
    CUSTOMER_LOCALE,
    FOLLOW_THROUGH,
    GrantCompensation,
    Incident,
    Notify,
    PayRefund,
)
from workflows.domain.models import Money, OpenIncident
from workflows.domain.policy import PolicyError, default_policy, parse_policy
from workflows.domain.sla import Clock, SlaClock

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
H = timedelta(hours=1)
M = timedelta(minutes=1)
ACTION = ACTION_ADAPTER


def action(**data):
    return ACTION.validate_python(data)


def opened(**overrides) -> tuple[Incident, list]:
    return Incident.open("INC-TEST01", open_request(**overrides), default_policy(), T0)


def types(incident: Incident) -> list[str]:
    return [e.type.value for e in incident.state.events]


def notified(effects) -> list[tuple[str, str]]:
    return [(e.recipient, e.kind) for e in effects if isinstance(e, Notify)]


def test_critical_open_tells_the_customer_the_ticket_with_an_apology_and_a_time():
    incident, effects = opened()
    assert notified(effects) == [("customer", "ticket_opened"), ("line_1", "new_incident")]
    message = effects[0].message
    assert "INC-TEST01" in message and "sorry" in message and "10:00 UTC" in message
    state = incident.state
    assert state.sla_deadline == T0 + H and state.acknowledge_deadline == T0 + 15 * M
    assert state.next_deadline == T0 + 15 * M


def test_routine_open_gets_the_ticket_number_without_ceremony():
    incident, effects = opened(category="tariff_change")
    assert notified(effects) == [("customer", "ticket_opened"), ("line_1", "new_incident")]
    assert "sorry" not in effects[0].message and "INC-TEST01" in effects[0].message
    # Monday 12:00 in Moscow: 6 h of the office's working day left, the other 2 h on Tuesday morning.
    assert incident.state.acknowledge_deadline is None and incident.state.sla_deadline == T0 + 23 * H


def test_unknown_category_is_opened_as_routine_with_the_note_in_the_log():
    incident, _ = opened(category="alien_invasion")
    assert incident.state.severity == "routine"
    assert "alien_invasion" in incident.state.events[0].data["triage_note"]


def test_acknowledge_stops_the_first_response_clock_but_not_the_line_clock():
    incident, _ = opened()
    outcome = incident.act(action(type="acknowledge", agent="ann"), T0 + 5 * M)
    assert outcome.accepted
    assert incident.state.assignee == "ann" and incident.state.acknowledge_deadline is None
    assert incident.state.sla_deadline == T0 + H
    effects = incident.advance(T0 + H)
    assert incident.state.line == 2 and incident.state.sla_breaches == ["line_1"]
    assert ("line_2", "escalated") in notified(effects) and ("customer", "escalated") in notified(effects)


def test_missed_acknowledgement_reannounces_to_line_one_and_records_the_breach():
    incident, _ = opened()
    effects = incident.advance(T0 + 15 * M)
    assert notified(effects) == [("line_1", "acknowledge_overdue")]
    assert incident.state.sla_breaches == ["acknowledge"] and incident.state.line == 1
    assert types(incident)[-2:] == ["sla_breached", "line_notified"]


def test_lines_escalate_on_time_and_the_last_line_renotifies_until_someone_acts():
    incident, _ = opened()
    incident.advance(T0 + H)
    assert incident.state.line == 2 and incident.state.sla_deadline == T0 + 5 * H
    incident.advance(T0 + 5 * H)
    assert incident.state.line == 3 and incident.state.sla_deadline is None
    escalations = [e.data for e in incident.state.events if e.type == "escalated"]
    assert escalations == [
        {"from_line": 1, "to_line": 2, "reason": "timeout"},
        {"from_line": 2, "to_line": 3, "reason": "timeout"},
    ]

    def to_lines(effects):
        return [n for n in notified(effects) if n[0] != "customer"]

    assert to_lines(incident.advance(T0 + 6 * H)) == [("line_3", "renotify")]
    assert to_lines(incident.advance(T0 + 7 * H)) == [("line_3", "renotify")]
    incident.act(action(type="acknowledge", agent="duty-manager"), T0 + 7 * H + M)
    assert to_lines(incident.advance(T0 + 30 * H)) == []
    assert incident.state.status == "open"


def test_manual_escalation_and_the_last_line_refuses_more():
    incident, _ = opened(category="ui_typo")
    assert incident.act(action(type="escalate", agent="ann", reason="needs a developer"), T0 + M).accepted
    assert incident.act(action(type="escalate", agent="bob", reason="needs a manager"), T0 + 2 * M).accepted
    outcome = incident.act(action(type="escalate", agent="bob", reason="again"), T0 + 3 * M)
    assert not outcome.accepted and "last line" in (outcome.reason or "")
    last = incident.state.events[-1]
    assert last.type == "action_rejected" and last.data["action"] == "escalate" and last.by == "bob"


def test_resolve_then_callback_and_good_feedback_closes():
    incident, _ = opened()
    incident.act(action(type="acknowledge", agent="ann"), T0 + M)
    effects = incident.act(action(type="resolve", agent="ann", resolution="replaced the modem"), T0 + 30 * M).effects
    assert notified(effects) == [("customer", "resolved")]
    assert not any(isinstance(e, GrantCompensation) for e in effects)
    assert incident.state.status == "resolved" and incident.state.awaiting == "callback"
    assert incident.state.next_deadline == T0 + 30 * M + 24 * H
    effects = incident.advance(T0 + 30 * M + 24 * H)
    assert notified(effects) == [("customer", "feedback_request"), ("line_1", "callback_due")]
    incident.act(action(type="feedback", score=5, comment="great"), T0 + 26 * H)
    assert incident.state.status == "closed" and incident.finished


def test_bad_feedback_reopens_on_line_two():
    incident, _ = opened()
    incident.act(action(type="resolve", agent="ann", resolution="rebooted"), T0 + 10 * M)
    incident.advance(T0 + 10 * M + 24 * H)
    outcome = incident.act(action(type="feedback", score=2), T0 + 25 * H)
    assert outcome.accepted
    state = incident.state
    assert (state.status, state.line, state.reopen_count) == ("open", 2, 1)
    assert state.sla_deadline == T0 + 25 * H + 4 * H


def test_no_feedback_within_the_window_closes():
    incident, _ = opened()
    incident.act(action(type="resolve", agent="ann", resolution="rebooted"), T0)
    incident.advance(T0 + 24 * H)
    incident.advance(T0 + 24 * H + 3 * 24 * H)
    assert incident.state.status == "closed"
    assert incident.state.events[-1].data == {"reason": "no feedback within the window"}


def test_routine_incidents_close_at_resolution_and_never_get_status_updates():
    incident, _ = opened(category="tariff_change")
    effects = incident.advance(T0 + 8 * H)
    assert ("customer", "escalated") not in notified(effects)
    outcome = incident.act(action(type="resolve", agent="ann", resolution="tariff changed"), T0 + 9 * H)
    assert incident.state.status == "closed"
    customer_kinds = [k for r, k in notified(outcome.effects) if r == "customer"]
    assert customer_kinds == ["resolved"]


def test_critical_incidents_get_status_updates_every_two_hours_while_open():
    incident, _ = opened()
    incident.act(action(type="acknowledge", agent="ann"), T0 + M)
    incident.act(action(type="escalate", agent="ann", reason="fiber cut"), T0 + 2 * M)
    assert ("customer", "status_update") not in notified(incident.advance(T0 + 2 * H))
    assert ("customer", "status_update") in notified(incident.advance(T0 + 2 * H + 2 * M))
    incident.act(action(type="resolve", agent="bob", resolution="spliced"), T0 + 3 * H)
    assert notified(incident.advance(T0 + 6 * H)) == []


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({"type": "feedback", "score": 4}, "only after resolution"),
        ({"type": "reopen", "by": "ann", "reason": "x"}, "is open, not resolved"),
        ({"type": "approve_refund", "agent": "ann", "line": 2}, "no refund is awaiting approval"),
        ({"type": "add_refund", "agent": "ann", "refund": {"amount": "10.00", "currency": "RUB"}}, "line 2 and above"),
    ],
)
def test_invalid_actions_are_recorded_as_rejected_and_change_nothing(payload, reason):
    incident, _ = opened()
    before = incident.state.model_copy(deep=True)
    outcome = incident.act(action(**payload), T0 + M)
    assert not outcome.accepted and reason in (outcome.reason or "")
    assert incident.state.events[-1].type == "action_rejected"
    after = incident.state.model_dump(exclude={"events", "event_seq"})
    assert after == before.model_dump(exclude={"events", "event_seq"})


def test_actions_on_a_closed_incident_are_rejected():
    incident, _ = opened(category="other")
    incident.act(action(type="resolve", agent="ann", resolution="done"), T0 + M)
    assert incident.finished
    for payload in (
        {"type": "resolve", "agent": "ann", "resolution": "again"},
        {"type": "add_note", "agent": "ann", "text": "late"},
        {"type": "customer_contact", "channel": "chat", "text": "hello?"},
    ):
        assert not incident.act(action(**payload), T0 + 2 * M).accepted


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"type": "acknowledge", "agent": "  "}, "agent"),
        ({"type": "acknowledge"}, "agent"),
        ({"type": "feedback", "score": 6}, "score"),
        ({"type": "feedback", "score": "5"}, "score"),
        ({"type": "add_note", "agent": "ann", "text": "x" * 4001}, "text"),
        ({"type": "acknowledge", "agent": "ann", "extra": 1}, "extra"),
    ],
)
def test_malformed_actions_fail_validation_naming_the_field(payload, field):
    with pytest.raises(ValidationError) as error:
        action(**payload)
    assert field in str(error.value)


def test_a_refund_within_the_line_one_limit_is_paid_at_once_and_closing_waits_for_it():
    incident, effects = opened(refund={"amount": "1500.00", "currency": "RUB"}, category="payment_not_refunded")
    pay = [e for e in effects if isinstance(e, PayRefund)]
    assert len(pay) == 1 and pay[0].money == Money(amount=Decimal("1500.00"), currency="RUB")
    assert pay[0].idempotency_key == "INC-TEST01:refund:1500.00RUB"
    refund = incident.state.refund
    assert refund is not None and refund.status == "requested" and refund.approved_by == "policy: line-1 limit"
    incident.act(action(type="resolve", agent="ann", resolution="refund on its way"), T0 + M)
    incident.advance(T0 + 24 * H)
    incident.act(action(type="feedback", score=4), T0 + 25 * H)
    assert incident.state.status == "resolved" and incident.state.close_pending
    incident.refund_paid("pay_1", T0 + 26 * H)
    assert incident.state.status == "closed"
    assert [t for t in types(incident) if t.startswith("refund")] == ["refund_requested", "refund_succeeded"]


def test_a_refund_above_the_line_one_limit_waits_for_line_two():
    incident, effects = opened(refund={"amount": "7000.00", "currency": "RUB"})
    assert not any(isinstance(e, PayRefund) for e in effects)
    assert ("line_2", "refund_approval") in notified(effects)
    outcome = incident.act(action(type="approve_refund", agent="ann", line=1), T0 + M)
    assert not outcome.accepted and "line-1 approval limit 5000.00" in (outcome.reason or "")
    outcome = incident.act(action(type="approve_refund", agent="boris", line=2), T0 + 2 * M)
    assert outcome.accepted and any(isinstance(e, PayRefund) for e in outcome.effects)


def test_a_rejected_refund_becomes_a_line_two_task_and_can_be_retried_with_the_same_key():
    incident, _ = opened(refund={"amount": "100.00", "currency": "RUB"})
    effects = incident.refund_failed("rejected: card_closed", T0 + M)
    assert notified(effects) == [("line_2", "refund_task")]
    assert incident.state.refund is not None and incident.state.refund.status == "failed"
    retry = incident.act(action(type="retry_refund", agent="boris"), T0 + H)
    pay = [e for e in retry.effects if isinstance(e, PayRefund)]
    assert pay and pay[0].idempotency_key == "INC-TEST01:refund:100.00RUB"
    assert incident.state.refund.attempts_started == 2


def test_line_two_can_add_a_refund():
    incident, _ = opened()
    incident.act(action(type="escalate", agent="ann", reason="billing"), T0 + M)
    outcome = incident.act(
        action(type="add_refund", agent="boris", refund={"amount": "9000.00", "currency": "RUB"}), T0 + 2 * M
    )
    assert outcome.accepted and any(isinstance(e, PayRefund) for e in outcome.effects)
    assert incident.state.refund is not None and incident.state.refund.approved_by == "boris"


def test_compensation_only_when_the_line_one_sla_was_breached():
    on_time, _ = opened()
    effects = on_time.act(action(type="resolve", agent="ann", resolution="fixed"), T0 + 59 * M).effects
    assert not any(isinstance(e, GrantCompensation) for e in effects)

    late, _ = opened()
    late.advance(T0 + H)
    effects = late.act(action(type="resolve", agent="ann", resolution="fixed"), T0 + 2 * H).effects
    grants = [e for e in effects if isinstance(e, GrantCompensation)]
    assert len(grants) == 1 and grants[0].money.amount == Decimal("10.00")
    late.compensation_paid("pay_c", T0 + 2 * H)
    assert "compensation_granted" in types(late)

    routine, _ = opened(category="tariff_change")
    routine.advance(T0 + 8 * H)
    effects = routine.act(action(type="resolve", agent="ann", resolution="fixed"), T0 + 9 * H).effects
    assert not any(isinstance(e, GrantCompensation) for e in effects)


def test_customer_recontact_joins_and_tells_the_line_holding_it():
    incident, _ = opened()
    outcome = incident.act(action(type="customer_contact", channel="chat", text="still nothing"), T0 + 20 * M)
    assert outcome.accepted and notified(outcome.effects) == [("line_1", "customer_recontacted")]
    assert incident.state.recontacts == 1


def test_reclassifying_to_critical_starts_the_shorter_clocks_from_the_opening():
    incident, _ = opened(category="tariff_change")
    incident.act(action(type="reclassify", agent="ann", severity="critical", reason="whole building"), T0 + 2 * H)
    assert incident.state.severity == "critical"
    effects = incident.advance(T0 + 2 * H)
    assert incident.state.line == 2 and ("line_2", "escalated") in notified(effects)


def test_every_event_has_a_unique_increasing_sequence_and_workflow_time():
    incident, _ = opened()
    incident.act(action(type="acknowledge", agent="ann"), T0 + M)
    incident.advance(T0 + 3 * H)
    seqs = [e.seq for e in incident.state.events]
    assert seqs == list(range(1, len(seqs) + 1))
    assert all(e.at >= T0 for e in incident.state.events)


def test_sla_clock_pauses_only_the_sla_clocks_and_resumes_with_the_wait_added():
    clock = SlaClock()
    clock.start(Clock.line, T0, H, "line-1 SLA 1h")
    clock.start(Clock.customer_update, T0, 2 * H, "update")
    clock.pause(T0 + 10 * M)
    upcoming = clock.next()
    assert upcoming is not None and upcoming.clock == Clock.customer_update
    assert clock.expired(T0 + 90 * M) == []
    clock.resume(T0 + 40 * M)
    assert clock.due_at(Clock.line) == T0 + H + 30 * M


def test_open_request_validation_names_the_field():
    with pytest.raises(ValidationError) as error:
        OpenIncident.model_validate(
            {"customer_id": "42", "category": "x", "description": "d", "channel": "fax", "contact": "nobody"}
        )
    text = str(error.value)
    assert "channel" in text and "contact" in text
    with pytest.raises(ValidationError, match="decimal string"):
        Money.model_validate({"amount": 10.5, "currency": "RUB"})


def test_with_the_announce_feature_a_critical_customer_hears_of_the_acknowledgement():
    incident, _ = opened()
    incident.features.add(ANNOUNCE_ACKNOWLEDGEMENT)
    effects = incident.act(action(type="acknowledge", agent="ann"), T0 + M).effects
    assert notified(effects) == [("customer", "acknowledged")]
    routine, _ = opened(category="tariff_change")
    routine.features.add(ANNOUNCE_ACKNOWLEDGEMENT)
    assert notified(routine.act(action(type="acknowledge", agent="ann"), T0 + M).effects) == []
    plain, _ = opened()
    assert notified(plain.act(action(type="acknowledge", agent="ann"), T0 + M).effects) == []


def test_compaction_keeps_the_tail_and_counts_the_rest():
    incident, _ = opened()
    for i in range(30):
        incident.act(action(type="add_note", agent="ann", text=f"n{i}"), T0 + i * M)
    total = incident.state.event_seq
    dropped = incident.compact(keep=10)
    state = incident.state
    assert dropped == total - 10 and len(state.events) == 10 and state.events_compacted == dropped
    assert sum(state.compacted_counts.values()) == dropped and state.events[-1].seq == total
    assert state.compacted_counts["note_added"] + sum(e.type == "note_added" for e in state.events) == 30


def test_an_opening_time_without_a_time_zone_is_refused_by_name():
    from workflows.domain.inputs import IncidentInput

    with pytest.raises(ValidationError) as caught:
        IncidentInput(
            ticket_id="INC-AAAAAA",
            request=open_request(),
            policy=default_policy(),
            opened_at=datetime(2026, 11, 23, 12, 0),
        )
    assert caught.value.errors()[0]["loc"] == ("opened_at",)
    assert "timezone" in str(caught.value)


# --- follow-through (issue 14, items 6 and 9): nothing that is not closed waits without a clock ---


def following(**overrides) -> tuple[Incident, list]:
    return Incident.open("INC-TEST01", open_request(**overrides), default_policy(), T0, frozenset({FOLLOW_THROUGH}))


def to_last_line(incident: Incident, at: datetime) -> None:
    incident.act(action(type="escalate", agent="ann", reason="billing"), at)
    incident.act(action(type="escalate", agent="boris", reason="needs engineering"), at)
    assert incident.state.line == 3


def reminders(effects) -> list[tuple[str, str]]:
    return [(e.recipient, e.kind) for e in effects if isinstance(e, Notify) and "Reminder" in e.message]


def test_an_acknowledged_routine_incident_on_the_last_line_is_chased_on_the_ladder_until_there_is_news():
    incident, _ = following(category="tariff_change")
    to_last_line(incident, T0 + M)
    incident.act(action(type="acknowledge", agent="duty"), T0 + H)
    assert incident.state.next_deadline == T0 + 5 * H, "routine: first reminder after 4h"
    effects = incident.advance(T0 + 5 * H)
    assert reminders(effects) == [("line_3", "owned_reminder")]
    message = next(e.message for e in effects if isinstance(e, Notify))
    assert "duty" in message and "add_note" in message and "resolve" in message
    assert incident.state.next_deadline == T0 + 13 * H, "then every 8h"
    assert reminders(incident.advance(T0 + 13 * H)) == [("line_3", "owned_reminder")]
    assert incident.state.events[-1].data == {"line": 3, "kind": "owned_reminder", "reminder": 2}
    incident.act(action(type="add_note", agent="duty", text="waiting for the vendor"), T0 + 14 * H)
    assert incident.state.next_deadline == T0 + 18 * H, "a note is news: the ladder starts over"
    incident.act(action(type="resolve", agent="duty", resolution="tariff switched"), T0 + 15 * H)
    assert incident.finished and incident.state.next_deadline is None


def test_a_failed_refund_is_chased_at_line_two_until_it_is_retried_or_settled():
    incident, _ = following(category="tariff_change", refund={"amount": "100.00", "currency": "RUB"})
    incident.act(action(type="resolve", agent="ann", resolution="done"), T0 + M)
    assert incident.state.status == "resolved" and incident.state.close_pending == "resolved"
    incident.refund_failed("rejected: card_closed", T0 + 2 * M)
    assert incident.state.next_deadline == T0 + 2 * M + 4 * H
    effects = incident.advance(T0 + 2 * M + 4 * H)
    assert reminders(effects) == [("line_2", "refund_reminder")]
    message = next(e.message for e in effects if isinstance(e, Notify))
    assert "card_closed" in message and "retry_refund" in message and "settle_refund" in message
    assert incident.state.next_deadline == T0 + 2 * M + 4 * H + 24 * H
    retry = incident.act(action(type="retry_refund", agent="boris"), T0 + 5 * H)
    assert any(isinstance(e, PayRefund) for e in retry.effects)
    # In flight: chased only if no outcome arrives by the payment's give-up time.
    assert incident.state.next_deadline == T0 + 5 * H + 3 * 24 * H + 4 * H
    incident.refund_failed("gave up: provider down", T0 + 6 * H)
    incident.act(action(type="settle_refund", agent="boris", reference="bank transfer 77"), T0 + 7 * H)
    assert incident.finished and incident.state.next_deadline is None


def test_a_refund_awaiting_approval_is_chased_at_the_line_that_may_approve_it():
    incident, effects = following(category="tariff_change", refund={"amount": "7000.00", "currency": "RUB"})
    assert incident.state.clock.due_at(Clock.refund_reminder) == T0 + 4 * H
    effects = incident.advance(T0 + 4 * H)
    assert reminders(effects) == [("line_2", "refund_reminder")]
    assert "approve_refund" in next(e.message for e in effects if isinstance(e, Notify))


def test_a_failed_credit_is_a_task_that_holds_the_closing_until_it_is_settled_by_hand():
    incident, _ = following()
    incident.advance(T0 + H)
    grant = incident.act(action(type="resolve", agent="ann", resolution="fixed"), T0 + 2 * H).effects
    assert [e.idempotency_key for e in grant if isinstance(e, GrantCompensation)] == ["INC-TEST01:compensation"]
    task = incident.compensation_failed("rejected: account_closed", T0 + 2 * H)
    assert notified(task) == [("line_2", "compensation_task")]
    assert any(isinstance(e, Notify) and "settle_compensation" in e.message for e in task)
    assert incident.state.next_deadline == T0 + 2 * H + 4 * H, "reminded after 4h"
    assert reminders(incident.advance(T0 + 6 * H)) == [("line_2", "compensation_reminder")]
    assert incident.state.clock.due_at(Clock.compensation_reminder) == T0 + 6 * H + 24 * H, "then daily"
    incident.advance(T0 + 26 * H)
    incident.act(action(type="feedback", score=5), T0 + 27 * H)
    assert incident.state.status == "resolved" and incident.state.close_pending, "the unpaid credit holds it open"
    assert incident.state.next_deadline == T0 + 30 * H, "and it goes on being chased"
    refused = incident.act(action(type="settle_refund", agent="boris", reference="x"), T0 + 28 * H)
    assert not refused.accepted
    settled = incident.act(
        action(type="settle_compensation", agent="boris", reference="manual credit #12"), T0 + 29 * H
    )
    assert settled.accepted and notified(settled.effects) == [("customer", "compensation")]
    assert incident.finished and incident.state.next_deadline is None
    assert incident.state.compensation is not None and incident.state.compensation.reference == "manual credit #12"
    event = next(e for e in incident.state.events if e.seq == settled.event_seq)
    assert (event.type, event.by, event.data["reference"]) == ("compensation_settled", "boris", "manual credit #12")


def test_settle_compensation_is_refused_unless_a_credit_failed():
    incident, _ = following()
    outcome = incident.act(action(type="settle_compensation", agent="boris", reference="r"), T0 + M)
    assert not outcome.accepted and "none owed" in (outcome.reason or "")
    incident.advance(T0 + H)
    incident.act(action(type="resolve", agent="ann", resolution="fixed"), T0 + 2 * H)
    outcome = incident.act(action(type="settle_compensation", agent="boris", reference="r"), T0 + 2 * H)
    assert not outcome.accepted and "granting" in (outcome.reason or "")


def reopened_after_an_on_time_fix(incident: Incident) -> datetime:
    """Resolved within the hour, bad feedback a day later: reopened on line 2; returns when."""
    incident.act(action(type="resolve", agent="ann", resolution="port reset"), T0 + 30 * M)
    incident.advance(T0 + 30 * M + 24 * H)
    reopened_at = T0 + 25 * H
    incident.act(action(type="feedback", score=1, comment="still slow"), reopened_at)
    assert incident.state.status == "open" and incident.state.compensation is None
    return reopened_at


def test_a_reopen_promises_a_new_fix_time_and_a_fix_within_it_is_not_compensated():
    incident, _ = following()
    reopened_at = reopened_after_an_on_time_fix(incident)
    assert incident.state.expected_fix_by == reopened_at + 4 * H, "the SLA of line 2, where it reopens"
    reopened = next(e for e in incident.state.events if e.type == "reopened")
    assert reopened.data["expected_fix_by"] == (reopened_at + 4 * H).isoformat()
    effects = incident.act(action(type="resolve", agent="boris", resolution="card replaced"), reopened_at + 3 * H)
    assert not any(isinstance(e, GrantCompensation) for e in effects.effects)


def test_a_reopened_fix_that_misses_its_new_time_is_compensated():
    incident, _ = following()
    reopened_at = reopened_after_an_on_time_fix(incident)
    outcome = incident.act(action(type="resolve", agent="boris", resolution="card replaced"), reopened_at + 5 * H)
    grants = [e for e in outcome.effects if isinstance(e, GrantCompensation)]
    assert [g.idempotency_key for g in grants] == ["INC-TEST01:compensation"]


def test_a_customer_credited_once_is_not_credited_again_unless_the_policy_says_so():
    def late_twice(policy) -> list[GrantCompensation]:
        incident, _ = Incident.open("INC-TEST01", open_request(), policy, T0, frozenset({FOLLOW_THROUGH}))
        incident.advance(T0 + H)
        first = incident.act(action(type="resolve", agent="ann", resolution="fixed"), T0 + 2 * H).effects
        incident.compensation_paid("pay_c1", T0 + 2 * H)
        incident.advance(T0 + 26 * H)
        incident.act(action(type="feedback", score=1), T0 + 27 * H)
        again = incident.act(action(type="resolve", agent="ann", resolution="fixed"), T0 + 40 * H).effects
        return [e for e in first + again if isinstance(e, GrantCompensation)]

    assert [g.idempotency_key for g in late_twice(default_policy())] == ["INC-TEST01:compensation"]
    data = default_policy().model_dump(mode="json")
    data["severities"]["critical"]["compensate_again_after_reopen"] = True
    generous = late_twice(parse_policy(data))
    assert [g.idempotency_key for g in generous] == ["INC-TEST01:compensation", "INC-TEST01:compensation:1"]


def test_switched_on_mid_life_the_work_waiting_gets_its_clocks_and_a_reopen_its_fix_time():
    incident, _ = opened(category="tariff_change")
    to_last_line(incident, T0 + M)
    incident.act(action(type="acknowledge", agent="duty"), T0 + H)
    assert incident.state.next_deadline is None
    incident.enable(FOLLOW_THROUGH, T0 + 2 * H)
    assert incident.state.next_deadline == T0 + 6 * H

    critical, _ = opened()
    reopened_at = reopened_after_an_on_time_fix(critical)
    critical.enable(FOLLOW_THROUGH, reopened_at + M)
    assert critical.state.expected_fix_by == reopened_at + 4 * H


def test_without_the_feature_the_machine_behaves_as_before():
    """Incidents running before the change replay on this path: no new clocks, the old compensation rule."""
    idle, _ = opened(category="tariff_change")
    to_last_line(idle, T0 + M)
    idle.act(action(type="acknowledge", agent="duty"), T0 + H)
    assert idle.state.next_deadline is None and idle.advance(T0 + 30 * 24 * H) == []

    credit, _ = opened()
    credit.advance(T0 + H)
    credit.act(action(type="resolve", agent="ann", resolution="fixed"), T0 + 2 * H)
    credit.compensation_failed("rejected", T0 + 2 * H)
    credit.advance(T0 + 26 * H)
    credit.act(action(type="feedback", score=5), T0 + 27 * H)
    assert credit.finished, "a failed credit did not hold the closing"

    reopened, _ = opened()
    reopened_at = reopened_after_an_on_time_fix(reopened)
    assert reopened.state.expected_fix_by == T0 + H, "the first promise stays"
    quick = reopened.act(action(type="resolve", agent="boris", resolution="card replaced"), reopened_at + M).effects
    assert any(isinstance(e, GrantCompensation) for e in quick), "judged against the first promise"
    assert not any(e.type == "line_notified" and "reminder" in e.data for e in reopened.state.events)


# --- customer time (issue 17): the customer's language and time zone, and messages to the customer ---


def localized(**overrides) -> tuple[Incident, list]:
    """Opened as the service opens incidents now: in the customer's language and time zone."""
    return Incident.open("INC-TEST01", open_request(**overrides), default_policy(), T0, frozenset({CUSTOMER_LOCALE}))


def test_the_customer_is_written_to_in_the_language_and_time_zone_of_the_open_request():
    incident, effects = localized(language="en", time_zone="America/New_York")
    assert (incident.state.language, incident.state.time_zone) == ("en", "America/New_York")
    opening = effects[0].message
    assert "November 23, 2026, 5:00" in opening and "UTC" not in opening, "10:00 UTC is 05:00 in New York"


def test_a_request_that_names_neither_gets_the_policys_defaults():
    incident, effects = localized()
    assert (incident.state.language, incident.state.time_zone) == ("ru", "Europe/Moscow")
    assert effects[0].recipient == "customer" and "Номер вашей заявки: INC-TEST01" in effects[0].message
    assert effects[1].recipient == "line_1" and effects[1].message.startswith("New critical incident")
    policy = default_policy().model_copy(
        update={"default_customer_language": "en", "default_customer_time_zone": "Asia/Tokyo"}
    )
    elsewhere, _ = Incident.open("INC-TEST02", open_request(), policy, T0, frozenset({CUSTOMER_LOCALE}))
    assert (elsewhere.state.language, elsewhere.state.time_zone) == ("en", "Asia/Tokyo")


def test_an_incident_opened_before_languages_keeps_english_and_utc():
    incident, effects = opened(language="ru", time_zone="Europe/Moscow")
    assert incident.state.language is None and incident.state.time_zone is None
    assert effects[0].message.startswith("We are sorry") and "2026-11-23 10:00 UTC" in effects[0].message


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"language": "fr"}, "language", "Input should be 'en' or 'ru'"),
        ({"language": ""}, "language", "Input should be 'en' or 'ru'"),
        ({"time_zone": "Mars/Olympus"}, "time_zone", "unknown time zone 'Mars/Olympus'"),
        ({"time_zone": "europe/moscow"}, "time_zone", "unknown time zone"),
        ({"time_zone": "../../etc/passwd"}, "time_zone", "unknown time zone"),
        ({"time_zone": "Europe"}, "time_zone", "unknown time zone"),
        ({"time_zone": ""}, "time_zone", "at least 1 character"),
    ],
)
def test_a_language_or_time_zone_that_cannot_be_used_is_refused_naming_the_field(fields, field, words):
    with pytest.raises(ValidationError) as error:
        open_request(**fields)
    (problem,) = error.value.errors()
    assert problem["loc"] == (field,) and words in str(error.value)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"default_customer_language": "de"}, "default_customer_language"),
        ({"default_customer_time_zone": "Moscow"}, "default_customer_time_zone"),
    ],
)
def test_a_policy_default_that_cannot_be_used_is_refused_naming_the_field(change, field):
    data = {**default_policy().model_dump(mode="json"), **change}
    with pytest.raises(PolicyError, match=field):
        parse_policy(data)


def test_message_customer_is_logged_and_delivered_in_the_customers_words_with_a_templated_wrapper():
    incident, _ = localized()
    outcome = incident.act(
        action(type="message_customer", agent="ann", text="  Перезагрузите роутер: отключите питание на 30 секунд. "),
        T0 + M,
    )
    assert outcome.accepted
    logged = incident.state.events[-2]
    assert logged.seq == outcome.event_seq and logged.type == "customer_messaged" and logged.by == "ann"
    assert logged.data == {"text": "Перезагрузите роутер: отключите питание на 30 секунд."}
    assert incident.state.events[-1].type == "customer_notified"
    assert incident.state.events[-1].data == {"kind": "agent_message"}
    (sent,) = outcome.effects
    assert isinstance(sent, Notify) and (sent.recipient, sent.kind) == ("customer", "agent_message")
    assert sent.event_seq == incident.state.events[-1].seq
    assert sent.message == (
        "Сообщение службы поддержки по заявке INC-TEST01: Перезагрузите роутер: отключите питание на 30 секунд."
    )
    english, _ = localized(language="en")
    (wrapped,) = english.act(action(type="message_customer", agent="ann", text="Restart it."), T0 + M).effects
    assert isinstance(wrapped, Notify)
    assert wrapped.message == "Message from support about your ticket INC-TEST01: Restart it."


def test_message_customer_is_refused_on_a_closed_incident_and_capped_in_length():
    incident, _ = localized(category="other")
    incident.act(action(type="resolve", agent="ann", resolution="done"), T0 + M)
    assert incident.finished
    refused = incident.act(action(type="message_customer", agent="ann", text="one more thing"), T0 + 2 * M)
    assert not refused.accepted and "closed" in (refused.reason or "") and refused.effects == []
    assert incident.state.events[-1].type == "action_rejected"
    with pytest.raises(ValidationError) as error:
        action(type="message_customer", agent="ann", text="x" * (MAX_CUSTOMER_MESSAGE + 1))
    assert error.value.errors()[0]["loc"][-1] == "text"
    with pytest.raises(ValidationError) as error:
        action(type="message_customer", agent="ann", text="   ")
    assert error.value.errors()[0]["loc"][-1] == "text"
