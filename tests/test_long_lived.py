"""An incident with thousands of notes stays within Temporal's history limits by continuing as new,
carrying its state, the tail of its event log, its clocks' deadlines and any money in flight."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio.testing import WorkflowEnvironment

from tests.conftest import RunningWorker, Sandboxes, running_worker
from tests.helpers import HOUR, MINUTE, events_of, send, start_incident, state_of, until
from workflows.incident_workflow import KEEP_DOMAIN_EVENTS

NOTES = 1_500


async def test_thousands_of_notes_continue_as_new_and_keep_the_incident(
    time_env: WorkflowEnvironment, skipping: RunningWorker
):
    handle = await start_incident(skipping, history_limit=400)
    opened = await state_of(handle)
    for batch in range(0, NOTES, 100):
        await asyncio.gather(
            *(send(handle, "add_note", agent="ann", text=f"note {i}") for i in range(batch, batch + 100))
        )
    await send(handle, "customer_contact", channel="phone", text="any news?")
    # (The time-skipping server may answer for the run that just continued as new; wait for the new one.)
    state = await until(handle, lambda s: s.recontacts == 1 and s.events_compacted > 0, within=60)
    assert state.notes == NOTES, "no note was lost across the runs"
    assert state.events_compacted > 0 and len(state.events) <= KEEP_DOMAIN_EVENTS + 50
    tail_notes = len(events_of(state, "note_added"))
    assert state.compacted_counts.get("note_added", 0) + tail_notes == NOTES
    assert state.events[-1].seq == state.event_seq, "sequence numbers carry on"
    assert state.ticket_id == opened.ticket_id and state.opened_at == opened.opened_at
    history = await handle.fetch_history()
    assert len(history.events) < 400 + 150, "the current run stays short"

    # The deadlines carried over: the line-1 SLA still fires one hour after opening, not after the last run began.
    await time_env.sleep(HOUR + MINUTE)
    state = await until(handle, lambda s: s.line == 2)
    escalated = events_of(state, "escalated")[0]
    assert abs((escalated.at - opened.opened_at) - HOUR) <= timedelta(seconds=2)


async def test_a_refund_in_flight_is_resumed_after_continue_as_new_and_paid_once(
    dev_env: WorkflowEnvironment, sandboxes: Sandboxes
):
    # On the dev server: the time-skipping server keeps an abandoned activity's lock on its clock.
    await sandboxes.set_payment_faults(fail_first=1_000_000)
    async with running_worker(dev_env.client, sandboxes) as running:
        handle = await start_incident(
            running, history_limit=120, category="payment_not_refunded", refund={"amount": "42.00", "currency": "RUB"}
        )
        for batch in range(0, 200, 50):
            await asyncio.gather(
                *(send(handle, "add_note", agent="ann", text=f"n{i}") for i in range(batch, batch + 50))
            )
        state = await until(handle, lambda s: s.notes == 200, within=60)
        assert state.refund is not None and state.refund.status == "requested"
        started = (await handle.fetch_history()).events[0].workflow_execution_started_event_attributes
        assert started.continued_execution_run_id, "the refund is still retrying in a later run"
        await sandboxes.set_payment_faults(fail_first=0)
        state = await until(handle, lambda s: s.refund is not None and s.refund.status == "paid", within=60)
    assert len(await sandboxes.ledger(reference=state.ticket_id)) == 1
    assert len(events_of(state, "refund_succeeded")) == 1
