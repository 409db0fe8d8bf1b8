"""Domain metrics on the worker's Prometheus endpoint, counted once even when a history is replayed."""

from __future__ import annotations

import asyncio

from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from infra.connection import data_converter
from infra.telemetry import metrics_runtime
from tests.harness import Sandboxes, running_worker
from tests.helpers import prometheus_sample as sample
from tests.helpers import send, start_incident, until
from tests.policies import fast_policy
from tests.sandbox_servers import free_port
from workflows.metrics import HISTOGRAM_BUCKETS


async def test_a_lifecycle_is_counted_once_on_the_prometheus_endpoint(
    dev_env: WorkflowEnvironment, sandboxes: Sandboxes
):
    port = free_port()
    client = await Client.connect(
        dev_env.client.service_client.config.target_host,
        data_converter=data_converter(),
        runtime=metrics_runtime(port, "127.0.0.1", HISTOGRAM_BUCKETS),
    )
    policy = fast_policy(line_timeouts={"1": "2s", "2": "1h"}, customer_updates_every="1h")
    async with running_worker(client, sandboxes) as running:
        task_queue = running.task_queue
        handle = await start_incident(
            running, policy=policy, category="payment_not_refunded", refund={"amount": "99.00", "currency": "RUB"}
        )
        await until(handle, lambda s: s.line == 2 and s.refund is not None and s.refund.status == "paid", within=30)
        await send(handle, "acknowledge", agent="boris")
        await send(handle, "add_note", agent="", text="empty agent: refused")
        await send(handle, "resolve", agent="boris", resolution="refunded and fixed")
        await until(handle, lambda s: s.awaiting == "feedback", within=30)
        await send(handle, "feedback", score=5)
        await asyncio.wait_for(handle.result(), 30)
        # Another incident is half-way when its worker goes away.
        replayed = await start_incident(running, policy=policy, category="tariff_change")
        await send(replayed, "acknowledge", agent="ann")
        await until(replayed, lambda s: s.assignee == "ann")
        running.started.clear()
    async with running_worker(client, sandboxes, task_queue=task_queue):
        # The new worker replays the whole history before it applies the note.
        await send(replayed, "add_note", agent="ann", text="after the worker restart")
        await until(replayed, lambda s: s.notes == 1)
        await replayed.terminate(reason="test finished")
        text = (await sandboxes.http.get(f"http://127.0.0.1:{port}/metrics")).text

    assert sample(text, "incidents_opened", severity="critical") == 1
    assert sample(text, "incidents_opened", severity="routine") == 1, "the replay did not count the opening again"
    assert sample(text, "incidents_escalations", from_line="1", to_line="2", reason="timeout") == 1
    assert sample(text, "incidents_sla_breaches", clock="acknowledge", severity="critical") == 1
    assert sample(text, "incidents_sla_breaches", clock="line_1", severity="critical") == 1
    assert sample(text, "incidents_refunds", outcome="requested") == 1
    assert sample(text, "incidents_refunds", outcome="succeeded") == 1
    assert sample(text, "incidents_compensations", outcome="granted") == 1
    assert sample(text, "incidents_callbacks", severity="critical") == 1
    assert sample(text, "incidents_feedback", score="5") == 1
    assert sample(text, "incidents_closed", severity="critical") == 1
    assert sample(text, "incidents_rejected_actions", action="add_note") == 1
    assert sample(text, "incidents_time_to_resolve_count", severity="critical") == 1
    # Buckets sized for SLAs (seconds to a week), not the SDK's default ones that stop at 10 s.
    resolved_within = {
        le: sample(text, "incidents_time_to_resolve_bucket", severity="critical", le=le)
        for le in ("1000", "60000", "3600000", "604800000")
    }
    assert resolved_within == {"1000": 0, "60000": 1, "3600000": 1, "604800000": 1}, "resolved after the 2s line-1 SLA"
    assert sample(text, "incidents_time_to_acknowledge_count", severity="routine") == 1
    assert "temporal_workflow_completed" in text or "temporal_request" in text, "the SDK's own metrics are there too"


async def test_self_resolved_incidents_are_counted_beside_the_closed_ones(
    dev_env: WorkflowEnvironment, sandboxes: Sandboxes
):
    """The share of tickets that needed no agent: incidents_self_resolved over incidents_closed (seed 004)."""
    port = free_port()
    client = await Client.connect(
        dev_env.client.service_client.config.target_host,
        data_converter=data_converter(),
        runtime=metrics_runtime(port, "127.0.0.1", HISTOGRAM_BUCKETS),
    )
    async with running_worker(client, sandboxes) as running:
        helped = await start_incident(running, policy=fast_policy(), category="connection_lost")
        await send(helped, "self_help_failed", channel="app")
        await send(helped, "self_help_worked", channel="app")
        fixed = await start_incident(running, policy=fast_policy(), category="tariff_change")
        await send(fixed, "ask_customer", agent="ann", question="Night or day tariff?")
        await send(fixed, "customer_reply", channel="chat", text="night")
        await send(fixed, "resolve", agent="ann", resolution="night tariff on")
        for handle in (helped, fixed):
            await asyncio.wait_for(handle.result(), 30)
        text = (await sandboxes.http.get(f"http://127.0.0.1:{port}/metrics")).text

    assert sample(text, "incidents_closed", severity="critical", closed_as="self_resolved") == 1
    assert sample(text, "incidents_closed", severity="routine", closed_as="resolved") == 1
    assert sample(text, "incidents_self_resolved", category="connection_lost") == 1
    assert sample(text, "incidents_self_help_answers", worked="false") == 1
    assert sample(text, "incidents_self_help_answers", worked="true") == 1
    assert sample(text, "incidents_customers_asked", severity="routine") == 1
    assert sample(text, "incidents_customer_replies", severity="routine") == 1
