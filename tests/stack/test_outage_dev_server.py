"""Major incidents on the real dev server (issue 18): the fan-outs by Temporal's batch operation (link the
open incidents, resolve them all together with their callbacks), a reopen after the mass resolve that stays
one customer's own, and planned-works notices to the area's customers before, at the start and at the end.
Notifications are counted in the notification sandbox."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from temporalio.testing import WorkflowEnvironment

from activities.audit_findings import Finding, Kind, find_vanished
from starter.incidents import IncidentService
from starter.outages import OutageService
from tests.harness import Sandboxes, running_worker
from tests.helpers import open_request
from tests.policies import fast_policy
from workflows.domain.actions import Feedback, Resolve
from workflows.domain.models import IncidentState, Status
from workflows.domain.outage import (
    DeclareOutage,
    OutagePolicy,
    OutageState,
    PostUpdate,
    ResolveOutage,
    default_outage_policy,
)

T = TypeVar("T")
KHIMKI = {"region": "moscow", "city": "khimki"}
DOLGOPRUDNY = {"region": "moscow", "city": "dolgoprudny"}


def quick_outage_policy(**overrides: Any) -> OutagePolicy:
    data = default_outage_policy().model_dump(mode="json")
    data.update(
        {
            "name": "quick",
            "sweep_after": "2s",
            "compensation": {"critical": {"per_hour": "10.00", "currency": "RUB"}},
            "recent_within": "1d",
            **overrides,
        }
    )
    return OutagePolicy.model_validate(data)


async def eventually(check: Callable[[], Awaitable[T | None]], within: float = 60.0, what: str = "") -> T:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        found = await check()
        if found:
            return found
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {within}s: {what}")
        await asyncio.sleep(0.2)


def area(segment: str, city: dict[str, str] = KHIMKI) -> dict[str, str]:
    return {**city, "segment": segment}


async def declare(outages: OutageService, **overrides: Any) -> OutageState:
    fields: dict[str, Any] = {
        "area": KHIMKI,
        "categories": ["connection_lost", "speed_drop"],
        "summary": "A cable was cut in Khimki.",
        "owner": "boris",
        "declared_by": "boris",
        "expected_fix_by": datetime.now(UTC) + timedelta(hours=6),
    }
    fields.update(overrides)
    return (await outages.declare(DeclareOutage.model_validate(fields))).state


async def test_a_mass_resolve_by_batch_operation_resolves_every_linked_incident_with_its_callback(
    dev_env: WorkflowEnvironment, sandboxes: Sandboxes
):
    async with running_worker(dev_env.client, sandboxes) as running:
        incidents = IncidentService(running.client, policy=fast_policy(), task_queue=running.task_queue)
        outages = OutageService(running.client, policy=quick_outage_policy(), task_queue=running.task_queue)
        # Open before the declaration: the major incident's link fan-out finds it.
        earlier = await incidents.open(open_request(customer_id="mass-0", area=area("s0")))
        outage = await declare(outages)
        # Opened after it: the intake links them at once (one routine, told too, never credited).
        later = [
            await incidents.open(
                open_request(
                    customer_id=f"mass-{n}", area=area(f"s{n}"), category=category, contact=f"+7 900 000-00-{n:02d}"
                )
            )
            for n, category in ((1, "connection_lost"), (2, "speed_drop"), (3, "connection_lost"))
        ]
        outside = await incidents.open(open_request(customer_id="mass-9", area={"region": "moscow", "city": "klin"}))
        tickets = [earlier.ticket_id, *(o.ticket_id for o in later)]
        assert all(o.state.outage is not None for o in later) and outside.state.outage is None
        await eventually(lambda: _all_linked(incidents, tickets, outage.outage_id), what="every incident linked")
        await asyncio.sleep(6)  # past every fast SLA (1-3 s): a linked incident pages no line
        for opened in later:
            assert await _line_pages(sandboxes, opened.ticket_id) == []
            told = [n["kind"] for n in await sandboxes.notifications(opened.ticket_id, "customer")]
            assert told[0] == "not_only_you" and "ticket_opened" not in told
        # Opened before the major incident: line 1 heard of it then, and nothing since it was linked.
        assert await _line_pages(sandboxes, earlier.ticket_id) == ["new_incident"]
        assert "not_only_you" in [n["kind"] for n in await sandboxes.notifications(earlier.ticket_id, "customer")]

        # The owner's news reaches every linked customer (a fan-out of outage_update), and no line.
        await outages.act(outage.outage_id, PostUpdate(by="boris", news="Splicing now."))

        async def everyone_heard() -> bool:
            for ticket in tickets:
                told = await sandboxes.notifications(ticket, "customer")
                if not [n for n in told if n["kind"] == "outage_update" and "Splicing now." in n["message"]]:
                    return False
            return True

        await eventually(everyone_heard, what="every linked customer told the news")
        assert await _line_pages(sandboxes, later[0].ticket_id) == []
        resolved = await outages.act(outage.outage_id, ResolveOutage(by="boris", resolution="The cable is spliced."))
        assert resolved.state.status == "resolved"
        states = await eventually(
            lambda: _all_resolved(incidents, tickets), within=60, what="every linked incident resolved"
        )
        assert all(s.outage is not None and s.outage.ended == "resolved together" for s in states)
        for ticket in tickets:
            told = [n["kind"] for n in await sandboxes.notifications(ticket, "customer")]
            assert told.count("resolved") == 1, (ticket, told)
        # Each its own satisfaction callback (the critical ones under the fast policy ask after 2 s).
        await eventually(lambda: _all_asked(sandboxes, tickets), within=30, what="every customer asked for feedback")
        credits = [s.compensation for s in await _states(incidents, tickets)]
        assert all(c is not None and c.amount == 10 for c in credits)  # critical: 10.00 RUB per started hour
        assert (await incidents.state(outside.ticket_id)).status is Status.open  # never linked, never resolved

        # "Still broken" after the mass resolve: only that customer's incident reopens.
        await incidents.act(later[0].ticket_id, Feedback(score=1, comment="still no internet"))
        await incidents.act(later[1].ticket_id, Feedback(score=5))
        reopened = await incidents.state(later[0].ticket_id)
        assert reopened.status is Status.open and reopened.line == 2 and reopened.outage is not None
        assert not reopened.outage.active
        others = await _states(incidents, [t for t in tickets if t != later[0].ticket_id])
        assert all(s.status is not Status.open for s in others)
        # Line 1 heard of it only for its own callback, and line 2 of its reopening.
        assert await _line_pages(sandboxes, later[0].ticket_id) == ["callback_due", "reopened"]
        assert await _line_pages(sandboxes, later[1].ticket_id) == ["callback_due"]
        final = await eventually(
            lambda: _finished(outages, outage.outage_id), within=30, what="the major incident finished"
        )
        reached = [f for f in final.fan_outs if f.operation == "resolve"]
        assert sum(f.reached or 0 for f in reached) == len(tickets) and all(f.status == "done" for f in reached)
        # The major incident's own pages: its declaration only (its ladder is hours long).
        assert [n["kind"] for n in await sandboxes.notifications(outage.outage_id)] == ["outage_declared"]
        listed = await incidents.search(outage_id=outage.outage_id)
        assert {r.ticket_id for r in listed} == set(tickets)
        # The audit does not take the reopened one (its link is over) for one left behind by its major incident.
        findings = await find_vanished(running.client, timedelta(minutes=5))
        assert not [f for f in findings if f.ticket_id in tickets]
        await incidents.act(later[0].ticket_id, Resolve(agent="boris", resolution="replaced the router"))


async def test_the_audit_finds_incidents_left_linked_by_a_major_incident_that_ended_unresolved(
    dev_env: WorkflowEnvironment, sandboxes: Sandboxes
):
    async with running_worker(dev_env.client, sandboxes) as running:
        incidents = IncidentService(running.client, policy=fast_policy(), task_queue=running.task_queue)
        outages = OutageService(running.client, policy=quick_outage_policy(), task_queue=running.task_queue)
        outage = await declare(outages, area={"region": "moscow", "city": "lobnya"})

        async def linked() -> str | None:
            opened = await incidents.open(
                open_request(customer_id=f"audit-{uuid.uuid4().hex[:6]}", area={"region": "moscow", "city": "lobnya"})
            )
            return opened.ticket_id if opened.state.outage is not None else None

        ticket = await eventually(linked, what="an incident linked at opening")
        await running.client.get_workflow_handle(outage.outage_id).terminate(reason="killed by mistake")

        async def found() -> list[Finding] | None:
            findings = await find_vanished(running.client, timedelta(minutes=5))
            mine = [f for f in findings if f.ticket_id in (ticket, outage.outage_id)]
            return mine if len(mine) >= 2 else None

        findings = await eventually(found, what="the audit's findings")
        kinds = {(f.ticket_id, f.kind) for f in findings}
        assert (ticket, Kind.linked_to_ended_outage) in kinds and (outage.outage_id, Kind.ended_unclosed) in kinds
        orphan = next(f for f in findings if f.kind is Kind.linked_to_ended_outage)
        assert outage.outage_id in orphan.problem and "terminated" in orphan.problem
        assert f"incidents unlink {ticket}" in orphan.action


async def test_planned_works_tell_the_areas_recent_customers_before_at_the_start_and_at_the_end(
    dev_env: WorkflowEnvironment, sandboxes: Sandboxes
):
    async with running_worker(dev_env.client, sandboxes) as running:
        incidents = IncidentService(running.client, policy=fast_policy(), task_queue=running.task_queue)
        outages = OutageService(
            running.client, policy=quick_outage_policy(notify_before=["1d", "4s"]), task_queue=running.task_queue
        )
        nearby = await incidents.open(
            open_request(
                customer_id="works-1",
                area=area("north", DOLGOPRUDNY),
                category="tariff_change",
                contact="a@example.com",
                language="en",
                time_zone="Europe/London",
            )
        )
        await incidents.act(nearby.ticket_id, Resolve(agent="ann", resolution="done"))  # closed: still recent
        for category in ("tariff_change", "ui_typo"):  # one customer, two incidents: told once
            await incidents.open(
                open_request(
                    customer_id="works-2",
                    area=area("south", DOLGOPRUDNY),
                    category=category,
                    contact="+7 900 111-22-33",
                    language="ru",
                    time_zone="Asia/Vladivostok",
                )
            )
        await incidents.open(  # elsewhere: never told
            open_request(customer_id="works-3", area={"region": "moscow", "city": "klin"}, category="tariff_change")
        )
        await asyncio.sleep(2)  # visibility catches up with the new incidents
        start = datetime.now(UTC) + timedelta(seconds=8)
        works = await declare(
            outages,
            kind="planned_works",
            area=DOLGOPRUDNY,
            categories=[],
            summary="Night works on the Khimki exchange.",
            started_at=start,
            expected_fix_by=start + timedelta(seconds=5),
        )
        assert works.ahead_pending == [timedelta(seconds=4)]  # a day ahead is already past
        told = await eventually(
            lambda: _told(sandboxes, works.outage_id, 6), within=40, what="three notices to each of two customers"
        )
        by_customer = {(n["contact"], n["kind"]) for n in told}
        assert by_customer == {
            (contact, kind)
            for contact in ("a@example.com", "+7 900 111-22-33")
            for kind in ("planned_works_ahead", "planned_works_started", "planned_works_finished")
        }
        english = [n["message"] for n in told if n["contact"] == "a@example.com"]
        russian = [n["message"] for n in told if n["contact"] == "+7 900 111-22-33"]
        assert all("Khimki exchange" in m or "finished" in m for m in english), english
        # The Russian customer reads Russian, the window on Vladivostok's clock (+10), never UTC.
        local_start = start.astimezone(ZoneInfo("Asia/Vladivostok")).strftime("%H:%M")
        assert all(m.startswith("Плановые работы") and "UTC" not in m for m in russian), russian
        assert any(local_start in m for m in russian), (local_start, russian)
        assert not [n for n in told if n["contact"] is None]
        final = await eventually(lambda: _finished(outages, works.outage_id), within=30, what="the works over")
        assert final.compensation == {} and [e.data["customers"] for e in final.events if e.type == "area_told"] == [
            2,
            2,
            2,
        ]


async def _states(incidents: IncidentService, tickets: list[str]) -> list[IncidentState]:
    return [await incidents.state(t) for t in tickets]


async def _all_linked(incidents: IncidentService, tickets: list[str], outage_id: str) -> list[IncidentState] | None:
    states = await _states(incidents, tickets)
    ok = all(s.outage is not None and s.outage.outage_id == outage_id and s.outage.active for s in states)
    return states if ok else None


async def _all_resolved(incidents: IncidentService, tickets: list[str]) -> list[IncidentState] | None:
    states = await _states(incidents, tickets)
    return states if all(s.status is not Status.open for s in states) else None


async def _all_asked(sandboxes: Sandboxes, tickets: list[str]) -> bool:
    critical = tickets  # every one of them is critical (connection_lost, speed_drop)
    for ticket in critical:
        if "feedback_request" not in [n["kind"] for n in await sandboxes.notifications(ticket, "customer")]:
            return False
    return True


async def _line_pages(sandboxes: Sandboxes, ticket: str) -> list[str]:
    return [n["kind"] for n in await sandboxes.notifications(ticket) if n["recipient"] != "customer"]


async def _finished(outages: OutageService, outage_id: str) -> OutageState | None:
    description = await outages.client.get_workflow_handle(outage_id).describe()
    if description.status is None or description.status.name != "COMPLETED":
        return None
    return await outages.state(outage_id)


async def _told(sandboxes: Sandboxes, outage_id: str, count: int) -> list[dict[str, Any]] | None:
    told = [n for n in await sandboxes.notifications(outage_id, "customer")]
    return told if len(told) >= count else None
