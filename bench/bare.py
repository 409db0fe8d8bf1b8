"""Raw Temporal, for comparison: workflows of the incident's shape with no domain logic at all.

Served by its own worker process: `python -m bench.bare_worker`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import activity, workflow

TASK_QUEUE = "bench-bare"


@activity.defn(name="bare_noop")
async def noop() -> None:
    return None


@workflow.defn(name="BareShape")
class BareShape:
    """start -> no-op activity -> wait for a signal -> no-op activity -> short timer -> done."""

    def __init__(self) -> None:
        self._go = False

    @workflow.run
    async def run(self) -> None:
        await workflow.execute_activity("bare_noop", start_to_close_timeout=timedelta(seconds=30))
        await workflow.wait_condition(lambda: self._go)
        await workflow.execute_activity("bare_noop", start_to_close_timeout=timedelta(seconds=30))
        await workflow.sleep(1)

    @workflow.signal(name="go")
    def go(self) -> None:
        self._go = True


@workflow.defn(name="BareTimer")
class BareTimer:
    """Sleep until an absolute moment; return when the workflow woke."""

    @workflow.run
    async def run(self, due_iso: str) -> str:
        due = datetime.fromisoformat(due_iso)
        await workflow.sleep(max((due - workflow.now()).total_seconds(), 0.001))
        return workflow.now().isoformat()


@workflow.defn(name="BareWaiter")
class BareWaiter:
    """Waits forever; a signal bumps a counter a query reads."""

    def __init__(self) -> None:
        self._count = 0

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: self._count < 0)

    @workflow.signal(name="bump")
    def bump(self) -> None:
        self._count += 1

    @workflow.query(name="count")
    def count(self) -> int:
        return self._count
