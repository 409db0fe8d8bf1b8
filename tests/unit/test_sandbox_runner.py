"""The worker's lean sandbox runner: still a sandbox, minus the per-payload trips into it.

Every other workflow test runs through it too (it is the worker's runner); these tests pin the
private parts of temporalio it relies on, so an SDK upgrade that moves them fails here by name.
"""

from __future__ import annotations

from typing import Any

import pytest
from temporalio import workflow
from temporalio.converter import WorkflowSerializationContext
from temporalio.worker import WorkflowInstance, WorkflowInstanceDetails
from temporalio.worker.workflow_sandbox import _runner as stock_runner

from workers import sandbox_runner
from workers.worker import workflow_runner
from workflows.incident_workflow import IncidentWorkflow


def test_the_pinned_sdk_still_has_what_the_lean_runner_relies_on() -> None:
    assert sandbox_runner.lean_runner_supported()
    assert isinstance(workflow_runner(), sandbox_runner.LeanSandboxedWorkflowRunner)


async def test_context_questions_are_answered_without_entering_the_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    runner = workflow_runner()
    created: list[WorkflowInstance] = []
    create = sandbox_runner.LeanSandboxedWorkflowRunner.create_instance

    def capture(self: sandbox_runner.LeanSandboxedWorkflowRunner, det: WorkflowInstanceDetails) -> WorkflowInstance:
        created.append(create(self, det))
        return created[-1]

    monkeypatch.setattr(sandbox_runner.LeanSandboxedWorkflowRunner, "create_instance", capture)
    runner.prepare_workflow(workflow._Definition.must_from_class(IncidentWorkflow))
    (instance,) = created
    # Creating the instance ran the sandbox's fixed set-up code, compiled once for the process.
    assert sandbox_runner._compiled

    entered: list[Any] = []
    monkeypatch.setattr(stock_runner._Instance, "_run_code", lambda self, code, **_: entered.append(code))
    context = instance.get_serialization_context(None)
    store = instance.get_external_store_context(None)

    assert isinstance(context, WorkflowSerializationContext)
    assert context.workflow_id == instance.get_info().workflow_id
    assert store is not None
    assert entered == []
