"""Record the continue-as-new history replayed by tests/unit/test_replay.py:
`python -m tests.record_long_lived_histories [--tag NAME]` (the same rules as tests/record_histories.py).

A run that continues as new with a notification still to send: stored as recorded before the
`carry-undelivered-notifications` patch (the run waited for it) and after (the run carried it).
Recorded on the dev server: the time-skipping server loses a continue-as-new that races a signal
(the old run's history ends on a started workflow task, without the continued-as-new event).

Core sometimes hands a local activity's result to the workflow in a workflow task of its own, after
the one that recorded its marker; on replay the result comes with the marker, at a shorter history
length, so a run that continued as new in such a task does not replay (the decision read the history
length). That shape is useless here, and the recording is tried again until the run continued in the
task of the signal that passed the limit.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
from typing import Any

from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from infra.binaries import temporal_cli
from infra.connection import data_converter
from infra.exiting import exit_process
from tests.harness import RunningWorker, running_worker, served_sandboxes
from tests.helpers import send, start_incident, until
from tests.record_histories import HERE, store
from workflows import search_attributes
from workflows.domain.models import IncidentState


async def continued_with_a_notification_to_send(running: RunningWorker) -> WorkflowHandle[Any, IncidentState]:
    """Every recontact notifies the line, so the one that passes the history limit leaves a notification
    to send as the run continues as new. Returns the first run, the one that continued."""
    for _ in range(10):
        handle = await start_incident(running, category="tariff_change", history_limit=50)
        first = running.client.get_workflow_handle(handle.id, run_id=handle.result_run_id)
        for count in range(1, 40):
            await send(handle, "customer_contact", channel="phone", text=f"call {count}")
            await until(handle, recontacted(count))
            events = (await first.fetch_history()).events
            if events[-1].HasField("workflow_execution_continued_as_new_event_attributes"):
                started = max(i for i, e in enumerate(events) if e.HasField("workflow_task_started_event_attributes"))
                if events[started - 2].HasField("workflow_execution_signaled_event_attributes"):
                    return first
                break  # continued in a task of its own (see above): try again
    raise AssertionError("the incident never continued as new in the task of a signal")


def recontacted(count: int) -> Callable[[IncidentState], bool]:
    return lambda state: state.recontacts == count


async def main(tag: str | None) -> None:
    env = await WorkflowEnvironment.start_local(
        data_converter=data_converter(),
        dev_server_existing_path=temporal_cli(),
        search_attributes=list(search_attributes.ALL_KEYS),
    )
    async with served_sandboxes() as boxes, running_worker(env.client, boxes) as running:
        first = await continued_with_a_notification_to_send(running)
        store(await first.fetch_history(), HERE, "continued_with_a_notification_to_send", tag)
    await env.shutdown()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tag", help="suffix for histories recorded after a patched change")
    asyncio.run(main(parser.parse_args().tag))
    exit_process(0)
