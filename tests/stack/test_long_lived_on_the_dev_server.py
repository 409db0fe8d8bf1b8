"""Long-lived incidents on the dev server, for what the time-skipping server cannot show: it enforces
the payload limits and reports a history's size, it does not hold its clock for an abandoned activity,
and it settles a continue-as-new that races signals (tests/workflow/test_long_lived.py has the rest)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from tests.harness import Sandboxes, running_worker
from tests.helpers import (
    HOUR,
    LONG_NOTE,
    carried_inputs,
    events_of,
    open_request,
    send,
    start_incident,
    state_of,
    until,
)
from workflows.domain.inputs import IncidentInput
from workflows.domain.models import IncidentState
from workflows.domain.policy import default_policy
from workflows.domain.policy_catalogue import reference_of
from workflows.domain.tickets import new_ticket_id
from workflows.incident_start import start_options
from workflows.incident_workflow import CARRIED_INPUT_BUDGET, KEEP_DOMAIN_EVENTS, IncidentWorkflow


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


async def test_thousands_of_notes_racing_continues_as_new_are_all_kept_with_the_incident(
    dev_env: WorkflowEnvironment, sandboxes: Sandboxes
):
    # On the dev server: notes keep arriving while a run continues as new, which the real server settles
    # by refusing the continue-as-new and handing the worker the new signals; the time-skipping server
    # can lose such a continue-as-new and hold its clock forever.
    notes = 1_500
    async with running_worker(dev_env.client, sandboxes) as running:
        handle = await start_incident(running, history_limit=400)
        opened = await state_of(handle)
        for batch in range(0, notes, 100):
            await asyncio.gather(
                *(send(handle, "add_note", agent="ann", text=f"note {i}") for i in range(batch, batch + 100))
            )
        await send(handle, "customer_contact", channel="phone", text="any news?")
        state = await until(handle, lambda s: s.recontacts == 1 and s.events_compacted > 0, within=60)
        history = await handle.fetch_history()
        carried = [IncidentInput.model_validate_json(data).carried for data in await carried_inputs(handle)]
    assert len(carried) >= 2, f"{len(carried) + 1} runs"
    assert all(c is not None and len(c.events) <= KEEP_DOMAIN_EVENTS for c in carried), "each run carried a tail"
    assert state.notes == notes, "no note was lost across the runs"
    assert state.events_compacted > 0 and state.events_compacted + len(state.events) == state.event_seq
    assert state.compacted_counts.get("note_added", 0) + len(events_of(state, "note_added")) == notes
    assert state.events[-1].seq == state.event_seq, "sequence numbers carry on"
    assert state.ticket_id == opened.ticket_id and state.opened_at == opened.opened_at
    assert state.sla_deadline == opened.sla_deadline == opened.opened_at + HOUR, "the line-1 SLA carried over"
    assert len(history.events) < 400 + 150, "the current run stays short"


def long_note(i: int) -> str:
    return f"{i}: {LONG_NOTE}"[:4_000]


def has_notes(count: int) -> Callable[[IncidentState], bool]:
    return lambda state: state.notes == count


async def send_notes(handle: WorkflowHandle[Any, Any], first: int, count: int) -> None:
    await asyncio.gather(
        *(send(handle, "add_note", agent="ann", text=long_note(i)) for i in range(first, first + count))
    )


async def test_hundreds_of_long_notes_continue_as_new_with_a_carried_input_under_the_budget(
    dev_env: WorkflowEnvironment, sandboxes: Sandboxes
):
    # On the dev server: it enforces the payload limits, and the time-skipping server can lose a
    # continue-as-new that races signals from the earlier run's history (which is measured here).
    notes = 300
    async with running_worker(dev_env.client, sandboxes) as running:
        handle = await start_incident(running, history_limit=300, description=LONG_NOTE[:4_000])
        for batch in range(0, notes, 50):
            await send_notes(handle, batch, 50)
        state = await until(handle, lambda s: s.notes == notes and s.events_compacted > 0, within=60)
        sizes = [len(data) for data in await carried_inputs(handle)]
    assert sizes and max(sizes) <= CARRIED_INPUT_BUDGET, f"carried inputs of {sizes} bytes"
    assert state.compacted_counts["note_added"] + len(events_of(state, "note_added")) == notes
    assert state.events_compacted + len(state.events) == state.event_seq, "every event is counted or kept"
    assert state.events[-1].seq == state.event_seq, "the newest events are the ones kept"


async def test_a_history_filled_by_long_notes_continues_as_new_by_its_size(
    dev_env: WorkflowEnvironment, sandboxes: Sandboxes
):
    # On the dev server, which reports the history's size; it suggests continuing only from 4 MiB.
    input = IncidentInput(
        ticket_id=new_ticket_id(),
        request=open_request(),
        policy_ref=reference_of(default_policy()),
        history_size_limit=256 * 1024,
    )
    async with running_worker(dev_env.client, sandboxes) as running:
        handle = await running.client.start_workflow(
            IncidentWorkflow.run, input, task_queue=running.task_queue, **start_options(input, policy=default_policy())
        )
        running.started.append(handle)
        first = running.client.get_workflow_handle(handle.id, run_id=handle.result_run_id)
        # 40 notes of 8 KB (320 KB), then one at a time: a workflow task's size leaves out the signals
        # that arrived while the task before it ran, so the size shows one task late.
        await send_notes(handle, 0, 40)
        sent = 40
        while (
            not (await first.fetch_history())
            .events[-1]
            .HasField("workflow_execution_continued_as_new_event_attributes")
        ):
            assert sent < 50, "it never continued as new"
            await send_notes(handle, sent, 1)
            sent += 1
            await until(handle, has_notes(sent))
        history = await first.fetch_history()
        state = await until(handle, has_notes(sent))
    assert len(history.events) < 200 < input.history_limit, "by its size, long before its length"
    assert state.compacted_counts.get("note_added", 0) + len(events_of(state, "note_added")) == sent
