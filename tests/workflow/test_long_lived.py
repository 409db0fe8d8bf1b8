"""An incident with thousands of notes stays within Temporal's history limits by continuing as new,
carrying its state, the tail of its event log, its clocks' deadlines and anything in flight (money,
undelivered notifications), within a size budget well below Temporal's payload limit. What only the
dev server shows is in tests/stack/test_long_lived_on_the_dev_server.py."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta

from pydantic_core import to_json
from temporalio.testing import WorkflowEnvironment

from tests.harness import RunningWorker, Sandboxes
from tests.helpers import (
    HOUR,
    LONG_NOTE,
    MINUTE,
    carried_inputs,
    events_of,
    open_request,
    send,
    start_incident,
    state_of,
    until,
)
from workflows.domain.actions import AddNote
from workflows.domain.incident import Incident, Notify
from workflows.domain.inputs import IncidentInput
from workflows.domain.models import IncidentState
from workflows.domain.policy import default_policy
from workflows.incident_workflow import KEEP_DOMAIN_EVENTS, NOTIFY_GIVE_UP_AFTER

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


# --- without a server: what a continue-as-new carries ---


def carried_size(incident: Incident) -> int:
    request = open_request(description=LONG_NOTE[:4_000])
    carried = IncidentInput(ticket_id=incident.t, request=request, policy=incident.policy, carried=incident.state)
    return len(to_json(carried))


def test_compaction_by_size_keeps_the_newest_tail_within_the_budget_and_counts_the_rest():
    incident, _ = Incident.open("INC-TEST01", open_request(description=LONG_NOTE[:4_000]), default_policy(), T0)
    for i in range(400):
        incident.act(AddNote(agent="ann", text=LONG_NOTE[:4_000]), T0 + i * MINUTE)
    assert carried_size(incident) > 2 * 1024 * 1024, "uncompacted, it would be refused by the server"
    total = incident.state.event_seq
    dropped = incident.compact(KEEP_DOMAIN_EVENTS, max_bytes=200_000)
    state = incident.state
    assert len(to_json(state)) <= 200_000 < len(to_json(state)) + len(to_json(state.events[0])) + 1
    assert dropped == state.events_compacted and dropped + len(state.events) == total
    assert [e.seq for e in state.events] == list(range(dropped + 1, total + 1)), "the newest tail, in order"
    assert state.compacted_counts["note_added"] + len(events_of(state, "note_added")) == 400 == state.notes
    assert sum(state.compacted_counts.values()) == dropped


def test_undelivered_notifications_are_carried_resent_with_their_ids_and_give_up_time_and_bounded():
    incident, effects = Incident.open("INC-TEST01", open_request(), default_policy(), T0)
    give_up_at = T0 + NOTIFY_GIVE_UP_AFTER
    in_flight = [n for n in effects if isinstance(n, Notify)]
    in_flight = [Notify(n.recipient, n.kind, n.message, n.event_seq, give_up_at) for n in in_flight]
    assert incident.carry_undelivered(in_flight, 64 * 1024, T0 + HOUR) == 0
    carried = IncidentState.model_validate_json(to_json(incident.state))
    resumed = Incident(carried, default_policy()).resume_effects()
    assert resumed == in_flight, "the same ids (event seqs), messages and give-up time"
    assert carried.undelivered == [], "the next run tracks them itself from here"

    many = [Notify("line_3", "renotify", "x" * 500, seq, give_up_at) for seq in range(100, 400)]
    given_up = incident.carry_undelivered(many, 16 * 1024, T0 + HOUR)
    kept = [n.event_seq for n in incident.state.undelivered]
    assert len(to_json(incident.state.undelivered)) <= 16 * 1024 and given_up == 300 - len(kept) > 0
    assert kept == list(range(400 - len(kept), 400)), "the newest stay, the oldest are given up on"
    failed = events_of(incident.state, "notification_failed")[-1]
    assert failed.data["notifications"] == list(range(100, 400 - len(kept)))


# --- on the time-skipping server ---


async def test_an_incident_continues_as_new_and_escalates_on_time_while_its_notifications_cannot_be_delivered(
    time_env: WorkflowEnvironment, skipping: RunningWorker, sandboxes: Sandboxes
):
    await sandboxes.set_notify_faults(down_for_seconds=3_600)  # real seconds: down until the test says
    # The retries of the undelivered notifications alone (durable timers) fill 50 events within minutes.
    handle = await start_incident(skipping, history_limit=50)
    opened = await state_of(handle)
    await asyncio.gather(*(send(handle, "add_note", agent="ann", text=f"note {i}") for i in range(5)))
    await until(handle, lambda s: s.notes == 5)
    # In steps: each skip waits (in real time) for the workflow tasks it causes, local retries included.
    for _ in range(13):
        await time_env.sleep(5 * MINUTE)
    state = await until(handle, lambda s: s.line == 2, within=30)
    escalated = events_of(state, "escalated")[0]
    # Within seconds, not hours: a workflow task may be held a few real seconds by local notification retries.
    assert abs((escalated.at - opened.opened_at) - HOUR) <= timedelta(seconds=10), "escalated on time"
    carried = [IncidentInput.model_validate_json(data).carried for data in await carried_inputs(handle)]
    assert carried, "the run continued as new while its notifications were failing"
    assert any(state and state.undelivered for state in carried), "undelivered notifications were carried"
    assert await sandboxes.notifications(ticket_id=handle.id) == [], "the endpoint was down all along"

    await sandboxes.set_notify_faults()  # the endpoint is back
    notified = [e for e in state.events if e.type in ("customer_notified", "line_notified")]
    assert {"ticket_opened", "new_incident", "acknowledge_overdue", "escalated"} <= {e.data["kind"] for e in notified}
    sent = {f"{state.ticket_id}:{e.seq}" for e in notified}
    for _ in range(60):  # the retries wait on durable timers of up to 5 minutes: let workflow time pass
        delivered = [n["id"] for n in await sandboxes.notifications(ticket_id=handle.id)]
        if set(delivered) >= sent:
            break
        await time_env.sleep(MINUTE)
    assert Counter(delivered) == Counter(sent), "every notification delivered, once each"
    state = await state_of(handle)
    assert events_of(state, "notification_failed") == [], "none given up on"
    assert state.notes == 5 and state.compacted_counts.get("note_added", 0) + len(events_of(state, "note_added")) == 5
