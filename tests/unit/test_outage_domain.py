"""Major incidents without a server (issue 18): areas and notices, the linked incident's rules, the major
incident's own ladder, resolving together, and planned works' notices."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from tests.helpers import open_request
from workflows.domain.actions import ACTION_ADAPTER
from workflows.domain.areas import Area
from workflows.domain.incident import FOLLOW_THROUGH, GrantCompensation, Incident, Notify
from workflows.domain.linking import linked
from workflows.domain.models import Money, Severity, Status
from workflows.domain.notice import NoticeStatus, OutageKind, OutageNotice, best_match
from workflows.domain.outage import (
    DeclareOutage,
    FanOut,
    Outage,
    OutageClock,
    PageLine,
    PostNotice,
    PostUpdate,
    ResolveOutage,
    TellArea,
    default_outage_policy,
)
from workflows.domain.policy import default_policy
from workflows.domain.sla import Clock

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
H = timedelta(hours=1)
M = timedelta(minutes=1)
KHIMKI = {"region": "moscow", "city": "khimki"}


def notice(**overrides: Any) -> OutageNotice:
    fields: dict[str, Any] = {
        "outage_id": "OUT-AAAAAA",
        "area": KHIMKI,
        "categories": ["connection_lost"],
        "summary": "A cable was cut in Khimki.",
        "started_at": T0,
        "expected_fix_by": T0 + 6 * H,
        "check_by": T0 + 10 * H,
    }
    fields.update(overrides)
    return OutageNotice.model_validate(fields)


def action(**data: Any) -> Any:
    return ACTION_ADAPTER.validate_python(data)


def customer_area(**overrides: Any) -> dict[str, Any]:
    return {**KHIMKI, "segment": "north-7", **overrides}


def opened(linked_to: OutageNotice | None = None, at: datetime = T0, **overrides: Any) -> tuple[Incident, list[Any]]:
    request = open_request(area=customer_area(), **overrides)
    return Incident.open("INC-LINK01", request, default_policy(), at, frozenset({FOLLOW_THROUGH}), outage=linked_to)


def sent(effects: list[Any]) -> list[tuple[str, str]]:
    return [(e.recipient, e.kind) for e in effects if isinstance(e, Notify)]


def texts(effects: list[Any]) -> list[str]:
    return [e.message for e in effects if isinstance(e, Notify | PageLine)]


def pages(effects: list[Any]) -> list[tuple[str, str]]:
    return [(e.recipient, e.kind) for e in effects if isinstance(e, Notify) and e.recipient != "customer"]


# --- areas and notices ---


def test_an_area_covers_what_lies_inside_it_and_names_every_enclosing_area():
    khimki, north = Area(region="Moscow", city="Khimki"), Area(region="moscow", city="khimki", segment="north-7")
    assert khimki.covers(north) and khimki.covers(khimki) and not north.covers(khimki)
    assert not khimki.covers(Area(region="moscow", city="zelenograd"))
    assert north.prefixes() == ["moscow", "moscow/khimki", "moscow/khimki/north-7"]
    assert Area(region="москва", city="химки").path == "москва/химки"


@pytest.mark.parametrize(
    ("area", "named"),
    [
        ({"region": "moscow", "segment": "north"}, "segment"),
        ({"region": "mos'cow"}, "region"),
        ({"region": "moscow", "city": "a/b"}, "city"),
    ],
)
def test_a_bad_area_is_refused_by_field(area: dict[str, str], named: str):
    with pytest.raises(ValidationError, match=named):
        Area.model_validate(area)


def test_the_narrowest_active_notice_in_the_area_wins_and_planned_works_only_in_their_window():
    region = notice(outage_id="OUT-BBBBBB", area={"region": "moscow"}, categories=[])
    city = notice()
    works = notice(
        outage_id="OUT-CCCCCC", kind="planned_works", area=customer_area(), started_at=T0 + 2 * H,
        expected_fix_by=T0 + 4 * H, check_by=T0 + 8 * H,
    )  # fmt: skip
    area = Area.model_validate(customer_area())
    assert best_match([region, city, works], area, "connection_lost", T0 + H) == city
    assert best_match([region, city, works], area, "connection_lost", T0 + 3 * H) == works
    assert best_match([region, city], area, "speed_drop", T0) == region  # the region's covers every category
    assert best_match([city], None, "connection_lost", T0) is None  # no area, no link
    assert best_match([city], area, "connection_lost", T0 + 10 * H) is None  # silent past its check time
    resolved = city.model_copy(update={"status": NoticeStatus.resolved})
    assert best_match([resolved], area, "connection_lost", T0) is None


# --- the linked incident ---


def test_opened_linked_the_customer_hears_not_only_you_with_the_ticket_and_no_line_is_paged():
    incident, effects = opened(linked_to=notice())
    assert sent(effects) == [("customer", "not_only_you")]
    text = effects[0].message
    assert "not only you" in text and "INC-LINK01" in text and "15:00 UTC" in text and "cable was cut" in text
    assert "customer" not in text.lower().replace("customers", "")  # nothing about anyone else
    assert linked(incident.state) and incident.state.events[1].type == "outage_linked"
    assert incident.state.area is not None and incident.state.area.segment == "north-7"


def test_a_linked_incident_pages_no_line_whatever_its_own_deadlines_say():
    incident, _ = opened(linked_to=notice(expected_fix_by=T0 + 20 * H, check_by=T0 + 30 * H))
    effects = []
    for hours in range(1, 25):
        effects += incident.advance(T0 + hours * H)
    assert pages(effects) == []
    assert incident.state.line == 1 and incident.state.sla_breaches == []
    # Its customer still hears at the critical cadence, about the failure.
    updates = [e for e in effects if isinstance(e, Notify) and e.kind == "status_update"]
    assert len(updates) == 12 and all("failure in your area" in e.message for e in updates)


def test_linking_an_open_incident_later_stops_its_paging_and_unlinking_gives_the_clock_back_with_its_time():
    incident, _ = opened()
    assert incident.state.sla_deadline == T0 + H
    outcome = incident.act(
        action(type="link_outage", agent="boris", outage_id="OUT-AAAAAA", notice=notice()), T0 + 20 * M
    )
    assert outcome.accepted and sent(outcome.effects) == [("customer", "not_only_you")]
    assert pages(incident.advance(T0 + 5 * H)) == []
    unlinked = incident.act(
        action(type="unlink_outage", agent="boris", reason="a broken router, not the cable"), T0 + 5 * H
    )
    assert unlinked.accepted and not linked(incident.state) and incident.state.outage is None
    assert sent(unlinked.effects) == [("customer", "outage_unlinked"), ("line_1", "outage_unlinked")]
    # 40 minutes were left of line 1's hour when it was linked: 40 minutes are left now.
    assert incident.state.sla_deadline == T0 + 5 * H + 40 * M
    escalated = incident.advance(T0 + 5 * H + 40 * M)
    assert incident.state.line == 2 and ("line_2", "escalated") in pages(escalated)


@given(
    linked_after=st.integers(min_value=0, max_value=59),
    linked_for=st.integers(min_value=1, max_value=10_000),
)
def test_unlinking_restores_exactly_the_time_the_line_had(linked_after: int, linked_for: int):
    incident, _ = opened(category="tariff_change")  # routine: line 1 has 8 hours of the office's working time
    office = default_policy().working_time(Severity.routine)
    at_link = T0 + linked_after * M
    left = office.between(at_link, incident.state.sla_deadline)  # type: ignore[arg-type]
    incident.act(action(type="link_outage", agent="ann", outage_id="OUT-AAAAAA", notice=notice(categories=[])), at_link)
    at_unlink = at_link + linked_for * M
    incident.act(action(type="unlink_outage", agent="ann", reason="mistaken"), at_unlink)
    assert incident.state.sla_deadline == office.after(at_unlink, left)


@pytest.mark.parametrize(
    ("overrides", "payload", "reason"),
    [
        ({}, {"outage_id": "OUT-AAAAAA"}, "notice is missing"),
        ({}, {"outage_id": "OUT-BBBBBB", "notice": notice()}, "OUT-AAAAAA's, not OUT-BBBBBB's"),
        ({"area": {"region": "tver"}}, {"outage_id": "OUT-AAAAAA", "notice": notice()}, "outside OUT-AAAAAA's area"),
        ({"category": "tariff_change"}, {"outage_id": "OUT-AAAAAA", "notice": notice()}, "not among"),
        (
            {},
            {"outage_id": "OUT-AAAAAA", "notice": notice(status="resolved")},
            "resolved already",
        ),
    ],
)
def test_a_link_that_does_not_fit_is_refused_and_recorded(
    overrides: dict[str, Any], payload: dict[str, Any], reason: str
):
    request = open_request(area=overrides.pop("area", customer_area()), **overrides)
    incident, _ = Incident.open("INC-LINK01", request, default_policy(), T0)
    outcome = incident.act(action(type="link_outage", agent="boris", **payload), T0 + M)
    assert not outcome.accepted and reason in (outcome.reason or "")
    assert incident.state.events[-1].type == "action_rejected" and not linked(incident.state)


def test_the_major_incidents_own_sweep_does_not_relink_what_an_agent_unlinked():
    incident, _ = opened(linked_to=notice())
    incident.act(action(type="unlink_outage", agent="boris", reason="not the cable"), T0 + H)
    again = incident.act(
        action(type="link_outage", agent="OUT-AAAAAA", outage_id="OUT-AAAAAA", notice=notice()), T0 + 2 * H
    )
    assert not again.accepted and "only an agent" in (again.reason or "")
    by_hand = incident.act(
        action(type="link_outage", agent="boris", outage_id="OUT-AAAAAA", notice=notice()), T0 + 3 * H
    )
    assert by_hand.accepted


def test_news_reaches_the_customer_and_moves_the_trust_in_the_link():
    incident, _ = opened(linked_to=notice())
    later = notice(expected_fix_by=T0 + 9 * H, check_by=T0 + 13 * H, revision=2)
    outcome = incident.act(action(type="outage_update", notice=later, news="The new cable is on its way."), T0 + 2 * H)
    assert outcome.accepted and sent(outcome.effects) == [("customer", "outage_update")]
    assert "new cable" in texts(outcome.effects)[0] and "18:00 UTC" in texts(outcome.effects)[0]
    assert incident.state.clock.due_at(Clock.outage) == T0 + 13 * H
    other = incident.act(action(type="outage_update", notice=notice(outage_id="OUT-BBBBBB")), T0 + 3 * H)
    assert not other.accepted and "linked to OUT-AAAAAA" in (other.reason or "")


def test_a_major_incident_gone_silent_past_its_check_time_hands_the_incident_its_clock_back():
    incident, _ = opened(linked_to=notice())  # check_by T0 + 10h
    assert pages(incident.advance(T0 + 9 * H)) == []
    effects = incident.advance(T0 + 10 * H)
    assert not linked(incident.state) and ("line_1", "outage_silent") in pages(effects)
    # Line 1 had its whole hour left at opening: it runs from now.
    assert incident.state.sla_deadline == T0 + 11 * H


def test_resolved_together_each_customer_hears_it_gets_its_callback_and_the_policy_credit():
    incident, _ = opened(linked_to=notice())
    credit = {"critical": {"amount": "30.00", "currency": "RUB"}}
    outcome = incident.act(
        action(type="outage_resolved", notice=notice(status="resolved"), resolution="The cable is spliced.",
               resolved_by="boris", compensation=credit),
        T0 + 4 * H,
    )  # fmt: skip
    assert outcome.accepted
    state = incident.state
    assert state.status is Status.resolved and state.resolved_at == T0 + 4 * H
    assert state.outage is not None and state.outage.ended == "resolved together" and not linked(state)
    assert ("customer", "resolved") in sent(outcome.effects)
    assert "failure in your area is fixed" in texts(outcome.effects)[0]
    grants = [e for e in outcome.effects if isinstance(e, GrantCompensation)]
    assert grants and grants[0].money == Money(amount=Decimal("30.00"), currency="RUB")
    assert state.awaiting == "callback" and state.clock.due_at(Clock.callback) == T0 + 28 * H
    resolved = next(e for e in state.events if e.type == "resolved")
    assert resolved.data["outage"] == "OUT-AAAAAA" and resolved.by == "boris"


def test_a_routine_linked_incident_resolved_together_closes_without_a_callback_or_credit():
    incident, _ = opened(linked_to=notice(categories=[]), category="tariff_change")
    outcome = incident.act(
        action(type="outage_resolved", notice=notice(status="resolved"), resolution="Fixed.", resolved_by="boris",
               compensation={"critical": {"amount": "30.00", "currency": "RUB"}}),
        T0 + 4 * H,
    )  # fmt: skip
    assert incident.state.status is Status.closed
    assert not [e for e in outcome.effects if isinstance(e, GrantCompensation)]


def test_still_broken_after_the_mass_resolve_reopens_only_this_incident_on_its_own_clock():
    incident, _ = opened(linked_to=notice())
    incident.act(
        action(type="outage_resolved", notice=notice(status="resolved"), resolution="Spliced.", resolved_by="boris"),
        T0 + 4 * H,
    )
    incident.advance(T0 + 28 * H)  # the callback asks
    outcome = incident.act(action(type="feedback", score=1, comment="still no internet"), T0 + 29 * H)
    state = incident.state
    assert outcome.accepted and state.status is Status.open and state.line == 2 and not linked(state)
    assert state.sla_deadline == T0 + 29 * H + 4 * H  # line 2's own SLA, running
    assert ("line_2", "reopened") in pages(outcome.effects)


def test_an_agent_resolving_a_linked_incident_on_its_own_ends_the_link():
    incident, _ = opened(linked_to=notice())
    incident.act(action(type="resolve", agent="ann", resolution="It was the customer's router."), T0 + H)
    assert incident.state.outage is not None and incident.state.outage.ended == "resolved on its own"
    late = incident.act(
        action(type="outage_resolved", notice=notice(status="resolved"), resolution="Spliced.", resolved_by="boris"),
        T0 + 4 * H,
    )
    assert not late.accepted  # the mass resolve leaves it be


# --- the major incident ---


def declared(**overrides: Any) -> tuple[Outage, list[Any]]:
    fields: dict[str, Any] = {
        "area": KHIMKI,
        "categories": ["connection_lost", "speed_drop"],
        "summary": "A cable was cut in Khimki.",
        "owner": "boris",
        "expected_fix_by": T0 + 6 * H,
        "started_at": T0 - 30 * M,
        "declared_by": "boris",
    }
    fields.update(overrides)
    return Outage.declare("OUT-AAAAAA", DeclareOutage.model_validate(fields), default_outage_policy(), T0, owner_line=2)


def test_declaring_pages_its_line_posts_its_notice_and_links_the_open_incidents_by_a_fan_out():
    outage, effects = declared()
    assert [type(e) for e in effects] == [PageLine, PostNotice, FanOut]
    page, post, fan_out = effects
    assert page.line == 2 and "OUT-AAAAAA" in page.message and "khimki" in page.message
    assert post.notice.status is NoticeStatus.active and post.notice.check_by == T0 + 10 * H
    assert fan_out.signal == "link_outage" and fan_out.payload["agent"] == "OUT-AAAAAA"
    assert fan_out.follows is None
    assert outage.state.deadlines[OutageClock.sweep] == T0 + M
    [sweep] = [e for e in outage.advance(T0 + M) if isinstance(e, FanOut)]
    assert (sweep.job_id, sweep.follows) == ("OUT-AAAAAA-link-2", "OUT-AAAAAA-link-1")


def test_the_major_incident_has_its_own_ladder_one_page_not_one_per_customer():
    outage, _ = declared()
    outage.advance(T0 + M)  # the sweep
    assert [p.kind for p in outage.advance(T0 + H) if isinstance(p, PageLine)] == ["outage_update_due"]
    later = [p.kind for hours in (2, 3, 4) for p in outage.advance(T0 + hours * H) if isinstance(p, PageLine)]
    assert later == ["outage_update_due", "outage_update_due", "outage_update_due", "outage_escalated"]
    assert outage.state.line == 3
    overdue = [p for p in outage.advance(T0 + 6 * H) if isinstance(p, PageLine) and p.kind == "outage_fix_overdue"]
    assert overdue and overdue[0].line == 3


def test_an_update_fans_out_to_the_linked_customers_and_moves_the_fix_time():
    outage, _ = declared()
    outcome = outage.act(PostUpdate(by="boris", news="Splicing now.", expected_fix_by=T0 + 8 * H), T0 + H)
    fan_out = next(e for e in outcome.effects if isinstance(e, FanOut))
    assert fan_out.signal == "outage_update" and fan_out.payload["news"] == "Splicing now."
    assert fan_out.follows is None, "each update is news of its own for every linked customer"
    assert outage.state.deadlines[OutageClock.fix_overdue] == T0 + 8 * H
    assert outage.state.deadlines[OutageClock.update_due] == T0 + 2 * H
    assert not outage.act(PostUpdate(by="boris", expected_fix_by=T0), T0 + H).accepted


def test_resolving_credits_by_duration_and_reaches_the_incidents_twice_then_finishes():
    outage, _ = declared()
    outage.fan_out_done("OUT-AAAAAA-link-1", reached=3, failures=0, now=T0 + M)
    outage.advance(T0 + M)
    outage.fan_out_done("OUT-AAAAAA-link-2", reached=0, failures=0, now=T0 + 2 * M)
    outcome = outage.act(ResolveOutage(by="boris", resolution="Spliced."), T0 + 3 * H)
    fan_out = next(e for e in outcome.effects if isinstance(e, FanOut))
    # 3h30m since it began, the first hour free: 3 started hours of 10.00 RUB.
    assert fan_out.payload["compensation"] == {"critical": {"amount": "30.00", "currency": "RUB"}}
    assert outage.state.compensation == {Severity.critical: Money(amount=Decimal("30.00"), currency="RUB")}
    assert not outage.finished
    outage.fan_out_done("OUT-AAAAAA-resolve-1", reached=2000, failures=0, now=T0 + 3 * H + M)
    sweep = outage.advance(T0 + 3 * H + M)
    assert [(e.job_id, e.follows) for e in sweep if isinstance(e, FanOut)] == [
        ("OUT-AAAAAA-resolve-2", "OUT-AAAAAA-resolve-1")
    ], "the sweep waits for the first job's incidents before it looks for the ones it missed"
    outage.fan_out_done("OUT-AAAAAA-resolve-2", reached=0, failures=0, now=T0 + 3 * H + 2 * M)
    assert outage.finished
    assert not outage.act(ResolveOutage(by="boris", resolution="again"), T0 + 4 * H).accepted


def test_a_failed_fan_out_is_a_page_naming_how_to_find_the_incidents():
    outage, _ = declared()
    effects = outage.fan_out_failed("OUT-AAAAAA-link-1", "batch operations unavailable", T0 + M)
    assert [(p.kind, p.line) for p in effects if isinstance(p, PageLine)] == [("outage_fan_out_failed", 2)]
    assert "incidents list --outage OUT-AAAAAA" in texts(effects)[0]


def test_declaring_needs_a_fix_time_after_the_start_and_planned_works_their_window():
    with pytest.raises(ValidationError, match="expected_fix_by"):
        DeclareOutage.model_validate(
            {"area": KHIMKI, "summary": "x", "owner": "b", "started_at": T0, "expected_fix_by": T0 - H}
        )
    with pytest.raises(ValidationError, match="started_at"):
        DeclareOutage.model_validate(
            {"area": KHIMKI, "summary": "x", "owner": "b", "kind": "planned_works", "expected_fix_by": T0 + H}
        )


# --- planned works ---


def test_planned_works_tell_the_area_a_day_and_an_hour_before_at_the_start_and_at_the_end():
    start, end = T0 + 3 * 24 * H, T0 + 3 * 24 * H + 4 * H
    outage, effects = declared(kind=OutageKind.planned_works, started_at=start, expected_fix_by=end)
    assert outage.state.status is NoticeStatus.announced and not [e for e in effects if isinstance(e, FanOut)]
    told: list[tuple[datetime, str]] = []
    now = T0
    while (due := outage.next_deadline()) is not None:
        now = due[1]
        told += [(now, e.notice_id) for e in outage.advance(now) if isinstance(e, TellArea)]
    assert told == [
        (start - 24 * H, "OUT-AAAAAA:ahead-1d"),
        (start - H, "OUT-AAAAAA:ahead-1h"),
        (start, "OUT-AAAAAA:started"),
        (end, "OUT-AAAAAA:finished"),
    ]
    assert outage.state.resolved_at == end and outage.state.compensation == {}


def test_planned_works_that_overrun_their_announced_end_earn_the_credit_for_the_overrun_only():
    start = T0 + 2 * H
    outage, _ = declared(kind=OutageKind.planned_works, started_at=start, expected_fix_by=start + 2 * H)
    outage.advance(start)
    outage.act(PostUpdate(by="boris", expected_fix_by=start + 5 * H), start + H)
    outage.advance(start + 5 * H)
    # Three hours over the announced end, the first free: 2 started hours.
    assert outage.state.compensation == {Severity.critical: Money(amount=Decimal("20.00"), currency="RUB")}


def test_planned_works_declared_less_than_a_day_ahead_skip_the_notice_that_is_already_late():
    start = T0 + 5 * H
    outage, _ = declared(kind=OutageKind.planned_works, started_at=start, expected_fix_by=start + H)
    assert outage.state.ahead_pending == [H]
    assert outage.state.deadlines[OutageClock.ahead] == start - H
