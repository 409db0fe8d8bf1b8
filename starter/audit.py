"""`incidents audit`: make a vanished request visible to an operator.

Finds, through Temporal visibility: executions that ended in any state other
than closed; workflow tasks that keep failing (the server's
TemporalReportedProblems); executions that no worker ever picked up; running
incidents whose next deadline passed more than `--grace` ago (timers fire on
time while a worker serves them, so a deadline long gone means nobody does);
and incidents whose notifications gave up. Each finding says what to do. It
also counts the closed incidents the customer's self-help closed without an
agent (self_resolved).
`--schedule 15m` installs a Temporal Schedule that runs the same audit in the
worker and alerts through the notification webhook.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Sequence
from datetime import timedelta

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

from activities.audit_findings import (
    AUDIT_WORKFLOW_TYPE,
    DEFAULT_GRACE,
    SCHEDULE_ID,
    count_closed,
    find_vanished,
    render,
)
from infra.settings import Settings
from workflows.domain.durations import parse_duration
from workflows.domain.inputs import TASK_QUEUE


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


async def _run(args: argparse.Namespace, settings: Settings) -> int:
    from infra.connection import connect

    client = await connect(settings=settings)
    grace = parse_duration(args.grace)
    if args.schedule:
        schedule_id = await install_schedule(client, parse_duration(args.schedule), grace)
        print(f"schedule {schedule_id}: audit every {args.schedule}, alerts go to the notification webhook")
        return 0
    findings = await find_vanished(client, grace)
    if args.json:
        print(json.dumps([f.model_dump(mode="json") for f in findings], indent=2))
    else:
        print(render(findings, await count_closed(client)))
    return 1 if findings else 0


def main(argv: Sequence[str] | None = None, settings: Settings | None = None) -> int:
    parser = argparse.ArgumentParser(prog="incidents audit", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--grace",
        default="5m",
        help="how late an incident's next deadline, or how long unpicked a new execution's first task, may be",
    )
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
    return asyncio.run(_run(args, settings or Settings.load()))


if __name__ == "__main__":
    from infra.exiting import exit_process

    exit_process(main())
