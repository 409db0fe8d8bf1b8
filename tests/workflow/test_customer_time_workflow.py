"""Customer time on the time-skipping server (issue 17): the SLA pauses while the customer owes an answer,
silence is reminded and then closed, a late reply reopens through the intake, line 2's own first-response
clock, and self-help that closes an incident without an agent. Real HTTP sandboxes receive every notice."""

from __future__ import annotations

import contextlib
from datetime import timedelta

import pytest
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from activities.notifications import NotificationActivities
from starter.incidents import IncidentService
from tests.harness import RunningWorker, Sandboxes, worker_settings
from tests.helpers import (
    HOUR,
    MINUTE,
    events_of,
    open_request,
    production_replayer,
    send,
    settled,
    start_incident,
    state_of,
)
from workflows.domain.inputs import IncidentInput
from workflows.domain.policy import default_policy
from workflows.domain.tickets import new_ticket_id
from workflows.incident_start import start_options
from workflows.incident_workflow import ACTIONS_SINCE, IncidentWorkflow

DAY = timedelta(days=1)
SECOND = timedelta(seconds=1)
QUESTION = "Which lights on the router are on?"


async def test_waiting_pauses_the_sla_and_the_reply_resumes_it_with_the_remaining_time_intact(
    time_env: WorkflowEnvironment, skipping: RunningWorker, sandboxes: Sandboxes
):
    handle = await start_incident(skipping)  # critical: line 1 has an hour
    await time_env.sleep(10 * MINUTE)
    await send(handle, "ask_customer", agent="ann", question=QUESTION)
    await time_env.sleep(DAY)
    state = await settled(handle)
    assert (state.status, state.line, state.sla_breaches) == ("waiting_on_customer", 1, []), "nothing ran out"
    question = [n for n in await sandboxes.notifications(state.ticket_id, "customer") if n["kind"] == "question"]
    assert len(question) == 1 and QUESTION in question[0]["message"] and state.ticket_id in question[0]["message"]

    await send(handle, "customer_reply", channel="chat", text="only the power light")
    state = await settled(handle)
    (asked,) = events_of(state, "customer_asked")
    (replied,) = events_of(state, "customer_replied")
    waited = replied.at - asked.at
    original_due = state.opened_at + HOUR
    assert state.status == "open" and state.sla_deadline == original_due + waited

    await time_env.sleep(original_due + waited - replied.at - MINUTE)
    assert (await settled(handle)).line == 1
    await time_env.sleep(2 * MINUTE)
    state = await settled(handle)
    (escalated,) = events_of(state, "escalated")
    assert state.line == 2 and abs(escalated.at - (original_due + waited)) <= SECOND
    line_1 = [n["kind"] for n in await sandboxes.notifications(state.ticket_id, "line_1")]
    assert "customer_replied" in line_1


async def test_silence_reminds_then_closes_and_a_later_call_reopens_it_through_the_intake(
    time_env: WorkflowEnvironment, skipping: RunningWorker, sandboxes: Sandboxes
):
    service = IncidentService(skipping.client, policy=default_policy(), task_queue=skipping.task_queue)
    opened = await service.open(open_request(customer_id="silent-1", category="tariff_change"))
    ticket = opened.ticket_id
    handle = skipping.client.get_workflow_handle(ticket)
    skipping.started.append(handle)
    await send(handle, "ask_customer", agent="ann", question="Which tariff do you want?")
    await time_env.sleep(2 * DAY + MINUTE)
    kinds = [n["kind"] for n in await sandboxes.notifications(ticket, "customer")]
    assert kinds == ["ticket_opened", "question", "reply_reminder"]
    await time_env.sleep(5 * DAY)
    state = await settled(handle)
    assert (state.status, state.closed_as) == ("closed", "no_reply")
    notices = await sandboxes.notifications(ticket, "customer")
    # Opened through the intake as the service opens it: in the policy's default language, Russian.
    assert notices[-1]["kind"] == "closed_no_reply" and "Ответьте до" in notices[-1]["message"]

    # A day later the customer calls about the same problem: the intake joins the call, and it reopens.
    await time_env.sleep(DAY)
    again = await service.open(open_request(customer_id="silent-1", category="tariff_change", description="night one"))
    assert (again.outcome, again.ticket_id) == ("joined", ticket)
    state = await settled(handle)
    assert (state.status, state.reopen_count, state.closed_as) == ("open", 1, None)
    assert [e.type.value for e in state.events if e.type in ("customer_replied", "reopened")] == [
        "customer_replied",
        "reopened",
    ]


async def test_after_the_reopen_window_a_closed_for_silence_incident_ends(
    time_env: WorkflowEnvironment, skipping: RunningWorker
):
    handle = await start_incident(skipping, category="ui_typo")
    await send(handle, "ask_customer", agent="ann", question="Which page shows the typo?")
    await time_env.sleep(7 * DAY + MINUTE)
    assert (await state_of(handle)).status == "closed"
    await time_env.sleep(3 * DAY)
    result = await handle.result()
    assert (result.status, result.closed_as, result.next_deadline) == ("closed", "no_reply", None)


async def test_self_help_closes_without_an_agent(
    time_env: WorkflowEnvironment, skipping: RunningWorker, sandboxes: Sandboxes
):
    handle = await start_incident(skipping, category="connection_lost")
    opening = await settled(handle)
    (notice,) = await sandboxes.notifications(opening.ticket_id, "customer")
    assert opening.ticket_id in notice["message"] and "1. Restart the router" in notice["message"]
    await time_env.sleep(5 * MINUTE)
    await send(handle, "self_help_failed", channel="app")
    assert (await settled(handle)).sla_deadline == opening.sla_deadline, "self-help never stops the clock"
    await send(handle, "self_help_worked", channel="app", comment="the second restart did it")
    result = await handle.result()
    assert (result.status, result.closed_as, result.assignee, result.acknowledged_at) == (
        "closed",
        "self_resolved",
        None,
        None,
    )
    customer = [n["kind"] for n in await sandboxes.notifications(result.ticket_id, "customer")]
    assert customer == ["ticket_opened", "self_resolved"]
    line = [n["kind"] for n in await sandboxes.notifications(result.ticket_id, "line_1")]
    assert line == ["new_incident", "self_resolved"], "line 1 hears that nobody needs to take it"


async def test_line_two_has_its_own_first_response_clock(
    time_env: WorkflowEnvironment, skipping: RunningWorker, sandboxes: Sandboxes
):
    handle = await start_incident(skipping)
    await send(handle, "acknowledge", agent="ann")
    await time_env.sleep(HOUR + MINUTE)  # line 1's hour runs out: line 2, unowned
    assert (await settled(handle)).line == 2
    await time_env.sleep(30 * MINUTE)
    state = await settled(handle)
    assert state.sla_breaches == ["line_1", "acknowledge_line_2"]
    line_2 = [n["kind"] for n in await sandboxes.notifications(state.ticket_id, "line_2")]
    assert line_2 == ["escalated", "acknowledge_overdue"]


async def test_an_incident_that_refused_the_new_actions_as_unknown_replays_so(
    time_env: WorkflowEnvironment, sandboxes: Sandboxes, monkeypatch: pytest.MonkeyPatch
):
    """A rolling deploy: a worker of before issue 17 refused `ask_customer` as unknown; today's code replays that
    history the same way (no `customer-time` marker, so the action stays unknown to that incident)."""
    monkeypatch.setattr(IncidentWorkflow, "_knows", lambda self, action_type: action_type not in ACTIONS_SINCE)
    # ... and before issue 15: it took the policy its client sent.
    monkeypatch.setattr(IncidentWorkflow, "_policy_given", lambda self, input: input.policy)
    settings = worker_settings(sandboxes)
    notifications = NotificationActivities(sandboxes.http, settings.notify_url, settings.signing_secret())
    async with Worker(
        time_env.client,
        task_queue="before-customer-time",
        workflows=[IncidentWorkflow],
        activities=[notifications.send_notifications],
        workflow_runner=UnsandboxedWorkflowRunner(),  # the patched method is this module's, not a sandbox copy
    ):
        input = IncidentInput(ticket_id=new_ticket_id(), request=open_request(), policy=default_policy())
        handle = await time_env.client.start_workflow(
            IncidentWorkflow.run, input, task_queue="before-customer-time", **start_options(input)
        )
        await send(handle, "ask_customer", agent="ann", question=QUESTION)
        await send(handle, "resolve", agent="ann", resolution="fixed")
        await send(handle, "feedback", score=5)  # skips the wait for the callback: refused, then it waits
        state = await settled(handle)
        with contextlib.suppress(RPCError):  # the feedback may have closed it already (it did, on main too)
            await handle.terminate(reason="test finished")
    refused = events_of(state, "action_rejected")
    assert refused[0].data == {"action": "ask_customer", "reason": "unknown action 'ask_customer'"}
    monkeypatch.undo()
    history = await handle.fetch_history()
    replayed = await production_replayer(IncidentWorkflow).replay_workflow(history, raise_on_replay_failure=False)
    assert replayed.replay_failure is None, replayed.replay_failure
