"""What the incident says comes from named templates (workflows/domain/messages.py), never from inline text."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from string import Template

import pytest

from tests.helpers import open_request
from workflows.domain.actions import ACTION_ADAPTER
from workflows.domain.incident import ANNOUNCE_ACKNOWLEDGEMENT, FOLLOW_THROUGH, RECONTACT_REOPENS, Incident, Notify
from workflows.domain.messages import ENGLISH, TEMPLATES, Message, render
from workflows.domain.policy import default_policy

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
FEATURES = frozenset({ANNOUNCE_ACKNOWLEDGEMENT, FOLLOW_THROUGH, RECONTACT_REOPENS})


def fields_of(template: Template) -> set[str]:
    return set(template.get_identifiers())


def test_every_message_has_a_valid_english_template():
    assert set(TEMPLATES[ENGLISH]) == set(Message)
    for message, template in TEMPLATES[ENGLISH].items():
        assert template.is_valid(), message
        assert "ticket" in fields_of(template), f"{message} does not name the ticket"


def test_every_language_has_every_message_with_the_same_fields():
    english = TEMPLATES[ENGLISH]
    for language, templates in TEMPLATES.items():
        assert set(templates) == set(english), language
        for message, template in templates.items():
            assert fields_of(template) == fields_of(english[message]), (language, message)


def test_a_message_is_filled_by_field_name():
    text = render(Message.REFUND_PAID, {"ticket": "INC-1", "money": "10.00 RUB"})
    assert text == "Your refund of 10.00 RUB has been sent (ticket INC-1)."


def test_a_missing_field_is_named():
    with pytest.raises(KeyError, match="money"):
        render(Message.REFUND_PAID, {"ticket": "INC-1"})


def test_a_field_value_is_not_read_as_a_template():
    text = render(Message.RESOLVED, {"ticket": "INC-1", "resolution": "replaced ${ticket} and $5 cable"})
    assert text == "Your incident INC-1 is resolved: replaced ${ticket} and $5 cable"


def _as_pattern(template: Template) -> re.Pattern[str]:
    parts = re.split(r"\$\{\w+\}", template.template)
    return re.compile("(?s)" + ".*".join(re.escape(part) for part in parts))


PATTERNS = [_as_pattern(template) for template in TEMPLATES[ENGLISH].values()]


def _act(incident: Incident, now: datetime, **data: object) -> list[Notify]:
    outcome = incident.act(ACTION_ADAPTER.validate_python(data), now)
    assert outcome.accepted, outcome.reason
    return [e for e in outcome.effects if isinstance(e, Notify)]


def _notifications_of_a_hard_case() -> list[Notify]:
    """A critical incident with a refund above line 1's limit that goes through most of what can happen."""
    refund = {"amount": "7000.00", "currency": "RUB"}
    incident, effects = Incident.open("INC-TEXTS1", open_request(refund=refund), default_policy(), T0, FEATURES)
    sent = [e for e in effects if isinstance(e, Notify)]
    now = T0
    for hours in (1, 1, 2, 4, 8, 16, 32):
        now += timedelta(hours=hours)
        sent += [e for e in incident.advance(now) if isinstance(e, Notify)]
    sent += _act(incident, now, type="assign", agent="ann", assignee="boris")
    sent += _act(incident, now, type="customer_contact", channel="chat", text="still down")
    sent += _act(incident, now, type="approve_refund", agent="duty", line=3)
    sent += [e for e in incident.refund_failed("card expired", now) if isinstance(e, Notify)]
    sent += _act(incident, now, type="resolve", agent="boris", resolution="port replaced")
    sent += [e for e in incident.compensation_failed("account frozen", now) if isinstance(e, Notify)]
    for _ in range(3):
        now += timedelta(days=1)
        sent += [e for e in incident.advance(now) if isinstance(e, Notify)]
    sent += _act(incident, now, type="feedback", score=1)
    _, effects = Incident.open("INC-TEXTS2", open_request(category="tariff_change"), default_policy(), T0)
    return sent + [e for e in effects if isinstance(e, Notify)]


def test_every_notification_the_incident_sends_is_one_of_the_templates():
    sent = _notifications_of_a_hard_case()
    kinds = {n.kind for n in sent}
    # The case reaches the customer and the lines, the refund and the credit, and the reminder ladders.
    assert {"ticket_opened", "new_incident", "escalated", "refund_task", "compensation_task", "reopened"} <= kinds
    assert {"refund_reminder", "compensation_reminder", "assigned", "customer_recontacted"} <= kinds
    for notification in sent:
        assert any(p.fullmatch(notification.message) for p in PATTERNS), notification.message
