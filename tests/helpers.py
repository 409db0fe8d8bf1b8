from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import DescribeWorkflowExecutionRequest
from temporalio.client import WorkflowHandle, WorkflowHistory, WorkflowQueryFailedError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from infra.connection import data_converter
from tests.harness import RunningWorker
from tests.policies import known
from workers.worker import workflow_runner
from workflows.domain.inputs import IncidentInput
from workflows.domain.models import IncidentState, OpenIncident
from workflows.domain.policy import Policy, default_policy
from workflows.domain.policy_catalogue import reference_of
from workflows.domain.tickets import new_ticket_id
from workflows.features import OPENING_FEATURES
from workflows.incident_start import start_options
from workflows.incident_workflow import IncidentWorkflow


def open_request(**overrides: Any) -> OpenIncident:
    fields: dict[str, Any] = {
        "customer_id": "42",
        "category": "connection_lost",
        "description": "No internet since this morning",
        "channel": "phone",
        "contact": "+7 900 000-00-00",
    }
    fields.update(overrides)
    return OpenIncident.model_validate(fields)


async def start_incident(
    running: RunningWorker,
    policy: Policy | None = None,
    history_limit: int | None = None,
    opened_at: datetime | None = None,
    customer_locale: bool = False,
    **overrides: Any,
) -> WorkflowHandle[IncidentWorkflow, IncidentState]:
    """Start an incident straight on the workflow, as any Temporal client may: naming its policy, which the
    tests' workers know (`known`). `customer_locale` as the service and the intake start one (the customer's
    language and time zone); without it, as incidents started before languages (English, UTC)."""
    ticket = new_ticket_id()
    policy = known(policy or default_policy())
    input = IncidentInput(
        ticket_id=ticket,
        request=open_request(**overrides),
        policy_ref=reference_of(policy),
        opened_at=opened_at,
        customer_locale=customer_locale,
        features=list(OPENING_FEATURES) if customer_locale else [],
    )
    if history_limit is not None:
        input.history_limit = history_limit
    handle = await running.client.start_workflow(
        IncidentWorkflow.run, input, task_queue=running.task_queue, **start_options(input, policy=policy)
    )
    running.started.append(handle)
    return handle


async def state_of(handle: WorkflowHandle[Any, Any], within: float = 10.0) -> IncidentState:
    """The incident's state; one started by a client answers once its first task resolved its policy."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        try:
            state: IncidentState = await handle.query("state", result_type=IncidentState)
            return state
        except WorkflowQueryFailedError as error:
            if "opening" not in str(error) or asyncio.get_running_loop().time() > deadline:
                raise
        await asyncio.sleep(0.02)


async def send(handle: WorkflowHandle[Any, Any], action: str, **payload: Any) -> None:
    await handle.signal(action, payload)


def event_types(state: IncidentState) -> list[str]:
    return [e.type.value for e in state.events]


HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)


async def _pending_work(handle: WorkflowHandle[Any, Any]) -> int:
    # The raw call: the SDK's describe() cannot decode the time-skipping server's Datetime attributes.
    response = await handle._client.workflow_service.describe_workflow_execution(
        DescribeWorkflowExecutionRequest(
            namespace=handle._client.namespace, execution=WorkflowExecution(workflow_id=handle.id)
        )
    )
    return len(response.pending_activities) + int(response.HasField("pending_workflow_task"))


async def settled(handle: WorkflowHandle[Any, Any], within: float = 20.0) -> IncidentState:
    """Wait (in real time) until the incident has no activity in flight, then return its state."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        if not await _pending_work(handle):
            state = await state_of(handle)
            if not await _pending_work(handle):
                return state
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"activities of {handle.id} still pending after {within}s")
        await asyncio.sleep(0.05)


def events_of(state: IncidentState, event_type: str) -> list[Any]:
    return [e for e in state.events if e.type == event_type]


async def until(
    handle: WorkflowHandle[Any, Any],
    predicate: Callable[[IncidentState], bool],
    within: float = 20.0,
    skip: tuple[WorkflowEnvironment, timedelta] | None = None,
) -> IncidentState:
    """Poll the state (in real time) until `predicate` holds: for outcomes that wait on an activity.

    With `skip=(env, step)`, workflow time also moves on by `step` between polls, for outcomes that
    wait on server-side retry backoff as well.
    """
    deadline = asyncio.get_running_loop().time() + within
    state: IncidentState | None = None
    while True:
        try:
            state = await handle.query("state", result_type=IncidentState, rpc_timeout=timedelta(seconds=3))
        except (RPCError, WorkflowQueryFailedError):
            # The time-skipping server can leave a query unanswered while a run continues as new; an
            # incident started by a client answers once its first task resolved its policy.
            state = None
        if state is not None and predicate(state):
            return state
        if asyncio.get_running_loop().time() > deadline:
            last = state.model_dump_json() if state is not None else "no answer"
            raise AssertionError(f"{handle.id} never reached the expected state; last: {last}")
        if skip is not None:
            await skip[0].sleep(skip[1])
        else:
            await asyncio.sleep(0.05)


def patch_ids(history: WorkflowHistory) -> list[str]:
    """Ids of the `workflow.patched` markers Core recorded (marker "core_patch", details "patch-data")."""
    ids = []
    for event in history.events:
        marker = event.marker_recorded_event_attributes
        if event.HasField("marker_recorded_event_attributes") and marker.marker_name == "core_patch":
            ids.append(json.loads(marker.details["patch-data"].payloads[0].data)["id"])
    return ids


# The longest note an agent may write, in Cyrillic: two bytes a character in JSON, 8 KB a note.
LONG_NOTE = "Абонент снова звонил, связи нет. " * 121


async def carried_inputs(handle: WorkflowHandle[Any, Any]) -> list[bytes]:
    """What each earlier run carried into the next (newest first), from the continue-as-new events."""
    carried: list[bytes] = []
    first = (await handle.fetch_history()).events[0]
    run_id = first.workflow_execution_started_event_attributes.continued_execution_run_id
    while run_id:
        history = await handle._client.get_workflow_handle(handle.id, run_id=run_id).fetch_history()
        ended = history.events[-1].workflow_execution_continued_as_new_event_attributes
        [payload] = ended.input.payloads
        carried.append(payload.data)
        run_id = history.events[0].workflow_execution_started_event_attributes.continued_execution_run_id
    return carried


def production_replayer(workflow_class: type) -> Replayer:
    """The worker's own runner: the sandbox as production sets it up (passthrough modules, lean runner)."""
    return Replayer(workflows=[workflow_class], data_converter=data_converter(), workflow_runner=workflow_runner())


def prometheus_sample(text: str, name: str, **labels: str) -> float:
    """The value of one Prometheus sample (summing none: the labels must pick exactly one line)."""
    found = []
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        pairs = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
        if all(pairs.get(k) == v for k, v in labels.items()):
            found.append(float(line.rsplit(" ", 1)[1]))
    assert len(found) == 1, f"{name} {labels}: {found}"
    return found[0]
