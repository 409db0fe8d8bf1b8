"""Major incidents on the time-skipping server (issue 18): declare, auto-link on open, "not only you", no
paging while linked, unlink gives the clock back, planned works link what opens in their window and tell
their area before, at the start and at the end.

Batch operations and visibility listing do not exist on this server (both answer UNIMPLEMENTED, checked):
here the fan-outs and the area's notices fail at once, recorded when they were due; their delivery to the
linked incidents and the area's customers is in tests/test_outage_dev_server.py.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

import pytest
from babel.dates import format_date, format_time
from temporalio.testing import WorkflowEnvironment

import workers.worker as worker_module
from activities.outages import OutageActivities
from starter.incidents import IncidentService
from starter.outages import OutageService
from tests.harness import RunningWorker, Sandboxes, running_worker
from tests.helpers import HOUR, MINUTE, open_request, settled, state_of
from tests.policies import around_the_clock_policy
from workflows.domain.actions import LinkOutage, UnlinkOutage
from workflows.domain.notice import NoticeStatus, OutageNotice
from workflows.domain.outage import DeclareOutage, OutageState, outage_board_id

KHIMKI = {"region": "moscow", "city": "khimki"}
NORTH = {**KHIMKI, "segment": "north-7"}


def services(running: RunningWorker) -> tuple[IncidentService, OutageService]:
    return (
        # Wall time: these tests count an SLA's hours across the link, not the office's working hours.
        IncidentService(running.client, policy=around_the_clock_policy(), task_queue=running.task_queue),
        OutageService(running.client, task_queue=running.task_queue),
    )


async def declare(running: RunningWorker, env: WorkflowEnvironment, **overrides: Any) -> OutageState:
    now = await env.get_current_time()
    fields: dict[str, Any] = {
        "area": KHIMKI,
        "categories": ["connection_lost"],
        "summary": "A cable was cut in Khimki.",
        "owner": "boris",
        "declared_by": "boris",
        "expected_fix_by": now + 20 * HOUR,
    }
    fields.update(overrides)
    _, outages = services(running)
    declared = await outages.declare(DeclareOutage.model_validate(fields))
    running.started.append(running.client.get_workflow_handle(declared.outage_id))
    running.started.append(running.client.get_workflow_handle(outage_board_id(running.task_queue)))
    return declared.state


async def on_the_board(running: RunningWorker, outage_id: str) -> OutageNotice:
    handle = running.client.get_workflow_handle(outage_board_id(running.task_queue))
    for _ in range(200):
        try:
            notices: list[OutageNotice] = await handle.query("notices", result_type=list[OutageNotice])
        except Exception:
            notices = []
        found = [n for n in notices if n.outage_id == outage_id]
        if found:
            return found[0]
        await asyncio.sleep(0.05)
    raise AssertionError(f"{outage_id} never reached the outage board")


def kinds(notifications: list[dict[str, Any]]) -> list[str]:
    return [n["kind"] for n in notifications]


async def test_a_declared_major_incident_pages_its_line_once_and_is_on_the_board(
    time_env: WorkflowEnvironment, skipping: RunningWorker, sandboxes: Sandboxes
):
    outage = await declare(skipping, time_env)
    assert outage.outage_id.startswith("OUT-") and outage.status is NoticeStatus.active and outage.line == 2
    notice = await on_the_board(skipping, outage.outage_id)
    assert notice.area.path == "moscow/khimki" and notice.categories == ("connection_lost",)
    pages = await sandboxes.notifications(ticket_id=outage.outage_id, recipient="line_2")
    assert "outage_declared" in kinds(pages)
    # This server has no batch operations: the first link fan-out says so, to the owning line, by name.
    _, outages = services(skipping)
    state = await until_outage(outages, outage.outage_id, lambda s: any(f.status == "failed" for f in s.fan_outs))
    assert "no batch operations" in (state.fan_outs[0].reason or "")
    # So does the sweep a minute later, at once: it asks after the job it follows, which this server cannot say.
    await time_env.sleep(timedelta(minutes=1, seconds=5))
    state = await until_outage(outages, outage.outage_id, lambda s: len(s.fan_outs) == 2 and s.fan_outs[1].reason)
    assert state.fan_outs[1].status == "failed" and "no batch operations" in (state.fan_outs[1].reason or "")


async def until_outage(outages: OutageService, outage_id: str, predicate: Any, within: float = 20.0) -> OutageState:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        state = await outages.state(outage_id)
        if predicate(state):
            return state
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{outage_id} never reached the expected state: {state.model_dump_json()}")
        await asyncio.sleep(0.05)


async def test_an_incident_opened_in_the_area_is_linked_at_once_hears_not_only_you_and_pages_nobody(
    time_env: WorkflowEnvironment, skipping: RunningWorker, sandboxes: Sandboxes
):
    outage = await declare(skipping, time_env)
    await on_the_board(skipping, outage.outage_id)
    incidents, _ = services(skipping)
    opened = await incidents.open(open_request(customer_id="c-linked", area=NORTH))
    assert opened.created and opened.state.outage is not None and opened.state.outage.outage_id == outage.outage_id
    handle = skipping.client.get_workflow_handle(opened.ticket_id)
    skipping.started.append(handle)
    await settled(handle)
    told = await sandboxes.notifications(ticket_id=opened.ticket_id)
    assert [(n["recipient"], n["kind"]) for n in told] == [("customer", "not_only_you")]
    # Written in the customer's language: the policy's default, Russian.
    assert "не только у вас" in told[0]["message"] and opened.ticket_id in told[0]["message"]
    # Ten hours: its own acknowledgement, line-1 and line-2 SLAs all lapse, and still no line hears of it.
    for _ in range(5):
        await time_env.sleep(2 * HOUR)
        await settled(handle)
    state = await state_of(handle)
    assert state.line == 1 and state.sla_breaches == []
    told = await sandboxes.notifications(ticket_id=opened.ticket_id)
    assert [n for n in told if n["recipient"] != "customer"] == []
    updates = [n for n in told if n["kind"] == "status_update"]
    assert len(updates) == 5 and all("сбой в вашем районе" in n["message"] for n in updates)
    # A customer elsewhere in Moscow opens unlinked and pages line 1 as ever.
    elsewhere = await incidents.open(open_request(customer_id="c-elsewhere", area={"region": "moscow", "city": "klin"}))
    skipping.started.append(skipping.client.get_workflow_handle(elsewhere.ticket_id))
    assert elsewhere.state.outage is None


async def test_an_incident_linked_later_stops_paging_and_unlinked_gets_its_clock_back_with_its_time(
    time_env: WorkflowEnvironment, skipping: RunningWorker, sandboxes: Sandboxes
):
    incidents, _ = services(skipping)
    opened = await incidents.open(open_request(customer_id="c-later", area=NORTH, category="tariff_change"))
    handle = skipping.client.get_workflow_handle(opened.ticket_id)
    skipping.started.append(handle)
    outage = await declare(skipping, time_env, categories=[])
    await time_env.sleep(3 * HOUR)  # routine: line 1 has 8 hours; 5 are left
    before = await settled(handle)
    assert before.sla_deadline is not None
    now = await time_env.get_current_time()
    left = before.sla_deadline - now
    linked = await incidents.act(opened.ticket_id, LinkOutage(agent="boris", outage_id=outage.outage_id))
    assert linked.state is not None and linked.state.outage is not None
    await time_env.sleep(12 * HOUR)  # far past its own 8 hours: nothing escalates
    during = await settled(handle)
    assert during.line == 1 and during.sla_breaches == []
    unlinked = await incidents.act(
        opened.ticket_id, UnlinkOutage(agent="boris", reason="a broken router, not the cable")
    )
    assert unlinked.state is not None and unlinked.state.sla_deadline is not None
    now = await time_env.get_current_time()
    assert abs((unlinked.state.sla_deadline - now) - left) < 2 * MINUTE
    await time_env.sleep(left + MINUTE)
    after = await settled(handle)
    assert after.line == 2 and after.sla_breaches == ["line_1"]
    told = await sandboxes.notifications(ticket_id=opened.ticket_id)
    pages = [(n["recipient"], n["kind"]) for n in told if n["recipient"] != "customer"]
    assert pages == [("line_1", "new_incident"), ("line_1", "outage_unlinked"), ("line_2", "escalated")]


async def test_planned_works_link_the_incidents_opened_in_their_window_and_no_others(
    time_env: WorkflowEnvironment, skipping: RunningWorker, sandboxes: Sandboxes
):
    now = await time_env.get_current_time()
    start = now + 2 * HOUR
    outage = await declare(
        skipping,
        time_env,
        kind="planned_works",
        categories=[],
        summary="Night works on the Khimki exchange.",
        started_at=start,
        expected_fix_by=start + 4 * HOUR,
    )
    assert outage.status is NoticeStatus.announced
    await on_the_board(skipping, outage.outage_id)
    incidents, _ = services(skipping)
    before = await incidents.open(open_request(customer_id="c-before", area=NORTH, category="speed_drop"))
    skipping.started.append(skipping.client.get_workflow_handle(before.ticket_id))
    assert before.state.outage is None  # the works have not started
    await time_env.sleep(2 * HOUR + MINUTE)
    during = await incidents.open(open_request(customer_id="c-during", area=NORTH, category="speed_drop"))
    skipping.started.append(skipping.client.get_workflow_handle(during.ticket_id))
    assert during.state.outage is not None and during.state.outage.outage_id == outage.outage_id
    assert during.state.outage.notice.kind == "planned_works"


async def test_planned_works_tell_their_area_an_hour_before_at_the_start_and_at_the_end(
    time_env: WorkflowEnvironment, skipping: RunningWorker
):
    now = await time_env.get_current_time()
    start = now + 3 * HOUR
    outage = await declare(
        skipping,
        time_env,
        kind="planned_works",
        categories=[],
        summary="Night works on the Khimki exchange.",
        started_at=start,
        expected_fix_by=start + 2 * HOUR,
    )
    # Declared three hours ahead: the notice a day ahead is already past; the one an hour ahead is due.
    assert [str(a) for a in outage.ahead_pending] == ["1:00:00"]
    _, outages = services(skipping)
    await time_env.sleep(5 * HOUR + MINUTE)
    state = await until_outage(outages, outage.outage_id, lambda s: len(_area_notices(s)) == 3)
    due = {notice: at for notice, at in _area_notices(state)}
    assert list(due) == [f"{outage.outage_id}:ahead-1h", f"{outage.outage_id}:started", f"{outage.outage_id}:finished"]
    for notice, expected in zip(due, (start - HOUR, start, start + 2 * HOUR), strict=True):
        assert abs(due[notice] - expected) < MINUTE, (notice, due[notice], expected)
    assert state.status is NoticeStatus.resolved and state.resolution == "The planned works are finished."


def _area_notices(state: OutageState) -> list[tuple[str, Any]]:
    """When each notice to the area was due: here each fails at once (no visibility listing), and says so."""
    return [(e.data["notice"], e.at) for e in state.events if e.type in ("area_told", "area_tell_failed")]


class _AreaListedByTheTest(OutageActivities):
    """The time-skipping server has no visibility listing: the area's incidents are the ones this test opened,
    as the dev server would list them (tests/stack/test_outage_dev_server.py lists them for real). The rest
    of the notice - each incident's state read by query, the text, the delivery over HTTP - is the real one."""

    in_the_area: ClassVar[dict[str, str]] = {}

    async def area_incidents(self, query: str) -> dict[str, str]:
        assert "moscow/khimki" in query
        return dict(self.in_the_area)


async def test_planned_works_notices_reach_each_customer_in_their_language_and_on_their_clock(
    time_env: WorkflowEnvironment, sandboxes: Sandboxes, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(worker_module, "OutageActivities", _AreaListedByTheTest)
    async with running_worker(time_env.client, sandboxes) as running:
        incidents, _ = services(running)
        customers = {
            "ivan": {"language": "ru", "time_zone": "Asia/Vladivostok", "contact": "ivan@example.ru"},
            "jane": {"language": "en", "time_zone": "Europe/London", "contact": "jane@example.com"},
        }
        for customer, locale in customers.items():
            opened = await incidents.open(
                open_request(customer_id=customer, area=NORTH, category="speed_drop", **locale)
            )
            running.started.append(running.client.get_workflow_handle(opened.ticket_id))
            _AreaListedByTheTest.in_the_area[customer] = opened.ticket_id
        # 21:00-23:00 UTC on the test server's day after tomorrow: 07:00-09:00 the next morning in Vladivostok.
        now = await time_env.get_current_time()
        start = (now + 48 * HOUR).replace(hour=21, minute=0, second=0, microsecond=0)
        outage = await declare(
            running,
            time_env,
            kind="planned_works",
            categories=[],
            summary="Night works on the Khimki exchange.",
            started_at=start,
            expected_fix_by=start + 2 * HOUR,
        )
        _, outages = services(running)
        await time_env.sleep(start + 2 * HOUR + MINUTE - now)
        await until_outage(outages, outage.outage_id, lambda s: s.status is NoticeStatus.resolved)
        told = await sandboxes.notifications(ticket_id=outage.outage_id, recipient="customer")

    def notices_to(contact: str) -> dict[str, str]:
        return {n["kind"]: n["message"] for n in told if n["contact"] == contact}

    russian, english = notices_to("ivan@example.ru"), notices_to("jane@example.com")
    local_start = start.astimezone(ZoneInfo("Asia/Vladivostok"))
    day_ru = format_date(local_start, "long", locale="ru")
    assert set(russian) == {"planned_works_ahead", "planned_works_started", "planned_works_finished"}
    assert russian["planned_works_ahead"].startswith("Плановые работы в вашем районе")
    assert f"{day_ru}, 07:00" in russian["planned_works_ahead"] and "09:00" in russian["planned_works_ahead"]
    assert "UTC" not in russian["planned_works_ahead"]
    assert "начались" in russian["planned_works_started"] and "09:00" in russian["planned_works_started"]
    assert "завершены" in russian["planned_works_finished"]
    # Jane reads English on London's clock (21:00 UTC is 9:00 PM there in winter, 10:00 PM in summer).
    london = format_time(start, "short", tzinfo=ZoneInfo("Europe/London"), locale="en")
    assert (
        english["planned_works_ahead"].startswith("Planned works in your area")
        and london in english["planned_works_ahead"]
    )
