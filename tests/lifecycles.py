"""Typical incident lifecycles, scripted once and used three ways: to record the histories stored
under tests/histories (replayed in CI against the current code), by the tests, and by the benchmark.
Each starts its incident as the service does (`customer_locale`: the customer's language and time zone)."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from tests.harness import RunningWorker, Sandboxes
from tests.helpers import open_request, send, settled, start_incident, until
from tests.office_hours import next_friday_evening, sleep_until
from workflows.domain.inputs import WORKFLOW_TYPE, IncidentInput
from workflows.domain.models import IncidentState
from workflows.domain.policy import default_policy
from workflows.domain.tickets import new_ticket_id
from workflows.incident_start import start_options

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)

Lifecycle = Callable[[WorkflowEnvironment, RunningWorker, Sandboxes], Awaitable[WorkflowHandle[Any, IncidentState]]]


def _refund_status(status: str) -> Callable[[IncidentState], bool]:
    return lambda s: s.refund is not None and s.refund.status == status


async def full_critical(
    env: WorkflowEnvironment, running: RunningWorker, boxes: Sandboxes
) -> WorkflowHandle[Any, IncidentState]:
    """Escalation by timeout, a refund, a late resolution with compensation, the callback and feedback."""
    handle = await start_incident(
        running, category="payment_not_refunded", refund={"amount": "1500.00", "currency": "RUB"}, customer_locale=True
    )
    return await critical_after_opening(env, handle)


async def critical_after_opening(
    env: WorkflowEnvironment, handle: WorkflowHandle[Any, IncidentState]
) -> WorkflowHandle[Any, IncidentState]:
    """full_critical's steps once its incident is open, however it was opened (a direct start, the service)."""
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


async def routine_quick_fix(
    env: WorkflowEnvironment, running: RunningWorker, boxes: Sandboxes
) -> WorkflowHandle[Any, IncidentState]:
    handle = await start_incident(running, category="tariff_change", customer_locale=True)
    await send(handle, "acknowledge", agent="ann")
    await send(handle, "add_note", agent="ann", text="customer wants the night tariff")
    await send(handle, "resolve", agent="ann", resolution="switched to the night tariff")
    await handle.result()
    return handle


async def rejected_actions_and_reopen(
    env: WorkflowEnvironment, running: RunningWorker, boxes: Sandboxes
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


async def customer_messaged(
    env: WorkflowEnvironment, running: RunningWorker, boxes: Sandboxes
) -> WorkflowHandle[Any, IncidentState]:
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


async def linked_to_an_outage(
    env: WorkflowEnvironment, running: RunningWorker, boxes: Sandboxes
) -> WorkflowHandle[Any, IncidentState]:
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
    env: WorkflowEnvironment, running: RunningWorker, boxes: Sandboxes
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
    env: WorkflowEnvironment, running: RunningWorker, boxes: Sandboxes
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


async def self_help_first(
    env: WorkflowEnvironment, running: RunningWorker, boxes: Sandboxes
) -> WorkflowHandle[Any, IncidentState]:
    """Seed 004, level 1: the steps go out with the ticket; "it did not", then "that fixed it"."""
    handle = await start_incident(running, category="connection_lost")
    await settled(handle)
    await send(handle, "self_help_failed", channel="app")
    await env.sleep(timedelta(minutes=5))
    await settled(handle)
    await send(handle, "self_help_worked", channel="app", comment="a second restart did it")
    await handle.result()
    return handle


# --- money under issue 15: the acting agent's authority, four eyes, one refund per charge, new keys ---
# Actions carry `actor_line` as the HTTP API sends them (the line of the agent's token).


async def line_one_refund_within_limit(
    env: WorkflowEnvironment, running: RunningWorker, boxes: Sandboxes
) -> WorkflowHandle[Any, IncidentState]:
    """A line-1 agent adds a refund within her limit and it is paid at once, without escalating."""
    handle = await start_incident(running, category="deferred_payment", customer_locale=True)
    await send(handle, "acknowledge", agent="ann")
    await send(handle, "add_refund", agent="ann", actor_line=1, refund={"amount": "4000.00", "currency": "RUB"})
    await until(handle, _refund_status("paid"))
    await send(handle, "resolve", agent="ann", resolution="refunded the double charge")
    await handle.result()
    return handle


async def four_eyes_refund(
    env: WorkflowEnvironment, running: RunningWorker, boxes: Sandboxes
) -> WorkflowHandle[Any, IncidentState]:
    """A refund above the four-eyes threshold: line 1 may not approve it, nor one agent twice; two may."""
    handle = await start_incident(
        running, category="deferred_payment", refund={"amount": "60000.00", "currency": "RUB"}, customer_locale=True
    )
    await send(handle, "approve_refund", agent="ann", line=1, actor_line=1)
    await send(handle, "approve_refund", agent="boris", line=2, actor_line=2)
    await send(handle, "approve_refund", agent="boris", line=2, actor_line=2)
    await send(handle, "approve_refund", agent="vera", line=3, actor_line=3)
    await until(handle, _refund_status("paid"))
    await send(handle, "resolve", agent="vera", resolution="refunded after two approvals")
    await handle.result()
    return handle


async def charge_retried_under_a_new_key(
    env: WorkflowEnvironment, running: RunningWorker, boxes: Sandboxes
) -> WorkflowHandle[Any, IncidentState]:
    """A refund of a charge, claimed, refused by the provider; retried under a new key after the ledger lookup."""
    await boxes.set_payment_faults(reject=True)
    try:
        handle = await start_incident(
            running,
            category="deferred_payment",
            refund={"amount": "900.00", "currency": "RUB", "charge": "ch_history_retry"},
            customer_locale=True,
        )
        await until(handle, _refund_status("failed"))
    finally:
        await boxes.set_payment_faults(reject=False)
    await send(handle, "retry_refund", agent="boris")
    await until(handle, _refund_status("paid"))
    await send(handle, "resolve", agent="boris", resolution="refunded to the new card")
    await handle.result()
    return handle


async def charge_refunded_elsewhere(
    env: WorkflowEnvironment, running: RunningWorker, boxes: Sandboxes
) -> WorkflowHandle[Any, IncidentState]:
    """A second incident asks to refund a charge another incident refunds: refused, naming it; nothing paid."""
    refund = {"amount": "500.00", "currency": "RUB", "charge": "ch_history_twice"}
    first = await start_incident(running, category="deferred_payment", refund=refund, customer_locale=True)
    await until(first, _refund_status("paid"))
    handle = await start_incident(
        running, category="deferred_payment", customer_id="43", refund=refund, customer_locale=True
    )
    await until(handle, _refund_status("refused"))
    await send(handle, "resolve", agent="ann", resolution="refunded under the other ticket")
    await handle.result()
    return handle


async def refused_for_its_own_policy(
    env: WorkflowEnvironment, running: RunningWorker, boxes: Sandboxes
) -> WorkflowHandle[Any, IncidentState]:
    """A client starts an incident with a policy of its own making: the run fails at once, opening nothing."""
    policy = default_policy().model_copy(update={"refund_approval_limits": {1: Decimal("99999999.00")}})
    input = IncidentInput(ticket_id=new_ticket_id(), request=open_request(), policy=policy)
    handle: WorkflowHandle[Any, IncidentState] = await running.client.start_workflow(
        WORKFLOW_TYPE, input, task_queue=running.task_queue, result_type=IncidentState, **start_options(input)
    )
    with contextlib.suppress(WorkflowFailureError):
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
    "line_one_refund_within_limit": line_one_refund_within_limit,
    "four_eyes_refund": four_eyes_refund,
    "charge_retried_under_a_new_key": charge_retried_under_a_new_key,
    "charge_refunded_elsewhere": charge_refunded_elsewhere,
    "refused_for_its_own_policy": refused_for_its_own_policy,
}
