"""The incident workflow on the real dev server (SQLite file, real timers) with a real worker."""

from __future__ import annotations

import asyncio

from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from infra.connection import data_converter
from tests.harness import Sandboxes, running_worker
from tests.helpers import event_types, events_of, send, start_incident, until
from tests.policies import fast_policy
from workflows.incident_workflow import IncidentWorkflow


async def test_a_critical_lifecycle_on_the_dev_server_ends_closed_and_replays(
    dev_env: WorkflowEnvironment, sandboxes: Sandboxes
):
    async with running_worker(dev_env.client, sandboxes) as running:
        handle = await start_incident(
            running,
            policy=fast_policy(),
            category="payment_not_refunded",
            refund={"amount": "250.00", "currency": "EUR"},
        )
        state = await until(handle, lambda s: s.line == 2, within=30)
        assert state.refund is not None and state.refund.status == "paid"
        assert state.sla_breaches == ["acknowledge", "line_1"]
        await send(handle, "acknowledge", agent="boris")
        await send(handle, "resolve", agent="boris", resolution="refund confirmed")
        await until(handle, lambda s: s.awaiting == "feedback", within=30)
        await send(handle, "feedback", score=4, comment="ok now")
        result = await asyncio.wait_for(handle.result(), 30)

    assert result.status == "closed"
    assert result.compensation is not None and result.compensation.status == "granted"
    kinds = event_types(result)
    for expected in (
        "refund_succeeded",
        "escalated",
        "resolved",
        "compensation_granted",
        "feedback_received",
        "closed",
    ):
        assert expected in kinds
    ledger = await sandboxes.ledger(reference=result.ticket_id)
    assert sorted((e["kind"], e["amount"], e["currency"]) for e in ledger) == [
        ("credit", "10.00", "RUB"),
        ("refund", "250.00", "EUR"),
    ]
    customer = [n["kind"] for n in await sandboxes.notifications(result.ticket_id, "customer")]
    assert customer[0] == "ticket_opened" and "feedback_request" in customer
    assert len(events_of(result, "escalated")) == 1

    history = await handle.fetch_history()
    replay = await Replayer(workflows=[IncidentWorkflow], data_converter=data_converter()).replay_workflow(
        history, raise_on_replay_failure=False
    )
    assert replay.replay_failure is None
    print(f"dev-server critical lifecycle: {len(history.events)} history events")
