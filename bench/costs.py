"""What one operation costs, for docs/sizing.md: CPU per process and history per workflow, from this run.

CPU comes from each phase's CPU seconds per process (`phase_cpu_s`, read from /proc around every phase) divided
by the operations the phase made; the phases' own waiting and polling is in it too, so these are upper bounds
of a sort, and only comparable within one run. Histories come from workflows this module runs or finds: a
lifecycle through the intake (opened, acknowledged, resolved, closed), an incident opened straight and waiting
on line 1, one escalated once ((8)'s cached round); (6) has the full critical lifecycle's. For each, Temporal
Cloud's billable actions as its documentation counts them from a history (https://docs.temporal.io/cloud/actions):
a workflow started, a timer started, a search-attribute upsert, a signal, an update, an activity scheduled, and
the local activities of one workflow task as one. Queries are actions too, and are not in a history.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from temporalio.client import WorkflowHistory

from workflows.domain.actions import Acknowledge, Resolve
from workflows.domain.inputs import intake_workflow_id

if TYPE_CHECKING:
    from bench.measures import Bench

# The processes whose CPU an operation costs (the bench's own client is "bench").
SERVER, WORKER, NOTIFY, BARE = "temporal-wal", "incident-worker", "notify", "bare-worker"
INCIDENT_SIDE = (SERVER, WORKER, NOTIFY, "bench")
# Events that are billable actions, one each (Temporal Cloud's list, as history events).
ACTION_EVENTS = {
    "workflow_execution_started",
    "timer_started",
    "upsert_workflow_search_attributes",
    "workflow_execution_signaled",
    "workflow_execution_update_accepted",
    "workflow_execution_update_rejected",
    "activity_task_scheduled",
}  # a child's start and a signal between workflows count once, in the child's or the receiver's history


def history_figures(history: WorkflowHistory) -> dict[str, Any]:
    """Events, workflow tasks, visibility writes and billable actions of one workflow's history."""
    kinds = Counter(
        (event.WhichOneof("attributes") or "?").removesuffix("_event_attributes") for event in history.events
    )
    tasks_with_local_activities = 0
    in_task_with_marker = False
    for event in history.events:
        kind = event.WhichOneof("attributes") or ""
        if kind.startswith("workflow_task_completed"):
            in_task_with_marker = False
        elif kind.startswith("marker_recorded") and not in_task_with_marker:
            tasks_with_local_activities += 1
            in_task_with_marker = True
    closed = any(kind.startswith("workflow_execution_") and kind.endswith(("completed", "failed")) for kind in kinds)
    return {
        "events": len(history.events),
        "workflow_tasks": kinds["workflow_task_completed"],
        "upserts": kinds["upsert_workflow_search_attributes"],
        # The visibility store is written at the start, at each upsert and at the close.
        "visibility_writes": 1 + kinds["upsert_workflow_search_attributes"] + (1 if closed else 0),
        "actions": sum(n for kind, n in kinds.items() if kind in ACTION_EVENTS) + tasks_with_local_activities,
        "kinds": dict(kinds.most_common()),
    }


def per_operation(phase_cpu: dict[str, float], operations: int, processes: tuple[str, ...]) -> dict[str, float]:
    return {process: round(1000 * phase_cpu.get(process, 0.0) / operations, 1) for process in processes}


async def measure(bench: Bench, opened_ticket: str, escalated_ticket: str) -> None:
    """The `costs` figure: CPU ms per operation and process, and the histories of each kind of incident."""
    f, sizes = bench.figures, bench.sizes
    cpu = f["phase_cpu_s"]
    lifecycles = sizes.throughput + sizes.warm  # and those that warmed it up, in (1) as in (2)
    costs: dict[str, Any] = {
        "cpu_ms": {
            "bare_shape_lifecycle": per_operation(cpu["baseline"], lifecycles, (SERVER, BARE, "bench")),
            "lifecycle_through_intake": per_operation(cpu["lifecycles"], lifecycles, INCIDENT_SIDE),
            "incident_opened_straight": per_operation(f["desk_openings_cpu_s"], f["desk_openings"], INCIDENT_SIDE),
            "escalation_cached": {
                SERVER: round(f["evicted_cached_escalation_server_cpu_ms"], 1),
                WORKER: round(f["evicted_cached_escalation_worker_cpu_ms"], 1),
            },
            "escalation_evicted": {
                SERVER: round(f["evicted_escalation_server_cpu_ms"], 1),
                WORKER: round(f["evicted_escalation_worker_cpu_ms"], 1),
            },
            "query_of_an_evicted_incident": {WORKER: round(f["evicted_query_replay_worker_cpu_ms"], 1)},
        },
        "memory_kb_per_cached_incident": round(f["memory_kb_per_incident"], 1),
    }

    # One lifecycle through the intake, as (2) runs them, and the histories it leaves.
    customer = f"cost-{bench.run_id}"
    opened = await bench.service.open(_request(customer))
    await bench.service.act(opened.ticket_id, Acknowledge(agent="ann"))
    await bench.service.act(opened.ticket_id, Resolve(agent="ann", resolution="done"))
    incident = bench.client.get_workflow_handle(opened.ticket_id)
    await incident.result()
    intake = bench.client.get_workflow_handle(intake_workflow_id(customer, "tariff_change"))
    await intake.result()  # it ends once its incident has
    costs["history"] = {
        "lifecycle_incident": history_figures(await incident.fetch_history()),
        "lifecycle_intake": history_figures(await intake.fetch_history()),
        "opened_straight_waiting": history_figures(
            await bench.client.get_workflow_handle(opened_ticket).fetch_history()
        ),
        "opened_and_escalated_once": history_figures(
            await bench.client.get_workflow_handle(escalated_ticket).fetch_history()
        ),
    }
    f["costs"] = costs


def _request(customer: str) -> Any:
    from bench.measures import request

    return request(customer)
