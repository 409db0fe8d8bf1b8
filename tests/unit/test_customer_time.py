"""Customer time without a server (issue 17): waiting on the customer's answer, the silence ladder, line 2's own
first-response clock, and self-help first (seed 004, level 1)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.helpers import open_request
from workflows.domain.actions import ACTION_ADAPTER
from workflows.domain.incident import CLOSED, CUSTOMER_LOCALE, FOLLOW_THROUGH, Incident, Notify
from workflows.domain.messages import ENGLISH, TEMPLATES
from workflows.domain.models import Severity
from workflows.domain.policy import PolicyError, default_policy, parse_policy
from workflows.domain.sla import Clock

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
M = timedelta(minutes=1)
H = timedelta(hours=1)
D = timedelta(days=1)


def opened(features: frozenset[str] = frozenset({FOLLOW_THROUGH}), **overrides: Any) -> tuple[Incident, list]:
    return Incident.open("INC-WAIT01", open_request(**overrides), default_policy(), T0, features)


def act(incident: Incident, now: datetime, **data: Any):
    return incident.act(ACTION_ADAPTER.validate_python(data), now)


def accepted(incident: Incident, now: datetime, **data: Any) -> list[Notify]:
    outcome = act(incident, now, **data)
    assert outcome.accepted, outcome.reason
    return [e for e in outcome.effects if isinstance(e, Notify)]


def refused(incident: Incident, now: datetime, **data: Any) -> tuple[str, str | None]:
    outcome = act(incident, now, **data)
    assert not outcome.accepted, f"{data['type']} was accepted"
    last = incident.state.events[-1]
    assert last.type == "action_rejected" and last.data["action"] == data["type"]
    return outcome.reason or "", outcome.code


def notices(effects) -> list[Notify]:
    return [e for e in effects if isinstance(e, Notify)]


def kinds(effects) -> list[tuple[str, str]]:
    return [(e.recipient, e.kind) for e in effects if isinstance(e, Notify)]


def types(incident: Incident) -> list[str]:
    return [e.type.value for e in incident.state.events]


ASK = {"type": "ask_customer", "agent": "ann", "question": "Which lights on the router are on?"}
REPLY = {"type": "customer_reply", "channel": "chat", "text": "Only the power light"}


# --- waiting on the customer ---


def test_asking_pauses_the_sla_clocks_and_sends_the_question_to_the_customer():
    incident, _ = opened()
    sent = accepted(incident, T0 + 10 * M, **ASK)
    state = incident.state
    assert state.status == "waiting_on_customer"
    assert kinds(sent) == [("customer", "question")]
    assert "INC-WAIT01" in sent[0].message and "Which lights on the router are on?" in sent[0].message
    assert types(incident)[-2:] == ["customer_asked", "customer_notified"]
    assert state.sla_deadline is None and state.acknowledge_deadline is None, "a paused clock has no due time"
    assert state.next_deadline == T0 + 10 * M + 2 * D, "the silence ladder's reminder"
    # Hours later: no acknowledgement breach, no escalation, no status update about a team that waits.
    assert incident.advance(T0 + 6 * H) == []
    assert state.line == 1 and state.sla_breaches == [] and state.status == "waiting_on_customer"


def test_the_reply_resumes_the_clocks_with_the_remaining_time_intact():
    incident, _ = opened()
    accepted(incident, T0 + 10 * M, **ASK)
    waited = D + 3 * H
    sent = accepted(incident, T0 + 10 * M + waited, **REPLY)
    state = incident.state
    assert state.status == "open" and state.waiting is None
    assert state.sla_deadline == T0 + H + waited, "line 1 escalates at exactly original due + waited"
    assert state.acknowledge_deadline == T0 + 15 * M + waited
    assert state.expected_fix_by == T0 + H + waited, "the promise moves with the clock: the wait was the customer's"
    assert kinds(sent) == [("customer", "reply_received"), ("line_1", "customer_replied")]
    assert "Only the power light" in sent[1].message and "ann" in sent[1].message
    (replied,) = [e for e in incident.state.events if e.type == "customer_replied"]
    assert replied.type == "customer_replied" and replied.data["waited"] == "1d3h" and replied.by == "customer"
    incident.advance(T0 + H + waited - M)
    assert incident.state.line == 1
    incident.advance(T0 + H + waited)
    assert incident.state.line == 2 and incident.state.sla_breaches == ["acknowledge", "line_1"]


def test_a_customer_contact_while_waiting_is_the_answer():
    incident, _ = opened()
    accepted(incident, T0 + 5 * M, **ASK)
    sent = accepted(
        incident, T0 + 2 * H, type="customer_contact", channel="phone", text="power light only", contact="a@b.example"
    )
    state = incident.state
    assert state.status == "open" and state.recontacts == 0, "an answer is not a recontact"
    assert state.contact == "a@b.example"
    assert ("line_1", "customer_replied") in kinds(sent)
    assert next(e for e in state.events if e.type == "customer_replied").data["contact_updated"] is True


def test_silence_reminds_once_then_closes_and_a_reply_within_the_window_reopens_where_it_stopped():
    incident, _ = opened()
    accepted(incident, T0 + 10 * M, **ASK)
    asked = T0 + 10 * M
    reminded = notices(incident.advance(asked + 2 * D))
    assert kinds(reminded) == [("customer", "reply_reminder")]
    assert "Which lights" in reminded[0].message and (asked + 7 * D).strftime("%Y-%m-%d %H:%M") in reminded[0].message
    assert incident.advance(asked + 5 * D) == [], "one reminder: more would pester (seed 000)"
    closing = notices(incident.advance(asked + 7 * D))
    state = incident.state
    assert kinds(closing) == [("customer", "closed_no_reply"), ("line_1", "closed_no_reply")]
    assert (asked + 10 * D).strftime("%Y-%m-%d %H:%M") in closing[0].message, "reply by: the reopen window"
    assert state.status == "closed" and state.closed_as == "no_reply" and state.closed_at == asked + 7 * D
    assert not incident.finished, "a reply may still reopen it"
    assert state.next_deadline == asked + 10 * D and state.sla_deadline is None
    # Day 8: the customer answers after all.
    back = asked + 8 * D
    sent = accepted(incident, back, type="customer_reply", channel="email", text="sorry, was away")
    assert state.status == "open" and state.closed_as is None and state.closed_at is None
    assert state.reopen_count == 1 and types(incident)[-4:-2] == ["customer_replied", "reopened"]
    assert ("customer", "reopened") in kinds(sent)
    assert state.sla_deadline == T0 + H + (back - asked), "the remaining line-1 time is intact"


def test_after_the_reopen_window_the_incident_is_closed_for_good():
    incident, _ = opened()
    accepted(incident, T0, **ASK)
    incident.advance(T0 + 7 * D)
    incident.advance(T0 + 10 * D)
    state = incident.state
    assert incident.finished and state.clock.deadlines == {} and state.next_deadline is None
    assert state.clock.paused_since is None
    reason, code = refused(incident, T0 + 11 * D, **REPLY)
    assert code == CLOSED and "closed" in reason
    _, code = refused(incident, T0 + 11 * D, type="customer_contact", channel="chat", text="hello?")
    assert code == CLOSED, "the intake opens a new incident that follows this one"


def test_silence_does_not_close_an_incident_that_still_owes_money():
    incident, _ = opened(category="payment_not_refunded", refund={"amount": "7000.00", "currency": "RUB"})
    assert incident.state.refund is not None and incident.state.refund.status == "awaiting_approval"
    accepted(incident, T0 + M, **ASK)
    sent = notices(incident.advance(T0 + M + 7 * D))
    state = incident.state
    assert state.status == "open" and state.waiting is None and state.closed_as is None
    assert ("line_1", "no_reply") in kinds(sent)
    assert "7000.00 RUB" in next(e.message for e in sent if e.kind == "no_reply")


def test_a_further_question_restarts_the_ladder_and_the_pause_goes_on():
    incident, _ = opened()
    accepted(incident, T0 + 10 * M, **ASK)
    accepted(incident, T0 + D, type="ask_customer", agent="boris", question="And the router's model?")
    state = incident.state
    assert state.waiting is not None and state.waiting.asked_by == "boris"
    assert state.clock.paused_since == T0 + 10 * M
    assert state.clock.due_at(Clock.reply_deadline) == T0 + 8 * D
    accepted(incident, T0 + 2 * D, **REPLY)
    assert state.sla_deadline == T0 + H + (2 * D - 10 * M), "paused from the first question to the answer"


def test_agents_keep_working_while_waiting_and_handing_it_on_or_resolving_ends_the_wait():
    incident, _ = opened()
    accepted(incident, T0 + 10 * M, **ASK)
    accepted(incident, T0 + 20 * M, type="acknowledge", agent="ann")
    accepted(incident, T0 + 30 * M, type="add_note", agent="ann", text="waiting for the lights")
    assert incident.state.status == "waiting_on_customer" and incident.state.assignee == "ann"
    accepted(incident, T0 + 2 * H, type="escalate", agent="ann", reason="looks like the cabinet")
    state = incident.state
    assert state.status == "open" and state.line == 2 and state.waiting is None
    assert state.sla_deadline == T0 + 2 * H + 4 * H, "the next line's clock runs from now"


def test_resolving_while_waiting_judges_the_fix_by_the_moved_promise():
    incident, _ = opened()
    accepted(incident, T0 + 10 * M, **ASK)
    sent = accepted(incident, T0 + D + 30 * M, type="resolve", agent="ann", resolution="remote reset")
    state = incident.state
    assert state.status == "resolved" and state.waiting is None and state.clock.paused_since is None
    assert state.expected_fix_by == T0 + H + D + 20 * M
    assert state.compensation is None and ("customer", "resolved") in kinds(sent), "not late: the wait was theirs"


@pytest.mark.parametrize(
    ("setup", "action", "words"),
    [
        ("closed", ASK, "closed"),
        ("resolved", ASK, "resolved"),
        ("open", REPLY, "nobody asked"),
        ("resolved", REPLY, "nobody asked"),
    ],
)
def test_invalid_questions_and_replies_are_recorded_as_rejected(setup: str, action: dict[str, Any], words: str):
    incident, _ = opened(category="tariff_change")  # routine: no callback, a resolution closes it
    if setup == "resolved":
        incident, _ = opened()
        accepted(incident, T0 + M, type="resolve", agent="ann", resolution="fixed")
    elif setup == "closed":
        accepted(incident, T0 + M, type="resolve", agent="ann", resolution="fixed")
        assert incident.finished
    before = incident.state.status
    reason, _ = refused(incident, T0 + 2 * M, **action)
    assert words in reason and incident.state.status == before


# --- line 2's own first-response clock ---


def test_line_two_gets_its_own_first_response_clock():
    late, _ = opened()
    prompt, _ = opened()
    for incident in (late, prompt):
        accepted(incident, T0 + 5 * M, type="acknowledge", agent="ann")
        accepted(incident, T0 + 10 * M, type="escalate", agent="ann", reason="needs line 2")
        assert incident.state.acknowledge_deadline == T0 + 40 * M
    accepted(prompt, T0 + 30 * M, type="acknowledge", agent="boris")
    assert prompt.advance(T0 + 45 * M) == [] and prompt.state.sla_breaches == []
    sent = notices(late.advance(T0 + 40 * M))
    assert kinds(sent) == [("line_2", "acknowledge_overdue")]
    assert "reached line 2 at 2026-11-23 09:10 UTC" in sent[0].message
    assert late.state.sla_breaches == ["acknowledge_line_2"]


def test_a_policy_without_line_acknowledgements_keeps_line_two_as_before():
    data = default_policy().model_dump(mode="json")
    data["severities"]["critical"]["line_acknowledge_within"] = {}
    incident, _ = Incident.open("INC-WAIT02", open_request(), parse_policy(data), T0)
    incident.advance(T0 + H)
    assert incident.state.line == 2 and incident.state.acknowledge_deadline is None


# --- self-help first (seed 004, level 1) ---


def test_the_opening_notice_carries_the_ticket_and_the_self_help_steps():
    incident, effects = opened()
    message = notices(effects)[0].message
    assert effects[0].kind == "ticket_opened" and "INC-WAIT01" in message
    assert "1. Restart the router: unplug it for 30 seconds" in message and "2. Check that the cable" in message
    assert incident.state.self_help == "offered" and incident.state.events[0].data["self_help_steps"] == 2
    routine, effects = opened(category="tariff_change")
    assert routine.state.self_help is None and "steps" not in notices(effects)[0].message


def test_that_fixed_it_closes_as_self_resolved_without_an_agent():
    incident, _ = opened()
    sent = accepted(incident, T0 + 20 * M, type="self_help_worked", channel="app", comment="router restart did it")
    state = incident.state
    assert state.status == "closed" and state.closed_as == "self_resolved" and incident.finished
    assert state.acknowledged_at is None and state.clock.deadlines == {} and state.next_deadline is None
    assert kinds(sent) == [("customer", "self_resolved"), ("line_1", "self_resolved")]
    answered = [e for e in state.events if e.type == "self_help_answered"]
    assert [(e.data["worked"], e.by) for e in answered] == [(True, "customer")]


def test_it_did_not_changes_nothing_but_is_recorded():
    incident, _ = opened()
    before = incident.state.clock.model_copy(deep=True)
    sent = accepted(incident, T0 + 5 * M, type="self_help_failed", channel="phone")
    state = incident.state
    assert sent == [] and state.status == "open" and state.clock.model_dump() == before.model_dump()
    assert state.self_help == "failed" and types(incident)[-1] == "self_help_answered"
    reason, _ = refused(incident, T0 + 6 * M, type="self_help_failed", channel="phone")
    assert "already" in reason
    incident.advance(T0 + H)
    assert state.line == 2, "the SLA clock never stopped for self-help"


@pytest.mark.parametrize(
    ("setup", "words"),
    [
        ("no_steps", "no self-help steps"),
        ("acknowledged", "ann has taken the incident"),
        ("waiting", "waiting_on_customer"),
        ("asked_and_answered", "asked the customer"),
        ("resolved", "already resolved"),
    ],
)
def test_that_fixed_it_is_refused_when_it_would_not_be_true(setup: str, words: str):
    incident, _ = opened(category="tariff_change" if setup == "no_steps" else "connection_lost")
    if setup == "acknowledged":
        accepted(incident, T0 + M, type="acknowledge", agent="ann")
    elif setup == "waiting":
        accepted(incident, T0 + M, **ASK)
    elif setup == "asked_and_answered":
        accepted(incident, T0 + M, **ASK)
        accepted(incident, T0 + M, **REPLY)
    elif setup == "resolved":
        accepted(incident, T0 + M, type="resolve", agent="ann", resolution="fixed")
    status = incident.state.status
    reason, _ = refused(incident, T0 + 2 * M, type="self_help_worked", channel="app")
    assert words in reason and incident.state.status == status and incident.state.closed_as is None


# --- the policy ---


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (
            lambda d: d["severities"]["critical"].update(line_acknowledge_within={1: "10m"}),
            "line_acknowledge_within: line 1: line 1's first response is acknowledge_within",
        ),
        (lambda d: d.update(self_help={"connection_lost": []}), "connection_lost: give at least one step"),
        (
            lambda d: d.update(customer_silence={"remind_after": ["0s"], "close_after": "7d"}),
            "customer_silence.remind_after: reminder 1: must be longer than 0s",
        ),
        (lambda d: d.update(customer_silence={"close_after": "soon"}), "customer_silence.close_after"),
    ],
)
def test_a_bad_customer_time_policy_names_the_field(change, words: str):
    data = default_policy().model_dump(mode="json")
    change(data)
    with pytest.raises(PolicyError) as refused:
        parse_policy(data)
    assert words in str(refused.value)


def test_a_policy_file_from_before_gets_the_silence_ladder_and_no_self_help():
    data = default_policy().model_dump(mode="json")
    for key in ("customer_silence", "self_help"):
        del data[key]
    del data["severities"]["critical"]["line_acknowledge_within"]
    policy = parse_policy(data)
    assert policy.customer_silence.remind_after == [2 * D] and policy.customer_silence.close_after == 7 * D
    assert policy.self_help == {} and policy.for_severity(Severity.critical).line_acknowledge_within == {}


# --- every text is a template of messages.py ---


def test_every_customer_time_notification_is_one_of_the_templates():
    patterns = [
        re.compile("(?s)" + ".*".join(re.escape(part) for part in re.split(r"\$\{\w+\}", template.template)))
        for template in TEMPLATES[ENGLISH].values()
    ]
    sent: list[Notify] = []
    incident, effects = opened()
    sent += notices(effects)
    sent += accepted(incident, T0 + M, type="self_help_failed", channel="app")
    sent += accepted(incident, T0 + 2 * M, **ASK)
    sent += notices(incident.advance(T0 + 2 * M + 2 * D))
    sent += accepted(incident, T0 + 3 * D, **REPLY)
    sent += notices(incident.advance(T0 + 3 * D + H))  # line 1's first response and time run out: line 2
    sent += notices(incident.advance(T0 + 3 * D + 2 * H))  # and line 2's own first response is missed
    sent += accepted(incident, T0 + 4 * D, **ASK)
    sent += notices(incident.advance(T0 + 11 * D))
    sent += accepted(incident, T0 + 12 * D, **REPLY)
    owed, _ = opened(category="payment_not_refunded", refund={"amount": "7000.00", "currency": "RUB"})
    accepted(owed, T0, **ASK)
    sent += notices(owed.advance(T0 + 7 * D))
    helped, effects = opened(category="speed_drop")
    sent += notices(effects) + accepted(helped, T0 + M, type="self_help_worked", channel="app")
    kinds_sent = {n.kind for n in sent}
    assert {
        "question",
        "reply_reminder",
        "reply_received",
        "customer_replied",
        "closed_no_reply",
        "reopened",
    } <= kinds_sent
    assert {"acknowledge_overdue", "no_reply", "self_resolved", "ticket_opened"} <= kinds_sent
    for notification in sent:
        assert any(p.fullmatch(notification.message) for p in patterns), notification.message


@pytest.mark.parametrize(
    ("language", "step"), [("ru", "Перезагрузите роутер"), ("en", "Restart the router"), (None, "Restart the router")]
)
def test_the_self_help_steps_go_out_in_the_customers_language(language: str | None, step: str):
    """A Russian customer reads Russian steps in a Russian notice; an incident opened before languages, English."""
    features = frozenset({FOLLOW_THROUGH, CUSTOMER_LOCALE}) if language else frozenset({FOLLOW_THROUGH})
    request = {"language": language, "time_zone": "Europe/Moscow"} if language else {}
    _, effects = opened(features, **request)
    opening = notices(effects)[0]
    assert opening.kind == "ticket_opened" and step in opening.message
    assert ("Номер заявки" in opening.message or "Номер вашей заявки" in opening.message) == (language == "ru")
