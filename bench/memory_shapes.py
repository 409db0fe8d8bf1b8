"""Bare workflows with one part of an incident's opening each, for `bench.memory_probe --shape`.

Each waits on a day-long timer after its part, as the bare timer does: the difference of its memory per
cached run from the bare timer's is what that part costs the worker (the SDK and Core, no domain logic).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

from bench.bare import BareTimer

PART_TIMEOUT = timedelta(seconds=30)


@activity.defn(name="shape_policy")
async def policy_document() -> dict[str, Any]:
    """What resolving a policy returns: the shipped policy, as JSON (about the size of the incident's)."""
    from workflows.domain.policy import default_policy

    return default_policy().model_dump(mode="json")


@activity.defn(name="shape_small")
async def small_result() -> str:
    """A result of 10 bytes: what the policy's activity would cost if its result were not 4 KB."""
    return "0123456789"


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


@workflow.defn(name="ShapeSmallActivity")
class ShapeSmallActivity:
    """A regular activity whose result is 10 bytes, then waits: beside ShapeActivity, what the result's size costs."""

    @workflow.run
    async def run(self) -> None:
        await workflow.execute_activity("shape_small", start_to_close_timeout=PART_TIMEOUT)
        await wait_a_day()


def incident_like_attributes() -> TypedSearchAttributes:
    """The eight attributes a straight-opened incident carries, with values of the same size as the probe's."""
    now = workflow.now()
    return TypedSearchAttributes(
        [
            SearchAttributePair(SearchAttributeKey.for_keyword("IncidentSeverity"), "high"),
            SearchAttributePair(SearchAttributeKey.for_keyword("IncidentStatus"), "open"),
            SearchAttributePair(SearchAttributeKey.for_int("IncidentLine"), 1),
            SearchAttributePair(SearchAttributeKey.for_keyword("IncidentCategory"), "tariff_change"),
            SearchAttributePair(SearchAttributeKey.for_keyword("CustomerId"), f"probe-{workflow.info().workflow_id}"),
            SearchAttributePair(SearchAttributeKey.for_datetime("SlaDeadline"), now + timedelta(hours=4)),
            SearchAttributePair(SearchAttributeKey.for_datetime("NextDeadline"), now + timedelta(minutes=15)),
            SearchAttributePair(SearchAttributeKey.for_int("NotificationsFailed"), 0),
        ]
    )


@workflow.defn(name="ShapeUpsert")
class ShapeUpsert:
    """Started without search attributes, upserts an incident's eight in its first task, then waits: beside
    BareTimer+attrs, whether the worker holds less for attributes upserted than for attributes started with."""

    @workflow.run
    async def run(self) -> None:
        workflow.upsert_search_attributes([pair.key.value_set(pair.value) for pair in incident_like_attributes()])
        await wait_a_day()


WORKFLOWS = [BareTimer, ShapeActivity, ShapeSmallActivity, ShapeLocalActivity, ShapeOpening, ShapeUpsert]
ACTIVITIES: list[Callable[..., Any]] = [policy_document, small_result, notify]
