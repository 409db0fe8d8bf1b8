"""Raw Temporal, for comparison: workflows of the incident's shape with no domain logic at all.

Served by its own worker process: `python -m bench.bare_worker`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from temporalio import activity, workflow
from temporalio.common import SearchAttributeKey

TASK_QUEUE = "bench-bare"
# What an incident's status is published as (workflows/search_attributes.py): a resolved target says so alike.
RESOLVED = SearchAttributeKey.for_keyword("IncidentStatus")
LINE = SearchAttributeKey.for_int("IncidentLine")


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
    """Sleep until an absolute moment, note when it woke, then wait on, as an escalated incident does.

    Staying open keeps the comparison like for like (completing a workflow costs the server more
    than a timer does) and lets the same waiting workflows serve as the bare memory figure.
    """

    def __init__(self) -> None:
        self._woke: str | None = None

    @workflow.run
    async def run(self, due_iso: str) -> None:
        due = datetime.fromisoformat(due_iso)
        await workflow.sleep(max((due - workflow.now()).total_seconds(), 0.001))
        self._woke = workflow.now().isoformat()
        await workflow.wait_condition(lambda: False)

    @workflow.query(name="woke")
    def woke(self) -> str | None:
        return self._woke


ESCALATION_COMMANDS = ("page", "upsert", "timer")


def escalation_id_prefix(commands: Sequence[str]) -> str:
    """What the ids of one escalation shape's workflows start with: the bench starts them, the probe samples them."""
    return f"escalation-{'-'.join(commands)}"


@workflow.defn(name="BareEscalation")
class BareEscalation:
    """A bare timer that, when it wakes, asks the server for what an escalation asks of it and nothing more,
    or for some of it: "page" a local activity (the page to the next line), "upsert" one search attribute
    (the line, for the desk and visibility), "timer" the next line's timer (the promise: an open incident
    always has a next deadline). Each is one more event in the task after the timer fired.

    `make bench` wakes 50 of them into all three beside (4)'s 50 due, as that row's floor (a reference row);
    `python -m bench.burst_probe --escalation-shape page,upsert,timer` sets it beside (4)'s two sides at any size
    and with any of the commands, to tell the cost of those server commands from the cost of the incident's own
    code.
    """

    def __init__(self) -> None:
        self._woke: str | None = None

    @workflow.run
    async def run(self, due_iso: str, commands: list[str]) -> None:
        due = datetime.fromisoformat(due_iso)
        await workflow.sleep(max((due - workflow.now()).total_seconds(), 0.001))
        self._woke = workflow.now().isoformat()
        if "page" in commands:
            await workflow.execute_local_activity("bare_noop", start_to_close_timeout=timedelta(seconds=30))
        if "upsert" in commands:
            workflow.upsert_search_attributes([LINE.value_set(2)])
        if "timer" in commands:
            await workflow.sleep(timedelta(days=1))
        await workflow.wait_condition(lambda: False)

    @workflow.query(name="woke")
    def woke(self) -> str | None:
        return self._woke


@workflow.defn(name="BareOutageTarget")
class BareOutageTarget:
    """What a linked incident is to a mass resolve, in raw Temporal: wait for a signal, tell someone, say so."""

    def __init__(self) -> None:
        self._resolved = False

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: self._resolved)
        await workflow.execute_local_activity("bare_noop", start_to_close_timeout=timedelta(seconds=30))
        # Like a resolved incident awaiting its callback: visible as resolved, and still open.
        workflow.upsert_search_attributes([RESOLVED.value_set("resolved")])
        await workflow.wait_condition(lambda: False)

    @workflow.signal(name="resolve")
    def resolve(self, resolution: dict[str, str]) -> None:
        self._resolved = True


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
