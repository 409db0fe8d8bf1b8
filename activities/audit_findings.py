"""What the audit finds: every way an incident's request can silently vanish, through Temporal visibility.

Executions that ended in any state other than closed; workflow tasks that keep
failing (the server's TemporalReportedProblems); executions that no worker ever
picked up; running incidents whose next deadline passed more than the grace
ago (timers fire on time while a worker serves them, so a deadline long gone
means nobody does); and incidents whose notifications gave up. Each finding
says what to do. Run by `incidents audit` and by the scheduled audit workflow.
Beside the findings it counts the closed incidents that needed no agent (closed
as self_resolved by the customer's self-help): the pyramid's first level at work.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import PendingWorkflowTaskState
from temporalio.api.workflowservice.v1 import DescribeWorkflowExecutionRequest
from temporalio.client import (
    Client,
)
from temporalio.client import (
    WorkflowExecution as ListedExecution,
)
from temporalio.service import RPCError, RPCStatusCode

from workflows import search_attributes as sa
from workflows.domain.durations import format_duration
from workflows.domain.inputs import INTAKE_WORKFLOW_TYPE, TASK_QUEUE, WORKFLOW_TYPE

SCHEDULE_ID = "incidents-audit"
AUDIT_WORKFLOW_TYPE = "IncidentAudit"
DEFAULT_GRACE = timedelta(minutes=5)
_ENDED_BADLY = ("Failed", "Terminated", "TimedOut", "Canceled")
_OURS = f"(WorkflowType = '{WORKFLOW_TYPE}' OR WorkflowType = '{INTAKE_WORKFLOW_TYPE}')"


class Kind(StrEnum):
    """What is wrong, in the order an execution's findings are listed."""

    ended_unclosed = "ended_unclosed"
    completed_unclosed = "completed_unclosed"
    task_failing = "task_failing"
    never_picked_up = "never_picked_up"
    overdue = "overdue"
    notifications_failed = "notifications_failed"


# A stuck workflow task or a queue nobody polls is why the deadlines pass: the overdue finding adds nothing.
_EXPLAINED_BY = {Kind.overdue: {Kind.task_failing, Kind.never_picked_up}}

ACTIONS = {
    Kind.ended_unclosed: "Read its history in the web UI to see who or what ended it; if the customer's problem is "
    "not solved, open a new incident for them (`incidents open`) and note which ticket vanished.",
    Kind.completed_unclosed: "A bug: the workflow returned before closing. Open a new incident for the customer if "
    "the problem is not solved, and report the bug with this history.",
    Kind.task_failing: "Read the failure on its pending workflow task (web UI, 'Task Failures' view). Deploy a fix "
    "and the task is retried where it stopped; if one bad signal caused it, reset it to the workflow task before "
    "that signal (`temporal workflow reset --reapply-exclude Signal`). Do not terminate it: the request would vanish.",
    Kind.never_picked_up: "Run a worker on task queue '{queue}' (the incidents' is '{incidents_queue}'); if the queue "
    "is a mistake, terminate it and open the request again with `incidents open` or the HTTP API.",
    Kind.overdue: "Check that a worker polls task queue '{queue}' (`temporal task-queue describe --task-queue "
    "{queue}`, or the workflow's Workers tab): a worker fires the deadline at once. If workers are up, look for a "
    "failing workflow task on it.",
    Kind.notifications_failed: "Read its notification_failed events (`incidents history {ticket}`), tell the "
    "customer or the line by hand, and fix the notification endpoint.",
}


class ClosedTally(BaseModel):
    """How many incidents closed, and how many of them the customer's self-help closed without an agent."""

    closed: int
    self_resolved: int

    def describe(self) -> str:
        if not self.closed:
            return "self-help: no incident has closed yet"
        share = 100 * self.self_resolved / self.closed
        return (
            f"self-help: {self.self_resolved} of {self.closed} closed incidents ({share:.0f}%) needed no agent "
            "(closed as self_resolved)"
        )


async def count_closed(client: Client) -> ClosedTally:
    """Counted by Temporal visibility (IncidentStatus, IncidentClosedAs) over the namespace's retention."""
    closed = f"WorkflowType = '{WORKFLOW_TYPE}' AND {sa.STATUS.name} = 'closed'"
    self_resolved = f"{closed} AND {sa.CLOSED_AS.name} = 'self_resolved'"
    return ClosedTally(
        closed=(await client.count_workflows(closed)).count,
        self_resolved=(await client.count_workflows(self_resolved)).count,
    )


class Finding(BaseModel):
    ticket_id: str
    run_id: str | None
    workflow_type: str
    kind: Kind
    problem: str
    action: str
    execution_status: str
    task_queue: str | None = None
    incident_status: str | None = None
    line: int | None = None
    sla_deadline: datetime | None = None
    next_deadline: datetime | None = None


Explain = Callable[[Client, ListedExecution, datetime], Awaitable[tuple[Kind, str] | None]]


@dataclass(frozen=True)
class Check:
    query: str
    explain: Explain


@dataclass(frozen=True)
class _PendingTask:
    state: PendingWorkflowTaskState.ValueType
    attempt: int


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _status(execution: ListedExecution) -> str:
    return execution.status.name.lower() if execution.status else "unknown"


def checks(now: datetime, grace: timedelta) -> list[Check]:
    """The visibility queries, each naming one way a request can vanish, and how to word what it found."""
    ended_badly = " OR ".join(f"ExecutionStatus = '{status}'" for status in _ENDED_BADLY)
    overdue = _timestamp(now - grace)

    async def ended(_: Client, execution: ListedExecution, __: datetime) -> tuple[Kind, str]:
        return Kind.ended_unclosed, f"ended {_status(execution)} without being closed"

    async def completed(_: Client, __: ListedExecution, ___: datetime) -> tuple[Kind, str]:
        return Kind.completed_unclosed, "completed but the incident is not closed"

    async def failing(client: Client, execution: ListedExecution, _: datetime) -> tuple[Kind, str]:
        problems = execution.typed_search_attributes.get(sa.REPORTED_PROBLEMS) or []
        reported = ", ".join(p.split("=", 1)[-1].removeprefix("WorkflowTaskFailedCause") for p in problems)
        task = await _pending_workflow_task(client, execution)
        attempt = f", attempt {task.attempt}" if task is not None and task.attempt > 1 else ""
        return Kind.task_failing, (
            f"its workflow task keeps failing ({reported}{attempt}): no signal, update or deadline is processed"
        )

    async def never_picked_up(client: Client, execution: ListedExecution, at: datetime) -> tuple[Kind, str] | None:
        # Visibility says no worker ever completed a workflow task; the pending task says why.
        task = await _pending_workflow_task(client, execution)
        if task is None or (
            task.state == PendingWorkflowTaskState.PENDING_WORKFLOW_TASK_STATE_STARTED and task.attempt == 1
        ):
            return None  # its first task completed since the listing, or a worker is on it right now
        if task.attempt > 1:
            return Kind.task_failing, (
                f"its first workflow task failed or timed out {task.attempt - 1} time(s) and never completed: "
                "no signal, update or deadline is processed"
            )
        age = format_duration(at - execution.start_time)
        return Kind.never_picked_up, (
            f"started {age} ago on task queue '{execution.task_queue}', and no worker has ever picked up its "
            "first workflow task"
        )

    async def late(_: Client, execution: ListedExecution, at: datetime) -> tuple[Kind, str]:
        attributes = execution.typed_search_attributes
        deadline = min(d for d in (attributes.get(sa.NEXT_DEADLINE), attributes.get(sa.SLA_DEADLINE)) if d)
        return Kind.overdue, (
            f"its next deadline ({_timestamp(deadline)}) passed {format_duration(at - deadline)} ago and nothing "
            "acted on it: no worker serves it, or it is frozen"
        )

    async def unnotified(_: Client, execution: ListedExecution, __: datetime) -> tuple[Kind, str]:
        count = execution.typed_search_attributes.get(sa.NOTIFICATIONS_FAILED) or 0
        return Kind.notifications_failed, f"{count} notification(s) gave up: the customer or a line was never told"

    running = "ExecutionStatus = 'Running'"
    return [
        Check(f"{_OURS} AND ({ended_badly})", ended),
        Check(
            f"WorkflowType = '{WORKFLOW_TYPE}' AND ExecutionStatus = 'Completed' AND {sa.STATUS.name} != 'closed'",
            completed,
        ),
        # The server flags an execution after N consecutive workflow task failures or timeouts
        # (dynamic config system.numConsecutiveWorkflowTaskProblemsToTriggerSearchAttribute).
        Check(f"{running} AND {sa.REPORTED_PROBLEMS.name} IS NOT NULL", failing),
        # BuildIds stays empty until a worker completes a workflow task of the execution.
        Check(f"{running} AND {sa.BUILD_IDS.name} IS NULL AND StartTime < '{overdue}'", never_picked_up),
        Check(
            f"WorkflowType = '{WORKFLOW_TYPE}' AND {running}"
            f" AND ({sa.NEXT_DEADLINE.name} < '{overdue}' OR {sa.SLA_DEADLINE.name} < '{overdue}')",
            late,
        ),
        Check(f"WorkflowType = '{WORKFLOW_TYPE}' AND {sa.NOTIFICATIONS_FAILED.name} > 0", unnotified),
    ]


async def _pending_workflow_task(client: Client, execution: ListedExecution) -> _PendingTask | None:
    try:
        response = await client.workflow_service.describe_workflow_execution(
            DescribeWorkflowExecutionRequest(
                namespace=client.namespace,
                execution=WorkflowExecution(workflow_id=execution.id, run_id=execution.run_id),
            )
        )
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return None  # gone since the listing (retention)
        raise
    if not response.HasField("pending_workflow_task"):
        return None
    task = response.pending_workflow_task
    return _PendingTask(state=task.state, attempt=task.attempt)


async def find_vanished(client: Client, grace: timedelta = DEFAULT_GRACE, now: datetime | None = None) -> list[Finding]:
    now = now or datetime.now(UTC)
    found: dict[tuple[str, str | None], dict[Kind, Finding]] = {}
    for check in checks(now, grace):
        async for execution in client.list_workflows(check.query):
            verdict = await check.explain(client, execution, now)
            if verdict is None:
                continue
            kind, problem = verdict
            attributes = execution.typed_search_attributes
            found.setdefault((execution.id, execution.run_id), {}).setdefault(
                kind,
                Finding(
                    ticket_id=execution.id,
                    run_id=execution.run_id,
                    workflow_type=execution.workflow_type,
                    kind=kind,
                    problem=problem,
                    action=ACTIONS[kind].format(
                        queue=execution.task_queue, incidents_queue=TASK_QUEUE, ticket=execution.id
                    ),
                    execution_status=_status(execution),
                    task_queue=execution.task_queue,
                    incident_status=attributes.get(sa.STATUS),
                    line=attributes.get(sa.LINE),
                    sla_deadline=attributes.get(sa.SLA_DEADLINE),
                    next_deadline=attributes.get(sa.NEXT_DEADLINE),
                ),
            )
    findings = [
        finding
        for by_kind in found.values()
        for kind, finding in by_kind.items()
        if not _EXPLAINED_BY.get(kind, set()) & by_kind.keys()
    ]
    order = list(Kind)
    return sorted(findings, key=lambda f: (f.ticket_id, f.run_id or "", order.index(f.kind)))


def render(findings: Sequence[Finding], tally: ClosedTally | None = None) -> str:
    counted = [tally.describe()] if tally is not None else []
    if not findings:
        return "\n".join(["audit: every incident execution is closed or on time", *counted])
    executions = len({(f.ticket_id, f.run_id) for f in findings})
    lines = [f"audit: {len(findings)} problem(s) on {executions} execution(s) need an operator"]
    for f in findings:
        where = f" line {f.line}" if f.line else ""
        lines.append(f"  {f.ticket_id}  {f.execution_status}{where}  {f.problem}")
        lines.append(f"      what to do: {f.action}")
    return "\n".join([*lines, *counted])
