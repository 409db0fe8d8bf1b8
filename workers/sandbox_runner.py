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
- compiles each of the runner's fixed source strings once per process.

It relies on `_Instance`, a private class of temporalio, whose version the
project pins; `lean_runner_supported()` checks the parts it relies on, and
the worker falls back to the stock runner (with a warning) when they are gone.
"""

from __future__ import annotations

import logging
from types import CodeType
from typing import Any

from temporalio.converter import SerializationContext
from temporalio.worker import WorkflowInstance, WorkflowInstanceDetails
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner
from temporalio.worker.workflow_sandbox import _runner as sandbox_runner

logger = logging.getLogger(__name__)

IN_SANDBOX = "__temporal_in_sandbox"
_compiled: dict[str, CodeType] = {}


def lean_runner_supported() -> bool:
    instance = getattr(sandbox_runner, "_Instance", None)
    return instance is not None and all(
        callable(getattr(instance, name, None))
        for name in ("_run_code", "get_serialization_context", "get_external_store_context")
    )


class _LeanInstance(sandbox_runner._Instance):
    def _run_code(self, code: str, **extra_globals: Any) -> None:
        compiled = _compiled.get(code)
        if compiled is None:
            compiled = _compiled[code] = compile(code, "<string>", "exec")
        # exec() takes a code object as it takes source; only the compile is saved.
        super()._run_code(compiled, **extra_globals)  # type: ignore[arg-type]

    def _in_sandbox(self) -> Any:
        return self.globals_and_locals.get(IN_SANDBOX)

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
