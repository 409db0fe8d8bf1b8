"""The worker's lean sandbox runner: still a sandbox, minus the per-payload trips into it.

Every other workflow test runs through it too (it is the worker's runner); these tests pin the
private parts of temporalio it relies on, so an SDK upgrade that moves them fails here by name.
"""

from __future__ import annotations

import asyncio
import ctypes
import dataclasses
import gc
from typing import Any

import pytest
from temporalio import workflow
from temporalio.api.common.v1 import Payloads
from temporalio.bridge.proto.workflow_activation import WorkflowActivation
from temporalio.converter import WorkflowSerializationContext
from temporalio.worker import WorkflowInstance, WorkflowInstanceDetails
from temporalio.worker.workflow_sandbox import _runner as stock_runner

from infra.connection import data_converter
from workers import sandbox_runner
from workers.worker import workflow_runner
from workflows.domain.inputs import IncidentInput
from workflows.domain.models import OpenIncident
from workflows.domain.policy import default_policy
from workflows.domain.policy_catalogue import reference_of
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


def _allocated_bytes() -> int:
    """glibc malloc's bytes in use: where upb keeps parsed protobuf messages (Python's allocator does not see them)."""

    class MallInfo2(ctypes.Structure):
        _fields_ = [
            (name, ctypes.c_size_t)
            for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks")
        ] + [("keepcost", ctypes.c_size_t)]

    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = MallInfo2
    gc.collect()
    info = libc.mallinfo2()
    return int(info.uordblks + info.hblkhd)


async def activate(instance: WorkflowInstance, activation: WorkflowActivation) -> Any:
    # On a thread of its own, as the worker runs activations (an instance is its own event loop while it runs).
    return await asyncio.get_running_loop().run_in_executor(None, instance.activate, activation)


def _received(activation: WorkflowActivation) -> WorkflowActivation:
    # As the worker gets it from Core: parsed from bytes into an arena of its own.
    return WorkflowActivation.FromString(activation.SerializeToString())


@pytest.mark.parametrize("keep_activations", [False, True], ids=["lean", "as-the-sdk-keeps-them"])
async def test_a_waiting_run_keeps_neither_its_first_nor_its_last_activation(
    monkeypatch: pytest.MonkeyPatch, keep_activations: bool
) -> None:
    """With protobuf's upb backend a message the SDK keeps from an activation (the start's headers, the
    task's deployment version) keeps the whole activation alive: for a cached incident its input and search
    attributes, and whatever its last task brought. Here each activation carries 1 MB the run never uses."""
    monkeypatch.setattr(sandbox_runner, "KEEP_ACTIVATIONS", keep_activations)
    runner = workflow_runner()
    converter = data_converter()
    defn = workflow._Definition.must_from_class(IncidentWorkflow)
    runs, ballast = 12, "x" * (1 << 20)
    before = _allocated_bytes()
    instances = []
    for number in range(runs):
        input = IncidentInput(
            ticket_id=f"T-{number}",
            request=OpenIncident(customer_id="c-1", category="outage", description="down", channel="app"),
            policy_ref=reference_of(default_policy()),
        )
        det = WorkflowInstanceDetails(
            payload_converter_factory=converter._new_payload_converter,
            failure_converter_class=converter.failure_converter_class,
            interceptor_classes=[],
            defn=defn,
            info=dataclasses.replace(stock_runner._fake_info, workflow_id=f"T-{number}", headers={}, raw_memo={}),
            randomness_seed=number,
            extern_functions={},
            disable_eager_activity_execution=True,
            worker_level_failure_exception_types=[],
            patch_activation_callback=None,
            last_completion_result=Payloads(),
            last_failure=None,
        )
        instance = runner.create_instance(det)
        start = WorkflowActivation(run_id=f"run-{number}")
        start.timestamp.GetCurrentTime()
        init = start.jobs.add().initialize_workflow
        init.workflow_type, init.workflow_id, init.randomness_seed = defn.name or "", f"T-{number}", number
        init.arguments.extend(converter.payload_converter.to_payloads([input]))
        init.headers["trace"].data = b"{}"
        init.identity = ballast  # never read by the SDK
        completion = await activate(instance, _received(start))
        assert completion.successful.commands, "the run opened and asked for its policy"
        query = WorkflowActivation(run_id=f"run-{number}")
        query.timestamp.GetCurrentTime()
        job = query.jobs.add().query_workflow
        job.query_id, job.query_type = "q", "no-such-query"
        job.arguments.add().data = ballast.encode()
        await activate(instance, _received(query))
        instances.append(instance)
    held = (_allocated_bytes() - before) / runs
    assert (held > 1.5 * len(ballast)) is keep_activations, f"{held / 1024:.0f} KB held per run"
