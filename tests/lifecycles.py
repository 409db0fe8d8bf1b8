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
from tests.office_hours import next_friday_evening, sleep_until
from workflows.domain.models import IncidentState
from workflows.domain.policy import default_policy

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


async def routine_over_a_weekend(
    env: WorkflowEnvironment, running: RunningWorker
) -> WorkflowHandle[Any, IncidentState]:
    """Opened Friday 17:30 in Moscow, escalated Monday 16:30 (8 h of working time), the calendars checked as
    it wakes then; fixed on line 2."""
    policy = default_policy()
    friday = await next_friday_evening(env, policy)
    await sleep_until(env, friday)
    handle = await start_incident(running, policy=policy, category="tariff_change")
    await settled(handle)
    await sleep_until(env, friday + timedelta(days=3, hours=-1, minutes=1))
    await until(handle, lambda s: s.line == 2)
    await send(handle, "acknowledge", agent="boris")
    await send(handle, "resolve", agent="boris", resolution="tariff switched by billing")
    await handle.result()
    return handle


LIFECYCLES: dict[str, Lifecycle] = {
    "full_critical": full_critical,
    "routine_quick_fix": routine_quick_fix,
    "rejected_actions_and_reopen": rejected_actions_and_reopen,
    "routine_over_a_weekend": routine_over_a_weekend,
}
