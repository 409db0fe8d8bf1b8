"""Bare workflows with one part of an incident's opening each, for `bench.memory_probe --shape`.

Each waits on a day-long timer after its part, as the bare timer does: the difference of its memory per
cached run from the bare timer's is what that part costs the worker (the SDK and Core, no domain logic).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from temporalio import activity, workflow

from bench.bare import BareTimer

PART_TIMEOUT = timedelta(seconds=30)


@activity.defn(name="shape_policy")
async def policy_document() -> dict[str, Any]:
    """What resolving a policy returns: the shipped policy, as JSON (about the size of the incident's)."""
    from workflows.domain.policy import default_policy

    return default_policy().model_dump(mode="json")


@activity.defn(name="shape_notify")
async def notify(batch: dict[str, Any]) -> dict[str, Any]:
    return {"delivered": [n["id"] for n in batch["notifications"]]}


def notification_batch() -> dict[str, Any]:
    """About the opening's two notifications (the customer's and line 1's)."""
    return {
        "notifications": [
            {"id": f"T-1:{seq}", "recipient": who, "kind": kind, "message": "x" * 300, "contact": None}
            for seq, who, kind in ((2, "customer", "ticket_opened"), (3, "line_1", "new_incident"))
        ]
    }


async def wait_a_day() -> None:
    await workflow.sleep(timedelta(days=1))
    await workflow.wait_condition(lambda: False)


@workflow.defn(name="ShapeActivity")
class ShapeActivity:
    """A regular activity whose result is a policy, then waits."""

    @workflow.run
    async def run(self) -> None:
        await workflow.execute_activity("shape_policy", start_to_close_timeout=PART_TIMEOUT)
        await wait_a_day()


@workflow.defn(name="ShapeLocalActivity")
class ShapeLocalActivity:
    """A local activity with two notifications, then waits."""

    @workflow.run
    async def run(self) -> None:
        await workflow.execute_local_activity("shape_notify", notification_batch(), start_to_close_timeout=PART_TIMEOUT)
        await wait_a_day()


@workflow.defn(name="ShapeOpening")
class ShapeOpening:
    """Both, as an incident opens: the policy's activity, then the notifications' local activity beside the timer."""

    @workflow.run
    async def run(self) -> None:
        await workflow.execute_activity("shape_policy", start_to_close_timeout=PART_TIMEOUT)
        await workflow.execute_local_activity("shape_notify", notification_batch(), start_to_close_timeout=PART_TIMEOUT)
        await wait_a_day()


WORKFLOWS = [BareTimer, ShapeActivity, ShapeLocalActivity, ShapeOpening]
ACTIVITIES: list[Callable[..., Any]] = [policy_document, notify]
