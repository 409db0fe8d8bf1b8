"""Follow-through on the time-skipping server: reminders of idle work, the reopened incident's new fix
time deciding compensation, a failed credit settled through the HTTP API and the CLI, and an incident
that was running before the change switching on when first needed (and replaying)."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from temporalio import workflow
from temporalio.client import WorkflowHandle, WorkflowHistory
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner, Worker

from activities.notifications import NotificationActivities
from activities.payments import PaymentActivities
from infra.connection import data_converter
from starter.auth import Role
from starter.http_client import IncidentsHttpClient
from starter.incidents import IncidentService
from tests.harness import WEBHOOK_SECRET, RunningWorker, Sandboxes, running_worker
from tests.helpers import (
    HOUR,
    MINUTE,
    event_types,
    events_of,
    open_request,
    patch_ids,
    send,
    settled,
    start_incident,
    state_of,
    until,
)
from tests.served_api import served_api
from workers.worker import workflow_runner
from workflows.domain.actions import Resolve, SettleCompensation
from workflows.domain.incident import FOLLOW_THROUGH
from workflows.domain.inputs import WORKFLOW_TYPE, IncidentInput
from workflows.domain.models import IncidentState
from workflows.domain.policy import Policy, default_policy
from workflows.domain.tickets import new_ticket_id
from workflows.incident_start import start_options
from workflows.incident_workflow import IncidentWorkflow

ROOT = Path(__file__).resolve().parents[2]
DAY = timedelta(days=1)


async def reopened_after_an_on_time_fix(env: WorkflowEnvironment, running: RunningWorker, count: int) -> list[Any]:
    """Critical incidents fixed within the hour, then reopened by a bad score at the callback a day later."""
    handles = [await start_incident(running, category="speed_drop") for _ in range(count)]
    for handle in handles:
        await send(handle, "acknowledge", agent="ann")
        await send(handle, "resolve", agent="ann", resolution="port reset")
    await env.sleep(DAY + MINUTE)
    for handle in handles:
        await settled(handle)
        await send(handle, "feedback", score=1, comment="still slow")
    for handle in handles:
        state = await until(handle, lambda s: s.status == "open" and s.reopen_count == 1)
        assert state.compensation is None, "the first fix was on time"
    return handles


async def test_a_reopened_critical_incident_that_misses_its_new_fix_time_is_compensated(
    time_env: WorkflowEnvironment, skipping: RunningWorker, sandboxes: Sandboxes
):
    late, prompt = await reopened_after_an_on_time_fix(time_env, skipping, 2)
    state = await state_of(late)
    reopened_at = events_of(state, "reopened")[0].at
    assert state.expected_fix_by == reopened_at + 4 * HOUR, "a new promise: the SLA of line 2, where it reopened"
    told = [n for n in await sandboxes.notifications(state.ticket_id, "customer") if n["kind"] == "reopened"]
    assert len(told) == 1 and "expect to fix it by" in told[0]["message"]

    await send(prompt, "resolve", agent="boris", resolution="line card replaced")
    await time_env.sleep(4 * HOUR + 5 * MINUTE)  # past the reopened incident's new fix time
    await send(late, "resolve", agent="duty", resolution="line card replaced")
    late_state = await until(late, lambda s: s.compensation is not None and s.compensation.status == "granted")
    prompt_state = await settled(prompt)

    assert late_state.resolved_at is not None and late_state.resolved_at > late_state.expected_fix_by
    credits = [e for e in await sandboxes.ledger(reference=late_state.ticket_id) if e["kind"] == "credit"]
    assert [(c["amount"], c["currency"]) for c in credits] == [("10.00", "RUB")]
    assert prompt_state.compensation is None, "fixed within the reopened incident's fix time"
    assert await sandboxes.ledger(reference=prompt_state.ticket_id) == []


async def test_an_acknowledged_incident_on_the_last_line_is_reminded_until_there_is_news(
    time_env: WorkflowEnvironment, skipping: RunningWorker, sandboxes: Sandboxes
):
    handle = await start_incident(skipping, category="tariff_change")
    await send(handle, "escalate", agent="ann", reason="billing rights")
    await send(handle, "escalate", agent="boris", reason="needs engineering")
    await send(handle, "acknowledge", agent="duty")
    state = await settled(handle)
    acknowledged_at = events_of(state, "acknowledged")[0].at
    assert state.line == 3 and state.next_deadline == acknowledged_at + 4 * HOUR
    await time_env.sleep(4 * HOUR + 8 * HOUR + MINUTE)
    state = await settled(handle)
    sent = [n for n in await sandboxes.notifications(state.ticket_id, "line_3") if n["kind"] == "owned_reminder"]
    assert len(sent) == 2 and "duty" in sent[0]["message"] and "add_note" in sent[0]["message"]
    assert state.next_deadline is not None
    assert abs(state.next_deadline - (acknowledged_at + 20 * HOUR)) < timedelta(seconds=2), "4h, 8h, then 8h"
    assert state.status == "open"


async def test_a_failed_credit_is_settled_through_the_http_api_and_the_cli_and_then_the_incident_closes(
    time_env: WorkflowEnvironment, skipping: RunningWorker, sandboxes: Sandboxes, tmp_path: Path
):
    await sandboxes.set_payment_faults(reject=True)
    by_api, by_cli = [await start_incident(skipping, category="connection_lost") for _ in range(2)]
    await time_env.sleep(HOUR + MINUTE)  # line 1 missed its hour: a late fix is credited
    service = IncidentService(skipping.client, policy=default_policy(), task_queue=skipping.task_queue)
    async with (
        served_api(service, tmp_path) as api,
        IncidentsHttpClient(api.url, api.tokens[Role.agent]) as agent,
    ):
        for handle in (by_api, by_cli):
            await agent.act(handle.id, Resolve(agent="ann", resolution="fixed late"))
            await until(handle, lambda s: s.compensation is not None and s.compensation.status == "failed")
        tasks = await sandboxes.notifications(by_api.id, "line_2")
        assert any(t["kind"] == "compensation_task" and "settle_compensation" in t["message"] for t in tasks)

        # The API acts as the token's person: the dev agent token is ann's.
        state = await agent.act(by_api.id, SettleCompensation(agent="ann", reference="manual credit 12"))
        assert state.compensation is not None and state.compensation.status == "settled"
        again = await api.http.post(
            f"{api.url}/incidents/{by_api.id}/compensation/settle",
            json={"agent": "ann", "reference": "manual credit 12"},
            headers=api.auth(Role.agent),
        )
        assert again.status_code == 409 and "only a failed compensation" in again.json()["detail"]

        await time_env.sleep(DAY + MINUTE)  # the satisfaction callback
        for handle in (by_api, by_cli):
            await settled(handle)
            # A signal: the API reads a closed incident back through describe(), which the SDK cannot
            # decode from the time-skipping server (its Datetime search attributes).
            await send(handle, "feedback", score=5)
        assert (await by_api.result()).status == "closed"
        held = await settled(by_cli)
        assert held.status == "resolved" and held.close_pending, "the unpaid credit holds the closing"
        assert held.next_deadline is not None

        # The CLI acts through the API as the agent whose token it holds (INCIDENTS_TOKEN_FILE): ann.
        token_file = tmp_path / "agent-token"
        token_file.write_text(api.tokens[Role.agent])
        result = await _cli(
            time_env,
            "compensation",
            "settle",
            by_cli.id,
            "--reference",
            "cash 7",
            INCIDENTS_API_URL=api.url,
            INCIDENTS_TOKEN_FILE=str(token_file),
        )
        assert result[0] == 0 and "settle compensation recorded" in result[1], result
        closed = await by_cli.result()
    assert closed.status == "closed" and closed.compensation is not None
    assert closed.compensation.reference == "cash 7"
    settled_event = events_of(closed, "compensation_settled")[0]
    assert (settled_event.by, settled_event.data["reference"]) == ("ann", "cash 7")
    assert event_types(closed)[-1] == "closed"


async def _cli(env: WorkflowEnvironment, *args: str, **settings: str) -> tuple[int, str, str]:
    """The `incidents` CLI in its own process, against the test's server (without blocking the worker)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "starter.cli",
        *args,
        cwd=ROOT,
        env={
            **_plain_env(),
            "TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
            "TEMPORAL_NAMESPACE": env.client.namespace,
            **settings,
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    return process.returncode or 0, out.decode(), err.decode()


def _plain_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("TEMPORAL_")}


# --- an incident that was running before the change ---


@workflow.defn(name=WORKFLOW_TYPE)
class IncidentBeforeTheChange(IncidentWorkflow):
    """The workflow as it ran before follow-through existed: the same code with its switch left out."""

    @workflow.init
    def __init__(self, input: IncidentInput) -> None:
        super().__init__(input)

    @workflow.run
    async def run(self, input: IncidentInput) -> IncidentState:
        return await super().run(input)

    def _follow_through_when_first_needed(self) -> None:
        pass

    def _policy_given(self, input: IncidentInput) -> Policy | None:
        return input.policy  # clients sent the policy itself then


async def start_as_before(running: RunningWorker, **overrides: Any) -> WorkflowHandle[Any, IncidentState]:
    """Started as clients started incidents then: with the policy itself in the input."""
    input = IncidentInput(ticket_id=new_ticket_id(), request=open_request(**overrides), policy=default_policy())
    handle = await running.client.start_workflow(
        WORKFLOW_TYPE, input, task_queue=running.task_queue, result_type=IncidentState, **start_options(input)
    )
    running.started.append(handle)
    return handle


async def test_an_incident_running_before_the_change_switches_on_when_first_needed_and_replays(
    time_env: WorkflowEnvironment, sandboxes: Sandboxes
):
    async with httpx.AsyncClient(timeout=10) as http:
        notifications = NotificationActivities(http, sandboxes.notify_url, WEBHOOK_SECRET.encode())
        payments = PaymentActivities(http, sandboxes.payments_url)
        before = Worker(
            time_env.client,
            task_queue=f"incidents-before-{uuid.uuid4().hex[:8]}",
            workflows=[IncidentBeforeTheChange],
            activities=[notifications.send_notifications, payments.make_payment],
            workflow_runner=UnsandboxedWorkflowRunner(),
            max_cached_workflows=0,  # no sticky queue left behind for the new worker's tasks and queries
        )
        old_queue = RunningWorker(time_env.client, before.task_queue, before)
        async with before:
            # Both open under the old code; one already waits, owned, on the last line.
            not_yet = await start_as_before(old_queue, category="tariff_change")
            already = await start_as_before(old_queue, category="tariff_change")
            await send(not_yet, "escalate", agent="ann", reason="billing rights")
            for step in ("billing rights", "needs engineering"):
                await send(already, "escalate", agent="ann", reason=step)
            await send(already, "acknowledge", agent="duty")
            assert (await settled(already)).next_deadline is None, "the old code leaves it waiting on nothing"
            await settled(not_yet)
        # The deploy: the new code takes over the same task queue and replays both histories.
        async with running_worker(time_env.client, sandboxes, task_queue=old_queue.task_queue) as deployed:
            deployed.started += [not_yet, already]
            await send(not_yet, "escalate", agent="boris", reason="needs engineering")
            await send(not_yet, "acknowledge", agent="duty")
            switched = await settled(not_yet)
            assert switched.line == 3 and switched.next_deadline is not None, "switched on when first needed"
            await send(already, "add_note", agent="duty", text="still on it")
            kept = await settled(already)
            assert kept.next_deadline is None, "it met the rules before the change: it carries on as it ran"
            histories = [await h.fetch_history() for h in (not_yet, already)]
    assert FOLLOW_THROUGH in patch_ids(histories[0])
    assert FOLLOW_THROUGH not in patch_ids(histories[1])
    replayer = Replayer(
        workflows=[IncidentWorkflow], data_converter=data_converter(), workflow_runner=workflow_runner()
    )
    for history in histories:
        assert (await replayer.replay_workflow(history, raise_on_replay_failure=False)).replay_failure is None


async def test_the_stored_histories_show_the_switch_at_the_start_and_replay():
    """Recorded before the change: no marker, the reopen keeps the first promise. After: both changed."""
    folder = ROOT / "tests" / "histories"
    before = WorkflowHistory.from_json("before", (folder / "rejected_actions_and_reopen.json").read_text())
    after = WorkflowHistory.from_json("after", (folder / "rejected_actions_and_reopen.follow-through.json").read_text())

    def reopens(history: WorkflowHistory) -> list[dict[str, Any]]:
        completed = history.events[-1].workflow_execution_completed_event_attributes
        state = data_converter().payload_converter.from_payload(completed.result.payloads[0], IncidentState)
        return [e.data for e in state.events if e.type == "reopened"]

    assert "follow-through" not in patch_ids(before) and "expected_fix_by" not in reopens(before)[0]
    assert "follow-through" in patch_ids(after) and "expected_fix_by" in reopens(after)[0]
    replayer = Replayer(
        workflows=[IncidentWorkflow], data_converter=data_converter(), workflow_runner=workflow_runner()
    )
    for history in (before, after):
        assert (await replayer.replay_workflow(history, raise_on_replay_failure=False)).replay_failure is None
