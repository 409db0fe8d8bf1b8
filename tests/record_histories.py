"""Record the histories replayed by tests/unit/test_replay.py: `python -m tests.record_histories`.

Run it only when a lifecycle is added (`--only NAME` records just that one), or with `--tag NAME` after a
change guarded by `workflow.patched` (the old histories stay: they stand for incidents started before it).
Never re-record to paper over a replay failure (see docs/operating.md, "Changing workflow logic safely").
"""

from __future__ import annotations

import argparse
import asyncio
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio.client import WorkflowHandle, WorkflowHistory
from temporalio.testing import WorkflowEnvironment

from infra.exiting import exit_process
from starter.incidents import IncidentService
from starter.outages import OutageService
from tests.harness import (
    RunningWorker,
    running_worker,
    served_sandboxes,
)
from tests.helpers import open_request
from tests.lifecycles import LIFECYCLES
from tests.policies import fast_policy
from tests.time_skipping import time_skipping_environment
from workflows.domain.actions import Feedback, Resolve
from workflows.domain.areas import Area
from workflows.domain.inputs import intake_workflow_id
from workflows.domain.notice import OutageNotice
from workflows.domain.outage import DeclareOutage, PostUpdate, ResolveOutage, outage_board_id

HERE = Path(__file__).parent / "histories"


async def main(tag: str | None, only: list[str] | None = None) -> None:
    env = await time_skipping_environment()
    async with served_sandboxes() as boxes:
        for name, lifecycle in LIFECYCLES.items():
            if only and name not in only:
                continue
            async with running_worker(env.client, boxes) as running:
                handle = await lifecycle(env, running, boxes)
                store(await handle.fetch_history(), HERE, name, tag)
        if only:
            await env.shutdown()
            return
        async with running_worker(env.client, boxes) as running:
            intake = await intake_open_join_close(running)
            store(await intake.fetch_history(), HERE / "intake", "open_join_close", tag)
        async with running_worker(env.client, boxes) as running:
            intake, incident = await intake_join_refund_and_reopen(running)
            store(await intake.fetch_history(), HERE / "intake", "join_refund_reopen", tag)
            store(await incident.fetch_history(), HERE, "recontact_refund_reopen", tag)
        async with running_worker(env.client, boxes) as running:
            intake, outage = await intake_opens_linked(env, running)
            store(await intake.fetch_history(), HERE / "intake", "opens_linked", tag)
            store(await outage.fetch_history(), HERE / "outage", "declared_updated_resolved", tag)
        async with running_worker(env.client, boxes) as running:
            works = await planned_works_told(env, running)
            store(await works.fetch_history(), HERE / "outage", "planned_works_told", tag)
    await env.shutdown()


def store(history: WorkflowHistory, folder: Path, name: str, tag: str | None) -> None:
    path = folder / (f"{name}.{tag}.json" if tag else f"{name}.json")
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(json.loads(history.to_json()), indent=1) + "\n")
    print(f"{name}: {len(history.events)} events -> {path}")


async def intake_open_join_close(running: RunningWorker) -> WorkflowHandle[Any, Any]:
    """An intake's whole life: an open that creates, a repeat of its request id, a recontact, the close."""
    service = IncidentService(running.client, policy=fast_policy(), task_queue=running.task_queue)
    first = await service.open(open_request(customer_id="cust-intake", request_id="crm-1"))
    await service.open(open_request(customer_id="cust-intake", request_id="crm-1"))
    await service.open(open_request(customer_id="cust-intake", description="calling again"))
    await service.act(first.ticket_id, Resolve(agent="ann", resolution="done"))
    intake = running.client.get_workflow_handle(intake_workflow_id("cust-intake", first.state.category))
    await intake.result()
    return intake


async def intake_join_refund_and_reopen(
    running: RunningWorker,
) -> tuple[WorkflowHandle[Any, Any], WorkflowHandle[Any, Any]]:
    """A joined request that brings a refund and a new contact, then the customer back after the resolution."""
    policy = fast_policy(line_timeouts={"1": "1h", "2": "1h"}, callback_after="1h")
    service = IncidentService(running.client, policy=policy, task_queue=running.task_queue)
    first = await service.open(open_request(customer_id="cust-rejoin"))
    refund = {"amount": "700.00", "currency": "RUB"}
    await service.open(open_request(customer_id="cust-rejoin", description="charged 700", refund=refund))
    await service.act(first.ticket_id, Resolve(agent="ann", resolution="port reset"))
    await service.open(open_request(customer_id="cust-rejoin", description="down again"))
    await service.act(first.ticket_id, Resolve(agent="ann", resolution="line replaced"))
    await service.act(first.ticket_id, Feedback(score=5))
    incident = running.client.get_workflow_handle(first.ticket_id)
    await incident.result()
    intake = running.client.get_workflow_handle(intake_workflow_id("cust-rejoin", first.state.category))
    await intake.result()
    return intake, incident


async def intake_opens_linked(
    env: WorkflowEnvironment, running: RunningWorker
) -> tuple[WorkflowHandle[Any, Any], WorkflowHandle[Any, Any]]:
    """Issue 18: a major incident declared, updated and resolved; an open in its area linked by the intake.

    This server has no batch operations, so the major incident's fan-outs fail (recorded, and paged)."""
    outages = OutageService(running.client, task_queue=running.task_queue)
    now = await env.get_current_time()
    declared = await outages.declare(
        DeclareOutage(
            area=Area(region="moscow", city="khimki"),
            categories=("connection_lost",),
            summary="A cable was cut in Khimki.",
            owner="boris",
            declared_by="boris",
            expected_fix_by=now + timedelta(hours=6),
        )
    )
    board = running.client.get_workflow_handle(outage_board_id(running.task_queue))
    for _ in range(200):
        if await board.query("notices", result_type=list[OutageNotice]):
            break
        await asyncio.sleep(0.05)
    service = IncidentService(running.client, policy=fast_policy(), task_queue=running.task_queue)
    opened = await service.open(
        open_request(customer_id="cust-outage", area={"region": "moscow", "city": "khimki", "segment": "n-7"})
    )
    assert opened.state.outage is not None, "the intake should have linked it"
    await outages.act(declared.outage_id, PostUpdate(by="boris", news="Splicing now."))
    await outages.act(declared.outage_id, ResolveOutage(by="boris", resolution="Spliced."))
    await service.act(opened.ticket_id, Resolve(agent="boris", resolution="spliced with the area"))
    await service.act(opened.ticket_id, Feedback(score=5))
    outage = running.client.get_workflow_handle(declared.outage_id)
    await env.sleep(timedelta(minutes=2))  # its second sweep, a minute after the resolution
    await outage.result()
    intake = running.client.get_workflow_handle(intake_workflow_id("cust-outage", opened.state.category))
    await intake.result()
    await board.terminate(reason="recorded")
    return intake, outage


async def planned_works_told(env: WorkflowEnvironment, running: RunningWorker) -> WorkflowHandle[Any, Any]:
    """Planned works declared two days ahead: their notices a day and an hour before, at the start and at the end.

    This server cannot list the area's incidents, so each notice fails at once (recorded): what replays is the
    works' own timers and the notices they scheduled."""
    outages = OutageService(running.client, task_queue=running.task_queue)
    start = await env.get_current_time() + timedelta(days=2)
    declared = await outages.declare(
        DeclareOutage(
            kind="planned_works",
            area=Area(region="moscow", city="khimki"),
            categories=(),
            summary="Night works on the Khimki exchange.",
            owner="boris",
            declared_by="boris",
            started_at=start,
            expected_fix_by=start + timedelta(hours=2),
        )
    )
    works = running.client.get_workflow_handle(declared.outage_id)
    await env.sleep(timedelta(days=2, hours=2, minutes=3))
    await works.result()
    await running.client.get_workflow_handle(outage_board_id(running.task_queue)).terminate(reason="recorded")
    return works


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tag", help="suffix for histories recorded after a patched change, e.g. announce-ack")
    parser.add_argument("--only", nargs="+", choices=sorted(LIFECYCLES), help="record only these lifecycles")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.tag, arguments.only))
    exit_process(0)
