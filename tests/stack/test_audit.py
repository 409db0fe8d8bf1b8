"""`incidents audit` makes vanished requests visible, and its Schedule alerts through the webhook."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from temporalio import workflow
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import (
    Interceptor,
    Replayer,
    StartLocalActivityInput,
    UnsandboxedWorkflowRunner,
    Worker,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
    WorkflowOutboundInterceptor,
)

from activities.audit_findings import ClosedTally, Finding, Kind, count_closed, find_vanished, render
from infra.connection import data_converter
from infra.devconfig import load_dev_config
from starter.audit import install_schedule
from starter.dev_stack import DevStack
from tests.harness import Sandboxes, running_worker
from tests.helpers import event_types, open_request, send, start_incident, state_of, until
from tests.policies import fast_policy
from tests.running_stack import write_config
from workers.worker import workflow_runner
from workflows import search_attributes
from workflows.contracts import SEND_NOTIFICATIONS
from workflows.domain.incident import Incident
from workflows.domain.inputs import WORKFLOW_TYPE, IncidentInput
from workflows.domain.policy import default_policy
from workflows.domain.policy_catalogue import reference_of
from workflows.domain.tickets import new_ticket_id
from workflows.features import PUBLISH_NOTIFICATIONS_FAILED
from workflows.incident_workflow import IncidentWorkflow


async def findings_for(dev_env: WorkflowEnvironment, tickets: set[str], grace: timedelta, expected: int):
    found: list = []
    for _ in range(100):  # visibility is eventually consistent
        found = [f for f in await find_vanished(dev_env.client, grace) if f.ticket_id in tickets]
        if len(found) >= expected:
            break
        await asyncio.sleep(0.1)
    return found


async def audit_until(
    dev_env: WorkflowEnvironment,
    wanted: Callable[[list[Finding]], bool],
    grace: timedelta,
    now: Callable[[], datetime] | None = None,
    within: float = 40.0,
) -> list[Finding]:
    """Run the audit until what it reports satisfies `wanted` (visibility and the server's flags lag)."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        found = await find_vanished(dev_env.client, grace, now() if now else None)
        if wanted(found):
            return found
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"the audit never reported what was expected; last:\n{render(found)}")
        await asyncio.sleep(0.25)


def of(found: list[Finding], ticket: str) -> dict[Kind, Finding]:
    return {f.kind: f for f in found if f.ticket_id == ticket}


async def test_audit_lists_terminated_and_stalled_incidents_not_healthy_ones(
    dev_env: WorkflowEnvironment, sandboxes: Sandboxes
):
    policy = fast_policy(line_timeouts={"1": "1s", "2": "2s"}, renotify_every="1h")
    async with running_worker(dev_env.client, sandboxes) as running:
        far = {"acknowledge_within": "1h", "renotify_every": "1h", "customer_updates_every": "1h"}
        healthy = await start_incident(running, policy=fast_policy(line_timeouts={"1": "1h", "2": "1h"}, **far))
        killed = await start_incident(running, policy=policy)
        stalled = await start_incident(running, policy=fast_policy(line_timeouts={"1": "2s", "2": "1h"}))
        for handle in (healthy, killed, stalled):
            await until(handle, lambda s: "line_notified" in event_types(s))
        await killed.terminate(reason="operator mistake")
        running.started.clear()  # leave the others running when this worker stops
    # The worker is gone now: the stalled incident's line-1 deadline passes with nobody to escalate it.
    await asyncio.sleep(3)
    tickets = {healthy.id, killed.id, stalled.id}
    found = await findings_for(dev_env, tickets, timedelta(seconds=0), expected=2)
    problems = {f.ticket_id: (f.execution_status, f.kind, f.problem) for f in found}
    assert problems[killed.id][:2] == ("terminated", Kind.ended_unclosed)
    assert "ended terminated without being closed" in problems[killed.id][2]
    assert problems[stalled.id][:2] == ("running", Kind.overdue) and "next deadline" in problems[stalled.id][2]
    assert healthy.id not in problems
    text = render(found)
    assert killed.id in text and stalled.id in text
    for handle in (healthy, stalled):
        await handle.terminate(reason="test finished")


async def test_the_audit_schedule_alerts_through_the_notification_webhook(
    dev_env: WorkflowEnvironment, sandboxes: Sandboxes
):
    async with running_worker(dev_env.client, sandboxes) as running:
        victim = await start_incident(running)
        await until(victim, lambda s: "line_notified" in event_types(s))
        await victim.terminate(reason="simulated loss")
        ticket = new_ticket_id()
        nobody = f"nobody-polls-{uuid.uuid4().hex[:8]}"
        lost = await dev_env.client.start_workflow(
            WORKFLOW_TYPE,
            IncidentInput(ticket_id=ticket, request=open_request(), policy_ref=reference_of(fast_policy())),
            id=ticket,
            task_queue=nobody,
        )
        await asyncio.sleep(1)
        schedule_id = await install_schedule(
            dev_env.client, timedelta(hours=1), grace=timedelta(0), task_queue=running.task_queue
        )
        handle = dev_env.client.get_schedule_handle(schedule_id)
        try:
            await handle.trigger()
            alerts: list = []
            for _ in range(200):
                alerts = [
                    a
                    for a in await sandboxes.notifications(recipient="sre")
                    if victim.id in a["message"] and lost.id in a["message"]
                ]
                if alerts:
                    break
                await asyncio.sleep(0.1)
            assert alerts and alerts[0]["kind"] == "audit_alert"
            message = alerts[0]["message"]
            assert "no worker has ever picked up" in message and f"Run a worker on task queue '{nobody}'" in message
            description = await handle.describe()
            assert description.schedule.spec.intervals[0].every == timedelta(hours=1)
        finally:
            await handle.delete()
            await lost.terminate(reason="test finished")


async def test_audit_command_exit_codes(dev_env: WorkflowEnvironment):
    address = dev_env.client.service_client.config.target_host
    env = {**os.environ, "TEMPORAL_ADDRESS": address}
    bad = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "starter.audit", "--grace", "soon"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "--grace" in bad.stderr and "not a duration" in bad.stderr
    ticket = new_ticket_id()
    lost = await dev_env.client.start_workflow(
        "IncidentWorkflow",
        IncidentInput(ticket_id=ticket, request=open_request(), policy_ref=reference_of(fast_policy())),
        id=ticket,
        task_queue="nobody-listens-here",
    )
    await lost.terminate(reason="lost before any worker saw it")
    await asyncio.sleep(1)
    report = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "starter.audit", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    findings = {f["ticket_id"]: f for f in json.loads(report.stdout)}
    assert report.returncode == 1
    assert findings[lost.id]["execution_status"] == "terminated"


async def test_audit_finds_incidents_past_their_next_deadline_in_any_status_not_only_the_sla(
    dev_env: WorkflowEnvironment, sandboxes: Sandboxes
):
    """The line SLA is one clock of several: a missed acknowledgement or callback is as lost."""
    slow = {"line_timeouts": {"1": "4h", "2": "4h"}, "renotify_every": "4h", "customer_updates_every": "4h"}
    async with running_worker(dev_env.client, sandboxes) as running:
        unacknowledged = await start_incident(running, policy=fast_policy(**slow, acknowledge_within="10m"))
        resolved = await start_incident(running, policy=fast_policy(**slow, callback_after="20m"))
        healthy = await start_incident(running, policy=fast_policy(**slow, acknowledge_within="3h"))
        for handle in (unacknowledged, resolved, healthy):
            await until(handle, lambda s: "line_notified" in event_types(s))
        await send(resolved, "resolve", agent="ann", resolution="replaced the router")
        resolved_state = await until(resolved, lambda s: "callback_scheduled" in event_types(s))
        open_state = await state_of(unacknowledged)
        running.started.clear()  # the worker goes away; the incidents stay open
    # What the audit sees half an hour later with no worker: the acknowledgement and the callback are long
    # due, no line SLA (4h, or none once resolved) is, and the healthy incident's deadlines are hours away.
    assert resolved_state.status == "resolved" and resolved_state.sla_deadline is None
    assert open_state.sla_deadline is not None and open_state.next_deadline == open_state.acknowledge_deadline
    later = datetime.now(UTC) + timedelta(minutes=30)
    grace = timedelta(minutes=5)
    tickets = {unacknowledged.id, resolved.id, healthy.id}
    found = await audit_until(
        dev_env, lambda f: {x.ticket_id for x in f} >= {unacknowledged.id, resolved.id}, grace, lambda: later
    )
    found = [f for f in found if f.ticket_id in tickets]
    assert healthy.id not in {f.ticket_id for f in found}
    for handle, state in ((unacknowledged, open_state), (resolved, resolved_state)):
        finding = of(found, handle.id)[Kind.overdue]
        assert finding.next_deadline == state.next_deadline
        assert finding.incident_status == state.status.value
        assert "passed" in finding.problem and "no worker serves it" in finding.problem
        assert "task queue 'incidents'" in finding.action or running.task_queue in finding.action
    for handle in (unacknowledged, resolved, healthy):
        await handle.terminate(reason="test finished")


@workflow.defn(name=WORKFLOW_TYPE)
class BuggyIncidentWorkflow:
    """An incident build with a bug: an exception that is not an ApplicationError fails the workflow task."""

    @workflow.run
    async def run(self, input: IncidentInput) -> None:
        raise KeyError("severity")


async def test_audit_finds_a_workflow_task_that_keeps_failing(dev_env: WorkflowEnvironment):
    task_queue = f"buggy-{uuid.uuid4().hex[:8]}"
    ticket = new_ticket_id()
    input = IncidentInput(ticket_id=ticket, request=open_request(), policy_ref=reference_of(fast_policy()))
    # Unsandboxed: the sandbox would re-import this whole test module just to run the fake.
    async with Worker(
        dev_env.client,
        task_queue=task_queue,
        workflows=[BuggyIncidentWorkflow],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        handle = await dev_env.client.start_workflow(WORKFLOW_TYPE, input, id=ticket, task_queue=task_queue)
        # A worker took it and failed: that is not "no worker picked it up", even before the server flags it.
        early = await audit_until(dev_env, lambda f: bool(of(f, ticket)), timedelta(0))
        assert set(of(early, ticket)) == {Kind.task_failing}
        # The dev server flags it after two failed attempts (its second try comes ~10 s after the first).
        found = await audit_until(
            dev_env, lambda f: "WorkflowWorkerUnhandledFailure" in str(of(f, ticket)), timedelta(minutes=5)
        )
    finding = of(found, ticket)[Kind.task_failing]
    assert finding.execution_status == "running"
    assert "keeps failing" in finding.problem and "WorkflowWorkerUnhandledFailure" in finding.problem
    assert "Do not terminate" in finding.action and "Task Failures" in finding.action
    assert set(of(found, ticket)) == {Kind.task_failing}
    assert ticket in render(found)
    await handle.terminate(reason="test finished")


async def test_audit_finds_direct_starts_that_no_worker_picked_up(dev_env: WorkflowEnvironment, sandboxes: Sandboxes):
    nobody = f"nobody-polls-{uuid.uuid4().hex[:8]}"
    ticket = new_ticket_id()
    lost = await dev_env.client.start_workflow(
        WORKFLOW_TYPE,
        IncidentInput(ticket_id=ticket, request=open_request(), policy_ref=reference_of(fast_policy())),
        id=ticket,
        task_queue=nobody,
    )
    async with running_worker(dev_env.client, sandboxes) as running:
        served = await start_incident(running, policy=fast_policy(line_timeouts={"1": "1h", "2": "1h"}))
        await until(served, lambda s: "line_notified" in event_types(s))
        found = await audit_until(dev_env, lambda f: Kind.never_picked_up in of(f, lost.id), timedelta(0))
    assert of(found, served.id) == {}
    finding = of(found, lost.id)[Kind.never_picked_up]
    assert finding.execution_status == "running" and finding.task_queue == nobody
    assert "no worker has ever picked up" in finding.problem and nobody in finding.problem
    assert f"Run a worker on task queue '{nobody}'" in finding.action
    # Younger than the grace: not (yet) a finding.
    assert of(await find_vanished(dev_env.client, timedelta(hours=1)), lost.id) == {}
    await lost.terminate(reason="test finished")


# The give-up time of a notification is 7 days; this worker gives up after a few seconds instead, the rest
# (the sink answering 503, Temporal's retries, the timeout, the workflow's handling of it) is the real thing.
NOTIFY_GIVE_UP_IN_TESTS = timedelta(seconds=3)


class _ShortNotificationGiveUp(WorkflowOutboundInterceptor):
    def start_local_activity(self, input: StartLocalActivityInput) -> workflow.ActivityHandle[Any]:
        if input.activity == SEND_NOTIFICATIONS:
            input = dataclasses.replace(input, schedule_to_close_timeout=NOTIFY_GIVE_UP_IN_TESTS)
        return super().start_local_activity(input)


class _ShortNotificationGiveUpInbound(WorkflowInboundInterceptor):
    def init(self, outbound: WorkflowOutboundInterceptor) -> None:
        super().init(_ShortNotificationGiveUp(outbound))


class ShortNotificationGiveUp(Interceptor):
    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor] | None:
        return _ShortNotificationGiveUpInbound


async def test_audit_finds_notifications_that_gave_up(dev_env: WorkflowEnvironment, sandboxes: Sandboxes):
    await sandboxes.set_notify_faults(down_for_seconds=3600)
    quiet = fast_policy(line_timeouts={"1": "1h", "2": "1h"}, renotify_every="1h", customer_updates_every="1h")
    async with running_worker(dev_env.client, sandboxes, interceptors=[ShortNotificationGiveUp()]) as running:
        handle = await start_incident(running, policy=quiet)
        state = await until(handle, lambda s: "notification_failed" in event_types(s))
        told_nobody = state.notifications_failed
        gave_up = next(e for e in state.events if e.type == "notification_failed")
        found = await audit_until(
            dev_env, lambda f: Kind.notifications_failed in of(f, handle.id), timedelta(minutes=5)
        )
        history = await handle.fetch_history()
        await handle.terminate(reason="test finished")
    assert told_nobody == 2  # the customer's ticket number and line 1's page
    assert gave_up.data["reason"].startswith("gave up: schedule-to-close timeout passed")
    finding = of(found, handle.id)[Kind.notifications_failed]
    assert finding.problem.startswith("2 notification(s) gave up")
    assert f"incidents history {handle.id}" in finding.action
    assert await sandboxes.notifications(ticket_id=handle.id) == []
    # The new upsert is behind its patch, and the history replays on the current code.
    markers = [e for e in history.events if e.HasField("marker_recorded_event_attributes")]
    assert any(PUBLISH_NOTIFICATIONS_FAILED.encode() in m.SerializeToString() for m in markers)
    replayer = Replayer(
        workflows=[IncidentWorkflow], data_converter=data_converter(), workflow_runner=workflow_runner()
    )
    assert (await replayer.replay_workflow(history, raise_on_replay_failure=False)).replay_failure is None


def test_a_notification_that_gave_up_is_counted_and_published():
    incident, _ = Incident.open("INC-TEST01", open_request(), default_policy(), datetime(2026, 1, 1, tzinfo=UTC))
    assert search_attributes.values_of(incident.state)[search_attributes.NOTIFICATIONS_FAILED.name] == 0
    incident.notifications_failed([1, 2], "gave up: schedule-to-close timeout passed", datetime(2026, 1, 8, tzinfo=UTC))
    incident.notifications_failed([5], "rejected: 422", datetime(2026, 1, 9, tzinfo=UTC))
    assert incident.state.notifications_failed == 3
    assert search_attributes.values_of(incident.state)[search_attributes.NOTIFICATIONS_FAILED.name] == 3
    assert event_types(incident.state).count("notification_failed") == 2


def test_the_dev_stack_server_flags_failing_workflow_tasks(tmp_path: Path):
    """`make run`'s server sets TemporalReportedProblems like the tests' server does (production: docs/operating.md)."""
    stack = DevStack(load_dev_config(write_config(tmp_path)))
    server = next(child for child in stack.plan() if child.name == "temporal")
    flag = server.argv.index("--dynamic-config-value")
    assert server.argv[flag + 1] == "system.numConsecutiveWorkflowTaskProblemsToTriggerSearchAttribute=2"


async def test_the_audit_counts_the_closed_incidents_that_needed_no_agent(
    dev_env: WorkflowEnvironment, sandboxes: Sandboxes
):
    """Seed 004, level 1: the share of tickets the customer's self-help closed without an agent."""
    before = await count_closed(dev_env.client)
    async with running_worker(dev_env.client, sandboxes) as running:
        helped = await start_incident(running, policy=fast_policy(), category="connection_lost")
        await send(helped, "self_help_worked", channel="app")
        fixed = await start_incident(running, policy=fast_policy(), category="tariff_change")
        await send(fixed, "resolve", agent="ann", resolution="night tariff on")
        for handle in (helped, fixed):
            await asyncio.wait_for(handle.result(), 30)
    after = before
    for _ in range(100):  # visibility is eventually consistent
        after = await count_closed(dev_env.client)
        if after.closed - before.closed >= 2 and after.self_resolved > before.self_resolved:
            break
        await asyncio.sleep(0.1)
    assert (after.closed - before.closed, after.self_resolved - before.self_resolved) == (2, 1)
    assert "needed no agent" in render([], after) and "closed or on time" in render([], after)
    tally = ClosedTally(closed=4, self_resolved=1)
    assert tally.describe() == "self-help: 1 of 4 closed incidents (25%) needed no agent (closed as self_resolved)"
