"""The desk's parts without a server: forms derived from the catalogue, the queue's read model and its feed,
the customer's link, the session cookie, the words an incident is told in."""

from __future__ import annotations

import asyncio
import stat
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError
from rich.console import Console

from starter.api import body_model
from starter.desk.forms import Group, Input, body_of, errors_by_field, form_of
from starter.desk.readmodel import DeskFeed, Listed, ReadModel
from starter.desk.secrets import CustomerLinks, DeskSecretError, load_secret
from starter.desk.sessions import Session, SessionCookies
from starter.desk.words import customer_messages, event_words, local, relative, zone
from starter.render import timeline
from tests.helpers import open_request
from workflows.domain.actions import ACTION_ADAPTER, ACTOR_FIELDS, ACTOR_LINE, CATALOGUE
from workflows.domain.areas import Area
from workflows.domain.incident import Incident
from workflows.domain.models import EventType, IncidentState
from workflows.domain.notice import OutageNotice
from workflows.domain.policy import default_policy

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def incident(ticket: str = "INC-DESK01", **overrides: object) -> Incident:
    return Incident.open(ticket, open_request(**overrides), default_policy(), T0)[0]


def act(incident: Incident, at: datetime, **data: object) -> IncidentState:
    outcome = incident.act(ACTION_ADAPTER.validate_python(data), at)
    assert outcome.accepted, outcome.reason
    return incident.state.model_copy(deep=True)


# --- forms ---


@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_every_action_has_a_form_with_each_field_the_client_sends(name: str):
    model = CATALOGUE[name]
    form = form_of(model, body_model(model))
    shown = {item.name for item in form.items}
    supplied = {*ACTOR_FIELDS, ACTOR_LINE, "type", model.meta.own_line, *model.meta.filled}
    assert shown == set(model.model_fields) - supplied, "the actor, their line and what the service fills are no form's"
    for item in form.items:
        assert item.label, item.name


def test_a_posted_form_becomes_the_body_the_api_takes():
    refund = CATALOGUE["add_refund"]
    form = form_of(refund, body_model(refund))
    group = form.items[0]
    names = [spec.name for spec in group.inputs] if isinstance(group, Group) else []
    assert names == ["refund.amount", "refund.currency", "refund.charge"]
    body = body_of(form, {"refund.amount": " 1500.00 ", "refund.currency": "RUB"})
    assert body == {"refund": {"amount": "1500.00", "currency": "RUB"}}, "the charge is optional: left out"
    assert body_model(refund).model_validate(body)
    charged = body_of(form, {"refund.amount": "1500.00", "refund.currency": "RUB", "refund.charge": "ch_1"})
    assert charged == {"refund": {"amount": "1500.00", "currency": "RUB", "charge": "ch_1"}}
    feedback = CATALOGUE["feedback"]
    form = form_of(feedback, body_model(feedback))
    score = form.items[0]
    assert isinstance(score, Input)
    assert score.name == "score" and score.kind == "select" and score.choices == ("1", "2", "3", "4", "5")
    # The score is strictly an integer in the model: the form's text "4" is sent as 4; an empty comment is left out.
    assert body_of(form, {"score": "4", "comment": ""}) == {"score": 4}
    assert body_model(feedback).model_validate(body_of(form, {"score": "4"}))
    contact = CATALOGUE["customer_contact"]
    form = form_of(contact, body_model(contact), fixed={"channel": "app"})
    assert body_of(form, {"text": "hello", "channel": "phone"}) == {"channel": "app", "text": "hello"}


def test_what_the_model_refuses_comes_back_by_field():
    refund = CATALOGUE["add_refund"]
    form = form_of(refund, body_model(refund))
    with pytest.raises(ValidationError) as refused:
        body_model(refund).model_validate(body_of(form, {"refund.amount": "-1", "refund.currency": "XYZ"}))
    errors = errors_by_field(refused.value)
    assert set(errors) == {"refund.amount", "refund.currency"}
    assert "greater than 0" in errors["refund.amount"]


# --- the read model ---


def test_the_queue_puts_the_next_deadline_first_and_filters():
    model = ReadModel()
    now = time.time()
    late = incident("INC-DESK01", category="tariff_change")  # routine: its first deadline is hours away
    soon = incident("INC-DESK02")  # critical: acknowledge within 15 minutes
    taken = incident("INC-DESK03", customer_id="7")
    act(taken, T0 + timedelta(minutes=1), type="acknowledge", agent="ann")
    for state in (late.state, soon.state, taken.state):
        assert model.upsert(state, now)
    rows, total = model.queue(line=1)
    order = [row.ticket for row in rows]
    assert total == 3 and order[0] == "INC-DESK02" and order[-1] == "INC-DESK01"
    assert [row.ticket for row in model.queue(line=1, assignee="ann")[0]] == ["INC-DESK03"]
    assert [row.ticket for row in model.queue(line=1, severity="routine")[0]] == ["INC-DESK01"]
    assert model.queue(line=2)[1] == 0 and model.counts() == {1: 3}
    assert model.queue(line=1, statuses=("closed",))[1] == 0


def test_the_queue_filters_by_major_incident_and_its_rows_say_which():
    model = ReadModel()
    now = time.time()
    notice = OutageNotice(
        outage_id="OUT-AAAAAA",
        area=Area(region="moscow", city="khimki"),
        summary="A cable was cut in Khimki.",
        started_at=T0,
        expected_fix_by=T0 + timedelta(hours=6),
        check_by=T0 + timedelta(hours=7),
    )
    linked = incident("INC-DESK01")
    act(linked, T0 + timedelta(minutes=1), type="link_outage", agent="boris", outage_id="OUT-AAAAAA", notice=notice)
    other = incident("INC-DESK02", customer_id="7")
    for state in (linked.state, other.state):
        model.upsert(state, now)
    assert [row.ticket for row in model.queue(line=1, outage="any")[0]] == ["INC-DESK01"]
    assert [row.ticket for row in model.queue(line=1, outage="OUT-AAAAAA")[0]] == ["INC-DESK01"]
    assert model.queue(line=1, outage="OUT-BBBBBB")[1] == 0
    assert model.queue(line=1)[1] == 2 and model.outages() == ["OUT-AAAAAA"]
    assert {row.ticket: row.outage for row in model.queue(line=1)[0]} == {
        "INC-DESK01": "OUT-AAAAAA",
        "INC-DESK02": None,
    }
    # Unlinked (a mistaken match): it leaves the filter at the next read.
    act(linked, T0 + timedelta(minutes=2), type="unlink_outage", agent="boris", reason="a broken router")
    assert model.upsert(linked.state, now) and model.queue(line=1, outage="any")[1] == 0


async def test_an_older_answer_never_overwrites_a_newer_one_and_only_changes_wake_the_desks():
    model = ReadModel()
    now = time.time()
    subject = incident()
    opened = subject.state.model_copy(deep=True)
    assert model.upsert(opened, now)
    version = model.version
    assert not model.upsert(opened, now), "the same state is no change"
    waiting = asyncio.create_task(model.wait_change(version, within=5))
    acked = act(subject, T0 + timedelta(minutes=1), type="acknowledge", agent="ann")
    assert model.upsert(acked, now)
    assert await asyncio.wait_for(waiting, 1) == version + 1
    assert model.changed_since(version) == ["INC-DESK01"]
    assert not model.upsert(opened, now), "an older state (a slow read) is ignored"
    assert model.queue(line=1)[0][0].assignee == "ann"
    assert await model.wait_change(model.version, within=0.05) == model.version, "no change: the wait ends in time"


def test_an_incident_is_read_again_just_after_its_deadline_and_less_often_while_it_does_not_move():
    model = ReadModel()
    state = incident().state
    due = state.clock.next()
    assert due is not None
    before = due.due_at.timestamp() - 1
    model.upsert(state, before)
    assert model.due(before) == []
    assert model.due(due.due_at.timestamp() + 0.3) == [state.ticket_id]
    # Read after the deadline, the incident has not moved on (its worker is slow): later, then later still.
    later = due.due_at.timestamp() + 1
    model.upsert(state, later, read=True)
    first = model.db.execute("SELECT recheck_at FROM incidents").fetchone()[0] - later
    model.upsert(state, later, read=True)
    second = model.db.execute("SELECT recheck_at FROM incidents").fetchone()[0] - later
    assert 0 < first < second <= 30


async def test_the_feed_rebuilds_from_visibility_and_reads_what_changed():
    states = {ticket: incident(ticket).state for ticket in ("INC-DESK01", "INC-DESK02")}
    reads: list[str] = []

    async def read_state(ticket: str) -> IncidentState:
        reads.append(ticket)
        return states[ticket]

    listed = [Listed(t, "open", 1, "critical", None, T0) for t in states]

    async def list_incidents(query: str) -> list[Listed]:
        return listed

    model = ReadModel()
    feed = DeskFeed(model, read_state, list_incidents, new_every=0.05, reconcile_every=0.1)
    feed.start()
    try:
        await asyncio.wait_for(feed.rebuilt.wait(), 5)
        assert sorted(reads) == sorted(states) and model.queue(line=1)[1] == 2
        # Escalated elsewhere (no state passed this process): the reconciliation sees line 2 and reads it again.
        moved = incident("INC-DESK02")
        moved.state.line = 2
        moved.state.event_seq += 1
        states["INC-DESK02"] = moved.state
        listed[1] = Listed("INC-DESK02", "open", 2, "critical", None, T0)
        for _ in range(100):
            if model.queue(line=2)[1] == 1:
                break
            await asyncio.sleep(0.02)
        assert [row.ticket for row in model.queue(line=2)[0]] == ["INC-DESK02"]
    finally:
        await feed.stop()


# --- the customer's link and the session ---


def test_the_customers_link_opens_one_ticket_under_one_secret():
    links = CustomerLinks(b"s" * 40)
    key = links.key("INC-AAAAAA")
    assert links.valid("INC-AAAAAA", key) and links.path("INC-AAAAAA") == f"/t/INC-AAAAAA?k={key}"
    assert len(key) >= 22, "128 bits"
    assert not links.valid("INC-BBBBBB", key) and not links.valid("INC-AAAAAA", None)
    assert not CustomerLinks(b"t" * 40).valid("INC-AAAAAA", key), "another secret revokes every link"


def test_a_session_cookie_cannot_be_forged_or_altered():
    cookies = SessionCookies(b"s" * 40)
    written = cookies.write(Session(digest="ab" * 32, tz="Europe/Moscow", csrf="c" * 20))
    read = cookies.read(written)
    assert (read.digest, read.tz, read.fresh) == ("ab" * 32, "Europe/Moscow", False)
    assert read.csrf_ok("c" * 20) and not read.csrf_ok("d" * 20) and not read.csrf_ok(None)
    assert cookies.read(written[:-2] + "xx").digest is None
    assert SessionCookies(b"t" * 40).read(written).digest is None


def test_the_secret_file_is_made_once_for_its_owner_only_and_a_short_one_is_refused(tmp_path: Path):
    path = tmp_path / "desk-secret"
    first = load_secret(path, create=True)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and load_secret(path, create=True) == first
    path.write_text("short")
    with pytest.raises(DeskSecretError, match="INCIDENTS_DESK_SECRET_FILE"):
        load_secret(path)
    assert load_secret(None) != load_secret(None), "without a file: one for this process alone"


# --- words ---


def test_every_event_of_a_lifecycle_reads_in_words_and_the_customer_never_sees_a_note():
    subject = incident(refund={"amount": "700.00", "currency": "RUB"})
    at = T0 + timedelta(minutes=1)
    act(subject, at, type="add_note", agent="ann", text="internal: angry caller")
    act(subject, at, type="acknowledge", agent="ann")
    act(subject, at, type="escalate", agent="ann", reason="needs an engineer")
    act(subject, at, type="customer_contact", channel="phone", text="still down")
    state = act(subject, at, type="resolve", agent="boris", resolution="spliced the cable")
    for event in state.events:
        words = event_words(event)
        assert words and "None" not in words, (event.type, words)
    said = " ".join(text for _, _, text in customer_messages(state))
    assert "angry" not in said and "ann" not in said and "boris" not in said
    assert "still down" in said and "We fixed it: spliced the cable" in said
    assert {e.type for e in state.events} >= {EventType.note_added, EventType.escalated, EventType.resolved}


def test_the_cli_timeline_and_the_desk_tell_each_event_in_the_same_words():
    subject = incident()
    at = T0 + timedelta(minutes=1)
    act(subject, at, type="acknowledge", agent="ann")
    act(subject, at, type="escalate", agent="ann", reason="needs an engineer")
    state = act(subject, at, type="add_note", agent="boris", text="[bold]not markup[/]")
    console = Console(record=True, width=400)
    timeline(console, state.events)
    printed = console.export_text()
    for event in state.events:
        assert event_words(event) in printed, event.type
    assert "boris noted: [bold]not markup[/]" in printed, "user text is printed, never read as markup"
    assert "Escalated from line 1 to line 2 (by ann: needs an engineer)" in printed, "the agent's own words"


def test_times_read_in_the_readers_zone():
    moscow = zone("Europe/Moscow")
    assert local(T0, moscow) == "2026-11-23 12:00 MSK"
    assert zone("Not/AZone").key == "UTC"
    assert relative(T0 + timedelta(minutes=12), T0) == "in 12 min"
    assert relative(T0 - timedelta(hours=3), T0) == "3 h 0 min ago"


async def test_an_incident_not_readable_yet_is_tried_again_soon():
    state = incident("INC-DESK01").state
    attempts: list[str] = []

    async def read_state(ticket: str) -> IncidentState:
        attempts.append(ticket)
        if len(attempts) == 1:
            raise RuntimeError("Workflow Task in failed state")  # its first task has not run yet
        return state

    async def list_incidents(query: str) -> list[Listed]:
        return [Listed("INC-DESK01", "open", 1, "critical", None, T0)]

    model = ReadModel()
    # The reconciliation runs once at the start and not again within the test: only the retry can find it.
    feed = DeskFeed(model, read_state, list_incidents, new_every=60, reconcile_every=60)
    feed.start()
    try:
        for _ in range(100):
            if model.has("INC-DESK01"):
                break
            await asyncio.sleep(0.02)
        assert model.has("INC-DESK01") and len(attempts) == 2
    finally:
        await feed.stop()
