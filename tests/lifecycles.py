"""Typical incident lifecycles, scripted once and used three ways: to record the histories stored
under tests/histories (replayed in CI against the current code), by the tests, and by the benchmark.
Each starts its incident as the service does (`customer_locale`: the customer's language and time zone)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from tests.harness import RunningWorker
from tests.helpers import send, settled, start_incident, until
from tests.office_hours import next_friday_evening, sleep_until
from workflows.domain.models import IncidentState
from workflows.domain.policy import default_policy

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)

Lifecycle = Callable[[WorkflowEnvironment, RunningWorker], Awaitable[WorkflowHandle[Any, IncidentState]]]


async def full_critical(env: WorkflowEnvironment, running: RunningWorker) -> WorkflowHandle[Any, IncidentState]:
    """Escalation by timeout, a refund, a late resolution with compensation, the callback and feedback."""
    handle = await start_incident(
        running, category="payment_not_refunded", refund={"amount": "1500.00", "currency": "RUB"}, customer_locale=True
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
    handle = await start_incident(running, category="tariff_change", customer_locale=True)
    await send(handle, "acknowledge", agent="ann")
    await send(handle, "add_note", agent="ann", text="customer wants the night tariff")
    await send(handle, "resolve", agent="ann", resolution="switched to the night tariff")
    await handle.result()
    return handle


async def rejected_actions_and_reopen(
    env: WorkflowEnvironment, running: RunningWorker
) -> WorkflowHandle[Any, IncidentState]:
    handle = await start_incident(running, category="speed_drop", customer_locale=True)
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


async def customer_messaged(env: WorkflowEnvironment, running: RunningWorker) -> WorkflowHandle[Any, IncidentState]:
    """Seed 003 in the customer's language: the agent sends instructions, the customer reads them with the ticket."""
    handle = await start_incident(
        running, category="connection_lost", language="ru", time_zone="Asia/Yekaterinburg", customer_locale=True
    )
    await send(handle, "acknowledge", agent="ann")
    await send(handle, "message_customer", agent="ann", text="Перезагрузите роутер: отключите питание на 30 секунд.")
    await env.sleep(2 * HOUR + timedelta(minutes=1))
    await settled(handle)
    await send(handle, "resolve", agent="boris", resolution="порт на коммутаторе заменён")
    await settled(handle)
    await env.sleep(24 * HOUR + timedelta(minutes=1))
    await settled(handle)
    await send(handle, "feedback", score=5)
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
    "customer_messaged": customer_messaged,
    "routine_over_a_weekend": routine_over_a_weekend,
    "waiting_on_the_customer": waiting_on_the_customer,
    "self_help_first": self_help_first,
    "linked_to_an_outage": linked_to_an_outage,
}
