"""`incidents audit` makes vanished requests visible, and its Schedule alerts through the webhook."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import timedelta

from temporalio.testing import WorkflowEnvironment

from starter.audit import find_vanished, install_schedule, render
from tests.conftest import Sandboxes, running_worker
from tests.helpers import event_types, open_request, start_incident, until
from tests.policies import fast_policy
from workflows.domain.inputs import IncidentInput
from workflows.domain.tickets import new_ticket_id


async def findings_for(dev_env: WorkflowEnvironment, tickets: set[str], grace: timedelta, expected: int):
    found: list = []
    for _ in range(100):  # visibility is eventually consistent
        found = [f for f in await find_vanished(dev_env.client, grace) if f.ticket_id in tickets]
        if len(found) >= expected:
            break
        await asyncio.sleep(0.1)
    return found


async def test_audit_lists_terminated_and_stalled_incidents_not_healthy_ones(
    dev_env: WorkflowEnvironment, sandboxes: Sandboxes
):
    policy = fast_policy(line_timeouts={"1": "1s", "2": "2s"}, renotify_every="1h")
    async with running_worker(dev_env.client, sandboxes) as running:
        healthy = await start_incident(running, policy=fast_policy(line_timeouts={"1": "1h", "2": "1h"}))
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
    problems = {f.ticket_id: (f.execution_status, f.problem) for f in found}
    assert problems[killed.id][0] == "terminated" and "ended without being closed" in problems[killed.id][1]
    assert problems[stalled.id][0] == "running" and "past its SLA deadline" in problems[stalled.id][1]
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
        await asyncio.sleep(1)
        schedule_id = await install_schedule(dev_env.client, timedelta(hours=1), task_queue=running.task_queue)
        handle = dev_env.client.get_schedule_handle(schedule_id)
        try:
            await handle.trigger()
            alerts: list = []
            for _ in range(200):
                alerts = [a for a in await sandboxes.notifications(recipient="sre") if victim.id in a["message"]]
                if alerts:
                    break
                await asyncio.sleep(0.1)
            assert alerts and alerts[0]["kind"] == "audit_alert"
            description = await handle.describe()
            assert description.schedule.spec.intervals[0].every == timedelta(hours=1)
        finally:
            await handle.delete()


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
        IncidentInput(ticket_id=ticket, request=open_request(), policy=fast_policy()),
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
