"""The workflow sandbox without two per-payload costs of temporalio 1.35's runner.

For every payload sequence of every activation and completion (six visitor
passes each), the SDK asks the workflow instance for a serialization context,
and the sandboxed runner answers by `exec`-ing a source string inside the
sandbox: a compile plus entering and leaving the sandbox's import and builtins
restrictions, to read a few fields of the instance. Profiled with py-spy
(`--gil`) on a lifecycle burst that was about 15% of the incident worker's
time, and the compile of the same two source strings on every activation
another few percent.

`LeanSandboxedWorkflowRunner` keeps the sandbox for workflow code (activations
still run inside it, as before) but:
- answers the context questions by calling the instance directly, as the
  SDK's unsandboxed runner does: they are plain lookups in the instance's
  pending commands and run no workflow code;
- compiles each of the runner's fixed source strings once per process;
- lets go of the run's activations between them. The SDK's instance keeps
  protobuf messages that point into an activation (its deployment version,
  its internal flags; from the first one the start's headers, memo and last
  completion result) and its last completion. With protobuf's upb backend a
  message keeps its whole parse arena alive, so every cached run held its
  first activation (input, search attributes) and its last one (for an
  incident the 4 KB policy, or a notification's result) for as long as it
  waited: most of what the memory probe put on Core's account. Copies of the
  few small messages the SDK reads later take their place.

It relies on `_Instance`, a private class of temporalio, whose version the
project pins; `lean_runner_supported()` checks the parts it relies on, and
the worker falls back to the stock runner (with a warning) when they are gone.
"""

from __future__ import annotations

import logging
from types import CodeType
from typing import Any, TypeVar

from google.protobuf.message import Message
from temporalio.converter import SerializationContext
from temporalio.worker import WorkflowInstance, WorkflowInstanceDetails
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner
from temporalio.worker.workflow_sandbox import _runner as sandbox_runner

logger = logging.getLogger(__name__)

IN_SANDBOX = "__temporal_in_sandbox"
_compiled: dict[str, CodeType] = {}
# The instance's attributes that point into an activation, or hold the last completion.
_HELD_PARTS = (
    "_workflow_input",
    "_info",
    "_last_completion_result",
    "_last_failure",
    "_deployment_version_for_current_task",
    "_current_internal_flags",
    "_current_completion",
)
# True: keep what the SDK keeps, as its own runner does (the memory probe's A/B, and the test's).
KEEP_ACTIVATIONS = False

M = TypeVar("M", bound=Message)


def lean_runner_supported() -> bool:
    instance = getattr(sandbox_runner, "_Instance", None)
    return instance is not None and all(
        callable(getattr(instance, name, None))
        for name in ("_run_code", "get_serialization_context", "get_external_store_context", "activate")
    )


def _detached(message: M) -> M:
    """A copy in an arena of its own: it keeps no activation alive."""
    copy = type(message)()
    copy.CopyFrom(message)
    return copy


def _let_go_of_start(instance: Any) -> None:
    """What the instance keeps of its first activation for the whole run, as copies of its own."""
    workflow_input = instance._workflow_input
    workflow_input.headers = {name: _detached(payload) for name, payload in workflow_input.headers.items()}
    info = instance._info
    for mapping in (info.headers, info.raw_memo):  # the same dicts the runner's instance details hold
        for name in list(mapping):
            mapping[name] = _detached(mapping[name])
    instance._last_completion_result = _detached(instance._last_completion_result)
    if instance._last_failure is not None:
        instance._last_failure = _detached(instance._last_failure)


def _let_go_of_activation(instance: Any) -> None:
    """What the instance keeps of its latest activation until the next one, as copies; the completion it
    returned is the worker's to send (the next activation starts a new one)."""
    if instance._deployment_version_for_current_task is not None:
        instance._deployment_version_for_current_task = _detached(instance._deployment_version_for_current_task)
    instance._current_internal_flags = tuple(instance._current_internal_flags)
    instance._current_completion = None


class _LeanInstance(sandbox_runner._Instance):
    _start_let_go = False

    def _run_code(self, code: str, **extra_globals: Any) -> None:
        compiled = _compiled.get(code)
        if compiled is None:
            compiled = _compiled[code] = compile(code, "<string>", "exec")
        # exec() takes a code object as it takes source; only the compile is saved.
        super()._run_code(compiled, **extra_globals)  # type: ignore[arg-type]

    def _in_sandbox(self) -> Any:
        return self.globals_and_locals.get(IN_SANDBOX)

    def activate(self, act: Any) -> Any:
        completion = super().activate(act)
        in_sandbox = self._in_sandbox()
        if in_sandbox is None or KEEP_ACTIVATIONS:
            return completion
        instance = in_sandbox.instance
        if not all(hasattr(instance, name) for name in _HELD_PARTS):
            return completion  # not temporalio 1.35's instance: it keeps what it keeps
        if not self._start_let_go and instance._workflow_input is not None:
            _let_go_of_start(instance)
            # The runner's own copy of the details (frozen) points into the first activation too.
            object.__setattr__(self.instance_details, "last_completion_result", instance._last_completion_result)
            object.__setattr__(self.instance_details, "last_failure", instance._last_failure)
            self._start_let_go = True
        _let_go_of_activation(instance)
        return completion

    def get_serialization_context(self, command_info: Any) -> SerializationContext | None:
        in_sandbox = self._in_sandbox()
        if in_sandbox is None:  # not created yet: let the stock path answer
            return super().get_serialization_context(command_info)
        return in_sandbox.get_serialization_context(command_info)  # type: ignore[no-any-return]

    def get_external_store_context(self, command_info: Any) -> Any:
        in_sandbox = self._in_sandbox()
        if in_sandbox is None:
            return super().get_external_store_context(command_info)
        return in_sandbox.get_external_store_context(command_info)


class LeanSandboxedWorkflowRunner(SandboxedWorkflowRunner):
    def create_instance(self, det: WorkflowInstanceDetails) -> WorkflowInstance:
        return _LeanInstance(det, self.runner_class, self.restrictions)


def sandboxed_runner(**options: Any) -> SandboxedWorkflowRunner:
    if lean_runner_supported():
        return LeanSandboxedWorkflowRunner(**options)
    logger.warning("temporalio's sandbox internals changed: using the stock sandboxed runner")
    return SandboxedWorkflowRunner(**options)
