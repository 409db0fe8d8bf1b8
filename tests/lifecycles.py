"""Typical incident lifecycles, scripted once and used three ways: to record the histories stored
under tests/histories (replayed in CI against the current code), by the tests, and by the benchmark."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from tests.conftest import RunningWorker
from tests.helpers import send, settled, start_incident, until
from workflows.domain.models import IncidentState

HOUR = timedelta(hours=1)

Lifecycle = Callable[[WorkflowEnvironment, RunningWorker], Awaitable[WorkflowHandle[Any, IncidentState]]]


async def full_critical(env: WorkflowEnvironment, running: RunningWorker) -> WorkflowHandle[Any, IncidentState]:
    """Escalation by timeout, a refund, a late resolution with compensation, the callback and feedback."""
    handle = await start_incident(
        running, category="payment_not_refunded", refund={"amount": "1500.00", "currency": "RUB"}
    )
    await until(handle, lambda s: s.refund is not None and s.refund.status == "paid")
    await env.sleep(HOUR + timedelta(minutes=5))
    await send(handle, "acknowledge", agent="boris")
    await send(handle, "resolve", agent="boris", resolution="refund confirmed by the bank")
    await until(handle, lambda s: s.compensation is not None and s.compensation.status == "granted")
    await env.sleep(24 * HOUR + timedelta(minutes=1))
    await settled(handle)
    await send(handle, "feedback", score=5, comment="thank you")
    await handle.result()
    return handle


async def routine_quick_fix(env: WorkflowEnvironment, running: RunningWorker) -> WorkflowHandle[Any, IncidentState]:
    handle = await start_incident(running, category="tariff_change")
    await send(handle, "acknowledge", agent="ann")
    await send(handle, "add_note", agent="ann", text="customer wants the night tariff")
    await send(handle, "resolve", agent="ann", resolution="switched to the night tariff")
    await handle.result()
    return handle


async def rejected_actions_and_reopen(
    env: WorkflowEnvironment, running: RunningWorker
) -> WorkflowHandle[Any, IncidentState]:
    handle = await start_incident(running, category="speed_drop")
    await send(handle, "feedback", score=3)
    await handle.signal("acknowledge", {"agent": ""})
    await send(handle, "acknowledge", agent="ann")
    await send(handle, "customer_contact", channel="chat", text="is anyone there?")
    await send(handle, "resolve", agent="ann", resolution="profile reset")
    await settled(handle)
    await env.sleep(24 * HOUR + timedelta(minutes=1))
    await settled(handle)
    await send(handle, "feedback", score=1, comment="still slow")
    await settled(handle)
    await env.sleep(5 * HOUR)
    await settled(handle)
    await send(handle, "resolve", agent="duty", resolution="replaced the line card")
    await settled(handle)
    await send(handle, "feedback", score=4)
    await handle.result()
    return handle


def _notice(outage_id: str, opened: IncidentState, fix_in: timedelta, status: str = "active") -> dict[str, object]:
    """A major incident's notice as its fan-out sends it (JSON), around the incident's opening time."""
    return {
        "outage_id": outage_id,
        "area": {"region": "moscow", "city": "khimki"},
        "categories": ["connection_lost"],
        "status": status,
        "summary": "A cable was cut in Khimki.",
        "started_at": opened.opened_at.isoformat(),
        "expected_fix_by": (opened.opened_at + fix_in).isoformat(),
        "check_by": (opened.opened_at + fix_in + 4 * HOUR).isoformat(),
    }


async def linked_to_an_outage(env: WorkflowEnvironment, running: RunningWorker) -> WorkflowHandle[Any, IncidentState]:
    """Issue 18: linked to a major incident, no paging past its own SLAs, news, resolved together with a credit,
    the callback and feedback; an unknown outage's news refused on the way."""
    area = {"region": "moscow", "city": "khimki", "segment": "north-7"}
    handle = await start_incident(running, area=area)
    opened = await settled(handle)
    await send(
        handle, "link_outage", agent="boris", outage_id="OUT-AAAAAA", notice=_notice("OUT-AAAAAA", opened, 8 * HOUR)
    )
    await settled(handle)
    await env.sleep(5 * HOUR)
    await settled(handle)
    await send(handle, "outage_update", notice=_notice("OUT-BBBBBB", opened, 9 * HOUR), news="wrong outage")
    await send(handle, "outage_update", notice=_notice("OUT-AAAAAA", opened, 9 * HOUR), news="Splicing now.")
    await settled(handle)
    await send(
        handle,
        "outage_resolved",
        notice=_notice("OUT-AAAAAA", opened, 9 * HOUR, status="resolved"),
        resolution="The cable is spliced.",
        resolved_by="boris",
        compensation={"critical": {"amount": "50.00", "currency": "RUB"}},
    )
    await until(handle, lambda s: s.compensation is not None and s.compensation.status == "granted")
    await env.sleep(24 * HOUR + timedelta(minutes=1))
    await settled(handle)
    await send(handle, "feedback", score=5)
    await handle.result()
    return handle


LIFECYCLES: dict[str, Lifecycle] = {
    "full_critical": full_critical,
    "routine_quick_fix": routine_quick_fix,
    "rejected_actions_and_reopen": rejected_actions_and_reopen,
    "linked_to_an_outage": linked_to_an_outage,
}
