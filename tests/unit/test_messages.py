"""What the incident says comes from named templates (workflows/domain/messages.py), never from inline text."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from string import Template

import pytest

from tests.helpers import open_request
from workflows.domain.actions import ACTION_ADAPTER
from workflows.domain.incident import (
    ANNOUNCE_ACKNOWLEDGEMENT,
    CUSTOMER_LOCALE,
    FOLLOW_THROUGH,
    RECONTACT_REOPENS,
    Incident,
    Notify,
)
from workflows.domain.messages import (
    CUSTOMER_MESSAGES,
    ENGLISH,
    LINE_MESSAGES,
    OPENING_MESSAGES,
    TEMPLATES,
    Message,
    fmt_local_money,
    fmt_local_time,
    language_of,
    render,
    render_for_customer,
)
from workflows.domain.models import Language, Money
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


def test_every_message_is_for_the_customer_or_for_a_line():
    assert set(Message) == CUSTOMER_MESSAGES | LINE_MESSAGES
    assert not CUSTOMER_MESSAGES & LINE_MESSAGES


def test_every_language_has_every_customer_message_with_the_same_fields():
    assert set(TEMPLATES) == {language.value for language in Language}
    english = TEMPLATES[ENGLISH]
    for language, templates in TEMPLATES.items():
        assert set(templates) >= CUSTOMER_MESSAGES, language
        for message, template in templates.items():
            assert template.is_valid(), (language, message)
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


def plain(text: str) -> str:
    """Babel writes CLDR's no-break spaces (between digits and a currency, before "г."): compare as spaces."""
    return text.replace("\u202f", " ").replace("\xa0", " ")


def test_a_moscow_customer_sees_moscow_time_the_russian_way():
    noon_in_moscow = datetime(2026, 12, 2, 9, 30, tzinfo=UTC)
    assert plain(fmt_local_time(noon_in_moscow, "ru", "Europe/Moscow")) == "2 декабря 2026 г., 12:30"
    assert plain(fmt_local_time(noon_in_moscow, "en", "Europe/Moscow")) == "December 2, 2026, 12:30 PM"
    # Already the next morning in Vladivostok (UTC+10): the customer's date, not the server's.
    evening = datetime(2026, 12, 2, 20, 30, tzinfo=UTC)
    assert plain(fmt_local_time(evening, "ru", "Asia/Vladivostok")) == "3 декабря 2026 г., 06:30"


def test_amounts_are_written_the_way_the_customers_language_writes_money():
    rubles = Money(amount=Decimal("700.00"), currency="RUB")
    assert plain(fmt_local_money(rubles, "ru")) == "700,00 ₽"
    assert plain(fmt_local_money(rubles, "en")) == "RUB 700.00"
    assert plain(fmt_local_money(Money(amount=Decimal("1500.50"), currency="USD"), "ru")) == "1 500,50 $"
    # A currency without minor units is still never rounded: the customer reads what is paid.
    assert "100.5" in fmt_local_money(Money(amount=Decimal("100.50"), currency="JPY"), "en")


SAMPLE_FIELDS: dict[str, object] = {
    "ticket": "INC-7F3K2Q",
    "fix_by": datetime(2026, 12, 2, 9, 30, tzinfo=UTC),
    "money": Money(amount=Decimal("700.00"), currency="RUB"),
    "line": 2,
    "resolution": "заменили порт",
    "text": "перезагрузите роутер",
    "steps": "1. Перезагрузите роутер.",
    "question": "Какой тариф подключить?",
    "close_by": datetime(2026, 12, 9, 9, 30, tzinfo=UTC),
    "reopen_by": datetime(2026, 12, 12, 9, 30, tzinfo=UTC),
    "news": "Кабель срастили, проверяем.",
    "summary": "В Химках повреждён кабель.",
    "start": datetime(2026, 12, 3, 1, 0, tzinfo=UTC),
    "end": datetime(2026, 12, 3, 3, 0, tzinfo=UTC),
    "charge": "ch-7F3K2Q",
    "other": "INC-2B9X4M",
    "url": "/t/INC-7F3K2Q?k=4Xiqq5NsezsD1a",
}


@pytest.mark.parametrize("message", sorted(CUSTOMER_MESSAGES), ids=str)
def test_every_russian_customer_message_renders_with_its_fields(message: Message):
    fields = {name: SAMPLE_FIELDS[name] for name in fields_of(TEMPLATES["ru"][message])}
    text = plain(render_for_customer(message, fields, "ru", "Europe/Moscow"))
    assert "$" not in text and "INC-7F3K2Q" in text
    english_words = set(re.findall(r"[A-Za-z]{3,}", text.replace(str(SAMPLE_FIELDS["url"]), ""))) - {"INC"}
    assert not english_words, f"{message}: {text}"
    if "fix_by" in fields:
        assert "2 декабря 2026 г., 12:30" in text and "UTC" not in text
    if "money" in fields:
        assert "700,00 ₽" in text


def test_an_incident_opened_before_languages_reads_what_its_customer_always_read():
    fields = {"ticket": "INC-1", "fix_by": datetime(2026, 11, 23, 10, 0, tzinfo=UTC)}
    assert render_for_customer(Message.TICKET_OPENED_CRITICAL, fields, None, None) == (
        "We are sorry for the trouble. Your ticket number is INC-1. Our specialists are on it and "
        "we expect to fix it by 2026-11-23 10:00 UTC; we will keep you informed."
    )
    money = {"ticket": "INC-1", "money": Money(amount=Decimal("700.00"), currency="RUB")}
    assert render_for_customer(Message.REFUND_PAID, money, None, None) == (
        "Your refund of 700.00 RUB has been sent (ticket INC-1)."
    )


def _as_pattern(template: Template) -> re.Pattern[str]:
    parts = re.split(r"\$\{\w+\}", template.template)
    return re.compile("(?s)" + ".*".join(re.escape(part) for part in parts))


PATTERNS = [_as_pattern(template) for template in TEMPLATES[ENGLISH].values()]
RUSSIAN_PATTERNS = [_as_pattern(template) for template in TEMPLATES["ru"].values()]


def _act(incident: Incident, now: datetime, **data: object) -> list[Notify]:
    outcome = incident.act(ACTION_ADAPTER.validate_python(data), now)
    assert outcome.accepted, outcome.reason
    return [e for e in outcome.effects if isinstance(e, Notify)]


def _notifications_of_a_hard_case(features: frozenset[str] = FEATURES, **request: object) -> list[Notify]:
    """A critical incident with a refund above line 1's limit that goes through most of what can happen."""
    refund = {"amount": "7000.00", "currency": "RUB"}
    incident, effects = Incident.open(
        "INC-TEXTS1", open_request(refund=refund, **request), default_policy(), T0, features
    )
    sent = [e for e in effects if isinstance(e, Notify)]
    now = T0
    for hours in (1, 1, 2, 4, 8, 16, 32):
        now += timedelta(hours=hours)
        sent += [e for e in incident.advance(now) if isinstance(e, Notify)]
    sent += _act(incident, now, type="assign", agent="ann", assignee="boris")
    sent += _act(incident, now, type="message_customer", agent="boris", text="Please restart the router.")
    sent += _act(incident, now, type="customer_contact", channel="chat", text="still down")
    sent += _act(incident, now, type="approve_refund", agent="duty", line=3)
    sent += [e for e in incident.refund_failed("card expired", now) if isinstance(e, Notify)]
    sent += _act(incident, now, type="retry_refund", agent="boris")
    sent += [e for e in incident.refund_paid("pay-1", now) if isinstance(e, Notify)]
    sent += _act(incident, now, type="resolve", agent="boris", resolution="port replaced")
    sent += [e for e in incident.compensation_failed("account frozen", now) if isinstance(e, Notify)]
    for _ in range(3):
        now += timedelta(days=1)
        sent += [e for e in incident.advance(now) if isinstance(e, Notify)]
    sent += _act(incident, now, type="settle_compensation", agent="boris", reference="credited by hand")
    sent += _act(incident, now, type="feedback", score=1)
    _, effects = Incident.open(
        "INC-TEXTS2", open_request(category="tariff_change", **request), default_policy(), T0, features
    )
    return sent + [e for e in effects if isinstance(e, Notify)]


def test_every_notification_the_incident_sends_is_one_of_the_templates():
    sent = _notifications_of_a_hard_case()
    kinds = {n.kind for n in sent}
    # The case reaches the customer and the lines, the refund and the credit, and the reminder ladders.
    assert {"ticket_opened", "new_incident", "escalated", "refund_task", "compensation_task", "reopened"} <= kinds
    assert {"refund_reminder", "compensation_reminder", "assigned", "customer_recontacted"} <= kinds
    assert {"agent_message", "refund_paid", "compensation"} <= kinds
    for notification in sent:
        assert any(p.fullmatch(notification.message) for p in PATTERNS), notification.message


def test_a_russian_speaking_customer_reads_every_notification_in_russian_and_on_moscow_time():
    sent = _notifications_of_a_hard_case(FEATURES | {CUSTOMER_LOCALE})  # the shipped policy: ru, Europe/Moscow
    to_customer = [n for n in sent if n.recipient == "customer"]
    assert len({n.kind for n in to_customer}) >= 8
    for notification in to_customer:
        text = notification.message
        assert any(p.fullmatch(text) for p in RUSSIAN_PATTERNS), text
        assert "UTC" not in text and not re.search(r"\d{4}-\d{2}-\d{2}", text), text
    opening = next(n.message for n in to_customer if n.kind == "ticket_opened")
    assert "23 ноября 2026 г., 13:00" in plain(opening), "opened 09:00 UTC, line 1 has an hour: 13:00 in Moscow"
    assert "7 000,00 ₽" in plain(next(n.message for n in to_customer if n.kind == "refund_paid"))
    wrapped = next(n.message for n in to_customer if n.kind == "agent_message")
    assert wrapped == "Сообщение службы поддержки по заявке INC-TEXTS1: Please restart the router."
    # The lines keep English and UTC.
    for notification in sent:
        if notification.recipient != "customer":
            assert any(p.fullmatch(notification.message) for p in PATTERNS), notification.message


def test_the_open_request_names_the_customers_language_and_time_zone():
    sent = _notifications_of_a_hard_case(FEATURES | {CUSTOMER_LOCALE}, language="en", time_zone="Asia/Vladivostok")
    opening = next(n.message for n in sent if n.recipient == "customer" and n.kind == "ticket_opened")
    assert "we expect to fix it by November 23, 2026, 8:00 PM; we will keep you informed." in plain(opening)


@pytest.mark.parametrize("language", sorted(TEMPLATES))
@pytest.mark.parametrize("message", OPENING_MESSAGES, ids=str)
def test_the_notifier_tells_the_language_an_opening_message_was_written_in(message: Message, language: str):
    fields = {name: SAMPLE_FIELDS[name] for name in fields_of(TEMPLATES[language][message])}
    assert language_of(render_for_customer(message, fields, language, "Europe/Moscow"), OPENING_MESSAGES) == language
    assert language_of("Some other text", OPENING_MESSAGES) is None
