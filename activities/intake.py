"""What the intake asks of an incident through the client: a workflow cannot send an update, or
describe another execution, itself."""

from __future__ import annotations

from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from workflows.contracts import DELIVER_CONTACT, INCIDENT_GONE, IS_RUNNING, REQUEST_KEY_OF, ContactDelivery
from workflows.domain.models import ActionResult, IncidentState
from workflows.domain.tickets import REQUEST_KEY_MEMO, request_key


class IntakeActivities:
    def __init__(self, client: Client) -> None:
        self._client = client

    @activity.defn(name=DELIVER_CONTACT)
    async def deliver_contact(self, delivery: ContactDelivery) -> ActionResult:
        """The joined request, as the incident's own `act` update: answered once it is durably recorded."""
        handle = self._client.get_workflow_handle(delivery.ticket_id)
        try:
            result: ActionResult = await handle.execute_update(
                "act", args=["customer_contact", delivery.contact], result_type=ActionResult
            )
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:  # ended (closed, or failed) since the intake last looked
                return ActionResult(accepted=False, code=INCIDENT_GONE, reason=error.message, event_seq=0)
            raise
        except WorkflowUpdateFailedError as error:
            return ActionResult(accepted=False, code=INCIDENT_GONE, reason=str(error.cause or error), event_seq=0)
        return result

    @activity.defn(name=REQUEST_KEY_OF)
    async def request_key_of(self, ticket_id: str) -> str | None:
        return await request_key_of(self._client, ticket_id)

    @activity.defn(name=IS_RUNNING)
    async def incident_is_running(self, ticket_id: str) -> bool:
        try:
            description = await self._client.get_workflow_handle(ticket_id).describe()
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                return False
            raise
        return description.status == WorkflowExecutionStatus.RUNNING


async def request_key_of(client: Client, ticket_id: str) -> str | None:
    """Which (customer, request id) an existing incident was opened for; None when it has none."""
    handle = client.get_workflow_handle(ticket_id)
    description = await handle.describe()
    memo = await description.memo()
    if REQUEST_KEY_MEMO in memo:
        return str(memo[REQUEST_KEY_MEMO])
    # Opened before the key was kept in the memo: its own state says.
    state = await handle.query("state", result_type=IncidentState)
    return request_key(state.customer_id, state.request_id) if state.request_id else None
