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
DAY = timedelta(days=1)

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


async def waiting_on_the_customer(
    env: WorkflowEnvironment, running: RunningWorker
) -> WorkflowHandle[Any, IncidentState]:
    """Issue 17: asked, reminded, answered; asked again, silent until closed; a late answer reopens it."""
    handle = await start_incident(running, category="tariff_change")
    await send(handle, "ask_customer", agent="ann", question="Which tariff do you want?")
    await env.sleep(2 * DAY + timedelta(minutes=1))
    await settled(handle)
    await send(handle, "customer_reply", channel="chat", text="the night one")
    await send(handle, "customer_reply", channel="chat", text="did you get it?")  # refused: nobody asked
    await send(handle, "ask_customer", agent="ann", question="From which date?")
    await env.sleep(7 * DAY + timedelta(minutes=1))
    await settled(handle)
    await env.sleep(DAY)
    await send(handle, "customer_reply", channel="email", text="sorry, from Monday")
    await send(handle, "acknowledge", agent="ann")
    await send(handle, "resolve", agent="ann", resolution="night tariff from Monday")
    await handle.result()
    return handle


async def self_help_first(env: WorkflowEnvironment, running: RunningWorker) -> WorkflowHandle[Any, IncidentState]:
    """Seed 004, level 1: the steps go out with the ticket; "it did not", then "that fixed it"."""
    handle = await start_incident(running, category="connection_lost")
    await settled(handle)
    await send(handle, "self_help_failed", channel="app")
    await env.sleep(timedelta(minutes=5))
    await settled(handle)
    await send(handle, "self_help_worked", channel="app", comment="a second restart did it")
    await handle.result()
    return handle


LIFECYCLES: dict[str, Lifecycle] = {
    "full_critical": full_critical,
    "routine_quick_fix": routine_quick_fix,
    "rejected_actions_and_reopen": rejected_actions_and_reopen,
    "waiting_on_the_customer": waiting_on_the_customer,
    "self_help_first": self_help_first,
}
