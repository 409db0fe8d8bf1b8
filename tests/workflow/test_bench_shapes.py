"""The bench's raw-Temporal shapes ask the server for what they claim: a comparison is only as honest as its
baseline, and the burst probe counts a woken shape by its history's length."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from bench.bare import BareEscalation, BareTimer, noop
from bench.measures import BARE_TIMER_WOKEN_EVENTS

AFTER_WAKING = {
    "page": EventType.EVENT_TYPE_MARKER_RECORDED,
    "upsert": EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES,
    "timer": EventType.EVENT_TYPE_TIMER_STARTED,
}


@pytest.mark.parametrize("commands", [[], ["page", "upsert", "timer"], ["upsert"], ["timer"], ["page"]])
async def test_a_woken_shape_writes_its_commands_and_nothing_more(time_env: WorkflowEnvironment, commands: list[str]):
    queue = f"shapes-{uuid.uuid4()}"
    async with Worker(
        time_env.client,
        task_queue=queue,
        workflows=[BareTimer, BareEscalation],
        activities=[noop],
        workflow_runner=SandboxedWorkflowRunner(
            restrictions=SandboxRestrictions.default.with_passthrough_modules("bench")
        ),
    ):
        due = (await time_env.get_current_time()) + timedelta(hours=1)
        workflow, arguments = (
            ("BareEscalation", [due.isoformat(), commands]) if commands else ("BareTimer", [due.isoformat()])
        )
        handle = await time_env.client.start_workflow(
            workflow, args=arguments, id=f"shape-{uuid.uuid4()}", task_queue=queue
        )
        await time_env.sleep(timedelta(hours=1, minutes=1))
        assert await handle.query("woke") is not None
        events = [event.event_type for event in (await handle.fetch_history()).events]

    assert len(events) == BARE_TIMER_WOKEN_EVENTS + len(commands)
    fired = events.index(EventType.EVENT_TYPE_TIMER_FIRED)
    written_on_waking = events[fired + 4 :]  # after the woken task's scheduled, started, completed
    assert sorted(written_on_waking) == sorted(AFTER_WAKING[command] for command in commands)
