"""The escalation policy is the worker's, named by the client (issue 15): refused when it is a client's own, an
unknown name or none; opened under the worker's answer, which the history keeps (time-skipping server)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from temporalio.client import WithStartWorkflowOperation, WorkflowFailureError, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from infra.connection import data_converter
from starter.incidents import IncidentService, PolicyRefused
from tests.harness import RunningWorker, Sandboxes
from tests.helpers import open_request, send, until
from tests.policies import fast_policy
from workers.worker import workflow_runner
from workflows.contracts import POLICY_REFUSED
from workflows.domain.inputs import IncidentInput, IntakeKey, IntakeRequest, IntakeResult, intake_workflow_id
from workflows.domain.policy import default_policy
from workflows.domain.policy_catalogue import reference_of
from workflows.domain.tickets import new_ticket_id
from workflows.features import OPENING_FEATURES
from workflows.incident_start import start_options
from workflows.incident_workflow import IncidentWorkflow

# As incidents were started before the opening features (the policy resolved by an activity), and as now (by a
# local activity in the first workflow task).
FEATURES = pytest.mark.parametrize("features", [[], list(OPENING_FEATURES)], ids=["opened-before", "opening-features"])


@FEATURES
async def test_a_client_cannot_open_an_incident_under_a_policy_of_its_own(
    time_env: WorkflowEnvironment, skipping: RunningWorker, sandboxes: Sandboxes, features: list[str]
):
    """Started directly with its own policy, or naming one the worker does not know: the run fails at once,
    cleanly (no workflow task fails), naming why; nothing is opened and nobody is told anything."""
    own = default_policy().model_copy(update={"refund_approval_limits": {1: Decimal("99999999.00")}})
    unknown = reference_of(own)
    request = open_request()
    attempts = {
        "of its own": IncidentInput(ticket_id=new_ticket_id(), request=request, policy=own, features=features),
        str(unknown): IncidentInput(ticket_id=new_ticket_id(), request=request, policy_ref=unknown, features=features),
        "names no policy": IncidentInput(ticket_id=new_ticket_id(), request=request, features=features),
    }
    for what, input in attempts.items():
        handle = await skipping.client.start_workflow(
            IncidentWorkflow.run, input, task_queue=skipping.task_queue, **start_options(input, policy=own)
        )
        with pytest.raises(WorkflowFailureError) as failed:
            await asyncio.wait_for(handle.result(), timeout=30)  # an incident that opened would never end here
        cause = failed.value.cause
        assert isinstance(cause, ApplicationError) and cause.type == POLICY_REFUSED and what in cause.message
        history = await handle.fetch_history()
        assert not any(e.HasField("workflow_task_failed_event_attributes") for e in history.events), what
        assert await sandboxes.notifications(ticket_id=input.ticket_id) == [], what
    # Through the project's client, the intake refuses the unknown policy too, naming it and what the worker knows.
    service = IncidentService(skipping.client, policy=own, task_queue=skipping.task_queue)
    for new_incident in (False, True):
        with pytest.raises(PolicyRefused) as refused:
            await service.open(open_request(customer_id=f"own-{new_incident}", new_incident=new_incident))
        assert str(unknown) in refused.value.reason and str(reference_of(default_policy())) in refused.value.reason
    # A client that hands the intake a policy of its own (as clients did before they named one) is refused.
    operation: WithStartWorkflowOperation[Any, Any] = WithStartWorkflowOperation(
        "IncidentIntake",
        IntakeKey(customer_id="own-intake", category="connection_lost"),
        id=intake_workflow_id("own-intake", "connection_lost"),
        task_queue=skipping.task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )
    with pytest.raises(WorkflowUpdateFailedError) as update_failed:
        await skipping.client.execute_update_with_start_workflow(
            "open",
            IntakeRequest(request=open_request(customer_id="own-intake"), policy=own),
            start_workflow_operation=operation,
            result_type=IntakeResult,
        )
    cause = update_failed.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == POLICY_REFUSED and "of its own" in cause.message


@FEATURES
async def test_an_incident_opens_under_the_policy_it_names_and_replays_without_the_worker_knowing_it(
    time_env: WorkflowEnvironment, skipping: RunningWorker, features: list[str]
):
    """The worker's answer is recorded in the history (a local activity): the incident replays under it on a
    worker that no longer knows that policy. An action sent with the start waits for the opening, not lost."""
    policy = fast_policy(line_timeouts={"1": "1h", "2": "1h"}, acknowledge_within="7m")
    input = IncidentInput(
        ticket_id=new_ticket_id(), request=open_request(), policy_ref=reference_of(policy), features=features
    )
    handle = await skipping.client.start_workflow(
        IncidentWorkflow.run,
        input,
        task_queue=skipping.task_queue,
        start_signal="add_note",
        start_signal_args=[{"agent": "ann", "text": "called at once"}],
        **start_options(input, policy=policy),
    )
    skipping.started.append(handle)
    state = await until(handle, lambda s: s.notes == 1)
    assert [e.type.value for e in state.events[:1]] == ["opened"] and state.policy_name == "fast"
    assert state.acknowledge_deadline == state.opened_at + timedelta(minutes=7), "the named policy's rules"
    await send(handle, "resolve", agent="ann", resolution="done")
    await until(handle, lambda s: s.status != "open")
    history = await handle.fetch_history()
    by_activity = any(e.HasField("activity_task_scheduled_event_attributes") for e in history.events)
    assert by_activity == (not features), "a local activity's marker with the opening features, else an activity"
    replayer = Replayer(
        workflows=[IncidentWorkflow], data_converter=data_converter(), workflow_runner=workflow_runner()
    )
    assert (await replayer.replay_workflow(history, raise_on_replay_failure=False)).replay_failure is None
