from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio.client import Client, WorkflowHandle

from workflows.domain.inputs import IncidentInput
from workflows.domain.models import IncidentState, OpenIncident
from workflows.domain.policy import Policy, default_policy
from workflows.domain.tickets import new_ticket_id
from workflows.incident_workflow import IncidentWorkflow


def open_request(**overrides: Any) -> OpenIncident:
    fields: dict[str, Any] = {
        "customer_id": "42",
        "category": "connection_lost",
        "description": "No internet since this morning",
        "channel": "phone",
        "contact": "+7 900 000-00-00",
    }
    fields.update(overrides)
    return OpenIncident.model_validate(fields)


async def start_incident(
    client: Client, task_queue: str, policy: Policy | None = None, **overrides: Any
) -> WorkflowHandle[IncidentWorkflow, IncidentState]:
    ticket = new_ticket_id()
    return await client.start_workflow(
        IncidentWorkflow.run,
        IncidentInput(ticket_id=ticket, request=open_request(**overrides), policy=policy or default_policy()),
        id=ticket,
        task_queue=task_queue,
    )


async def state_of(handle: WorkflowHandle[Any, Any]) -> IncidentState:
    state: IncidentState = await handle.query("state", result_type=IncidentState)
    return state


async def send(handle: WorkflowHandle[Any, Any], action: str, **payload: Any) -> None:
    await handle.signal(action, payload)


def event_types(state: IncidentState) -> list[str]:
    return [e.type.value for e in state.events]


HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)
