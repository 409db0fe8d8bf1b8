"""`incidents audit`: make a vanished request visible to an operator.

Lists every incident execution that ended in any state other than closed
(failed, terminated, timed out, cancelled, or completed without closing) and
every incident still running well past its SLA deadline (its timers fire on
time when a worker is alive, so a deadline long gone means nobody is
processing it). `--schedule 15m` installs a Temporal Schedule that runs the
same audit in the worker and alerts through the notification webhook.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)

from workflows import search_attributes as sa
from workflows.domain.durations import format_duration, parse_duration
from workflows.domain.inputs import INTAKE_WORKFLOW_TYPE, TASK_QUEUE, WORKFLOW_TYPE

SCHEDULE_ID = "incidents-audit"
AUDIT_WORKFLOW_TYPE = "IncidentAudit"
DEFAULT_GRACE = timedelta(minutes=5)
_ENDED_BADLY = ("Failed", "Terminated", "TimedOut", "Canceled")


class Finding(BaseModel):
    ticket_id: str
    run_id: str | None
    workflow_type: str
    problem: str
    execution_status: str
    incident_status: str | None = None
    line: int | None = None
    sla_deadline: datetime | None = None


def queries(now: datetime, grace: timedelta) -> list[tuple[str, str]]:
    """(visibility query, what it means) pairs; each names one way a request can vanish."""
    ended_badly = " OR ".join(f"ExecutionStatus = '{status}'" for status in _ENDED_BADLY)
    ours = f"(WorkflowType = '{WORKFLOW_TYPE}' OR WorkflowType = '{INTAKE_WORKFLOW_TYPE}')"
    overdue = (now - grace).strftime("%Y-%m-%dT%H:%M:%SZ")
    return [
        (f"{ours} AND ({ended_badly})", "ended without being closed"),
        (
            f"WorkflowType = '{WORKFLOW_TYPE}' AND ExecutionStatus = 'Completed' AND {sa.STATUS.name} != 'closed'",
            "completed but the incident is not closed",
        ),
        (
            f"WorkflowType = '{WORKFLOW_TYPE}' AND ExecutionStatus = 'Running'"
            f" AND {sa.SLA_DEADLINE.name} < '{overdue}'",
            f"still running more than {format_duration(grace)} past its SLA deadline: is any worker alive?",
        ),
    ]


async def find_vanished(client: Client, grace: timedelta = DEFAULT_GRACE, now: datetime | None = None) -> list[Finding]:
    now = now or datetime.now(UTC)
    findings: dict[tuple[str, str | None], Finding] = {}
    for query, problem in queries(now, grace):
        async for execution in client.list_workflows(query):
            attributes = execution.typed_search_attributes
            key = (execution.id, execution.run_id)
            findings.setdefault(
                key,
                Finding(
                    ticket_id=execution.id,
                    run_id=execution.run_id,
                    workflow_type=execution.workflow_type,
                    problem=problem,
                    execution_status=execution.status.name.lower() if execution.status else "unknown",
                    incident_status=attributes.get(sa.STATUS),
                    line=attributes.get(sa.LINE),
                    sla_deadline=attributes.get(sa.SLA_DEADLINE),
                ),
            )
    return sorted(findings.values(), key=lambda f: f.ticket_id)


async def install_schedule(
    client: Client, every: timedelta, grace: timedelta = DEFAULT_GRACE, task_queue: str = TASK_QUEUE
) -> str:
    """Create (or update) the Schedule that audits every `every` and alerts through the webhook."""
    schedule = Schedule(
        action=ScheduleActionStartWorkflow(
            AUDIT_WORKFLOW_TYPE, grace.total_seconds(), id=f"{SCHEDULE_ID}-run", task_queue=task_queue
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)]),
    )
    try:
        await client.create_schedule(SCHEDULE_ID, schedule)
    except ScheduleAlreadyRunningError:

        def replace(_: ScheduleUpdateInput) -> ScheduleUpdate:
            return ScheduleUpdate(schedule=schedule)

        await client.get_schedule_handle(SCHEDULE_ID).update(replace)
    return SCHEDULE_ID


def render(findings: Sequence[Finding]) -> str:
    if not findings:
        return "audit: every incident execution is closed or on time"
    lines = [f"audit: {len(findings)} incident execution(s) need an operator"]
    for f in findings:
        where = f" line {f.line}" if f.line else ""
        lines.append(f"  {f.ticket_id}  {f.execution_status}{where}  {f.problem}")
    return "\n".join(lines)


async def _run(args: argparse.Namespace) -> int:
    from starter.connection import connect

    client = await connect()
    grace = parse_duration(args.grace)
    if args.schedule:
        schedule_id = await install_schedule(client, parse_duration(args.schedule), grace)
        print(f"schedule {schedule_id}: audit every {args.schedule}, alerts go to the notification webhook")
        return 0
    findings = await find_vanished(client, grace)
    if args.json:
        print(json.dumps([f.model_dump(mode="json") for f in findings], indent=2))
    else:
        print(render(findings))
    return 1 if findings else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="incidents audit", description=__doc__.split("\n\n")[0])
    parser.add_argument("--grace", default="5m", help="how long past its SLA deadline a running incident may be")
    parser.add_argument("--schedule", metavar="EVERY", help="install a Temporal Schedule running the audit, e.g. 15m")
    parser.add_argument("--json", action="store_true", help="print the findings as JSON")
    args = parser.parse_args(argv)
    for name in ("grace", "schedule"):
        value = getattr(args, name)
        if value is not None:
            try:
                parse_duration(value)
            except ValueError as error:
                parser.exit(2, f"incidents audit: --{name}: {error}\n")
    return asyncio.run(_run(args))


if __name__ == "__main__":
    from starter.exiting import exit_process

    exit_process(main())
