"""Record the histories bench/replay_probe.py replays: `python -m bench.record_replay_fixtures`.

On a dev server of its own, with an in-process worker of each kind: an incident opened as the bench's (4) and
(8) open theirs (straight, naming the timer policy, every opening feature) and waiting on line 1 (what a desk
read or query of an evicted incident replays), the same incident once its line-1 deadline has passed and it
escalated (what an evicted wake-up replays), a bare timer that woke (the bench's BareTimer), and a bare timer
that woke into an escalation's page, upsert and next timer (BareEscalation). Run it again
only when the probe should measure a newer opening: the stored histories stand for incidents already running.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from temporalio.client import WorkflowHandle
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from bench.bare import ESCALATION_COMMANDS, BareEscalation, BareTimer, noop
from bench.measures import TIMER_LINE_ONE, request, timer_policy
from infra.exiting import exit_process
from starter.incidents import IncidentService
from tests.harness import dev_server, running_worker, served_sandboxes
from tests.policies import known
from workflows.domain.inputs import IncidentInput
from workflows.domain.policy_catalogue import reference_of
from workflows.domain.tickets import new_ticket_id
from workflows.features import OPENING_FEATURES
from workflows.incident_start import start_options
from workflows.incident_workflow import IncidentWorkflow

FIXTURES = Path(__file__).parent / "replay_fixtures"
# The line-1 deadline falls this long after the opening: time for the first task before it.
DUE_AFTER = timedelta(seconds=4)


async def _until(handle: WorkflowHandle[Any, Any], event_kind: str, within: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        kinds = [event.WhichOneof("attributes") for event in (await handle.fetch_history()).events]
        if any(kind and kind.startswith(event_kind) for kind in kinds):
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{handle.id}: no {event_kind} after {within}s")
        await asyncio.sleep(0.2)


async def _settled(handle: WorkflowHandle[Any, Any]) -> None:
    """Until the history has stopped growing, its last workflow task completed (commands follow that event)."""
    pending = ("workflow_task_scheduled_event_attributes", "workflow_task_started_event_attributes")
    while True:
        events = (await handle.fetch_history()).events
        await asyncio.sleep(1.0)
        if events[-1].WhichOneof("attributes") not in pending and len((await handle.fetch_history()).events) == len(
            events
        ):
            return


def _store(history_json: str, name: str) -> None:
    FIXTURES.mkdir(exist_ok=True)
    path = FIXTURES / f"{name}.json"
    path.write_text(json.dumps(json.loads(history_json), indent=1) + "\n")
    print(f"  {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")


async def main() -> None:
    policy = known(timer_policy())
    with tempfile.TemporaryDirectory() as folder:
        async with dev_server(Path(folder) / "temporal.db") as env, served_sandboxes() as boxes:
            async with running_worker(env.client, boxes) as running:
                due = datetime.now(UTC) + DUE_AFTER
                input = IncidentInput(
                    ticket_id=new_ticket_id(),
                    request=request("replay-probe"),
                    policy_ref=reference_of(policy),
                    opened_at=due - TIMER_LINE_ONE,
                    customer_locale=True,
                    features=list(OPENING_FEATURES),
                )
                handle = await env.client.start_workflow(
                    IncidentWorkflow.run, input, task_queue=running.task_queue, **start_options(input, policy=policy)
                )
                running.started.append(handle)
                service = IncidentService(env.client, task_queue=running.task_queue)
                await service.state(handle.id, wait_for_start=True)
                await _settled(handle)
                _store((await handle.fetch_history()).to_json(), "incident_waiting")
                await _until(handle, "timer_fired")
                await _settled(handle)
                _store((await handle.fetch_history()).to_json(), "incident_escalated")

            queue = f"bare-{uuid.uuid4().hex[:8]}"
            runner = SandboxedWorkflowRunner(restrictions=SandboxRestrictions.default.with_passthrough_modules("bench"))
            async with Worker(
                env.client,
                task_queue=queue,
                workflows=[BareTimer, BareEscalation],
                activities=[noop],
                workflow_runner=runner,
            ):
                due_iso = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
                bare = await env.client.start_workflow(BareTimer.run, due_iso, id=queue, task_queue=queue)
                escalation = await env.client.start_workflow(
                    BareEscalation.run, args=[due_iso, list(ESCALATION_COMMANDS)], id=f"{queue}-e", task_queue=queue
                )
                woken: list[tuple[str, WorkflowHandle[Any, Any]]] = [
                    ("bare_timer_woke", bare),
                    ("bare_escalation_woke", escalation),
                ]
                for name, shape in woken:
                    await _until(shape, "timer_fired")
                    await _settled(shape)
                    _store((await shape.fetch_history()).to_json(), name)
                    await shape.terminate()


if __name__ == "__main__":
    argparse.ArgumentParser(description=__doc__).parse_args()
    asyncio.run(main())
    exit_process(0)
