"""The incident service as every client of this project uses it: HTTP API, CLI, demo, benchmark.

A thin layer over the Temporal client: opening goes through the intake
workflow (race-free open-or-join), actions through the incident's `act`
update (so the caller learns at once whether the incident accepted them),
reads through the `state` query, lists through visibility search attributes.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel
from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowQueryRejectedError,
    WorkflowUpdateFailedError,
)
from temporalio.common import QueryRejectCondition, WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from activities.intake import request_key_of
from workflows import search_attributes as sa
from workflows.contracts import POLICY_REFUSED
from workflows.domain.actions import ActionModel, LinkOutage
from workflows.domain.inputs import (
    TASK_QUEUE,
    WORKFLOW_TYPE,
    IncidentInput,
    IntakeKey,
    IntakeRequest,
    IntakeResult,
    intake_workflow_id,
)
from workflows.domain.models import ActionResult, IncidentEvent, IncidentState, OpenIncident, Severity, Status
from workflows.domain.notice import OutageNotice, best_match
from workflows.domain.policy import Policy, load_policy
from workflows.domain.policy_catalogue import reference_of
from workflows.domain.tickets import new_ticket_id, request_key, ticket_for_request
from workflows.features import OPENING_FEATURES
from workflows.incident_start import start_options
from workflows.intake_workflow import JOIN_REFUSED, TICKET_ATTEMPTS

Outcome = Literal["created", "joined", "existing"]
# How long (x 20 ms) a read right after a start waits for the incident to answer: its first task, and for one
# started directly the activity that resolves its policy, on a loaded worker.
WAIT_FOR_START_ATTEMPTS = 500


class IncidentNotFound(LookupError):
    def __init__(self, ticket_id: str) -> None:
        super().__init__(f"no incident {ticket_id}")
        self.ticket_id = ticket_id


class PolicyRefused(Exception):
    """The workers do not know the policy this client opens incidents under (or it gave its own): nothing opened."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ActionRejected(Exception):
    def __init__(self, ticket_id: str, action: str, reason: str, event_seq: int | None = None) -> None:
        super().__init__(f"{ticket_id} rejected {action}: {reason}")
        self.ticket_id = ticket_id
        self.action = action
        self.reason = reason
        self.event_seq = event_seq


@dataclass(frozen=True)
class Opened:
    outcome: Outcome
    state: IncidentState

    @property
    def ticket_id(self) -> str:
        return self.state.ticket_id

    @property
    def created(self) -> bool:
        return self.outcome == "created"


class IncidentSummary(BaseModel):
    """One row of a visibility search: what the search attributes say, without asking the workflow."""

    ticket_id: str
    severity: str | None
    status: str | None
    line: int | None
    category: str | None
    customer_id: str | None
    sla_deadline: datetime | None
    assignee: str | None
    opened_at: datetime
    execution_status: str
    outage_id: str | None = None


def visibility_query(
    status: Status | str | None = None,
    severity: Severity | str | None = None,
    line: int | None = None,
    customer_id: str | None = None,
    category: str | None = None,
    outage_id: str | None = None,
) -> str:
    # Values are validated enums, ints or identifiers restricted to [A-Za-z0-9._:@-], so quoting is safe.
    clauses = [f"WorkflowType = '{WORKFLOW_TYPE}'"]
    if status is not None:
        clauses.append(f"{sa.STATUS.name} = '{Status(status).value}'")
    if severity is not None:
        clauses.append(f"{sa.SEVERITY.name} = '{Severity(severity).value}'")
    if line is not None:
        clauses.append(f"{sa.LINE.name} = {int(line)}")
    if customer_id is not None:
        clauses.append(f"{sa.CUSTOMER.name} = '{_quoted(customer_id)}'")
    if category is not None:
        clauses.append(f"{sa.CATEGORY.name} = '{_quoted(category)}'")
    if outage_id is not None:
        clauses.append(f"{sa.OUTAGE_ID.name} = '{_quoted(outage_id)}'")
    return " AND ".join(clauses)


def _quoted(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


class IncidentService:
    def __init__(self, client: Client, policy: Policy | None = None, task_queue: str = TASK_QUEUE) -> None:
        self.client = client
        # Incidents open under this policy by its name and version (the workers resolve it: a client's own copy
        # governs nothing); the copy computes what the start shows before the incident's first task.
        self.policy = policy if policy is not None else load_policy()
        self.policy_ref = reference_of(self.policy)
        self.task_queue = task_queue

    # --- opening ---

    async def open(self, request: OpenIncident) -> Opened:
        if request.new_incident:
            result = await self._start_directly(request)
            try:
                state = await self.state(result.ticket_id, wait_for_start=True)
            except WorkflowQueryFailedError:
                refusal = await self._policy_refusal(result.ticket_id)
                if refusal is None:
                    raise
                raise PolicyRefused(refusal) from None
            return Opened(result.outcome, state)
        else:
            result = await self._open_through_intake(request)
            if result.state is not None:  # created: the intake knows the incident as opened
                return Opened(result.outcome, result.state)
        return Opened(result.outcome, await self.state(result.ticket_id, wait_for_start=True))

    async def _open_through_intake(self, request: OpenIncident) -> IntakeResult:
        intake = IntakeRequest(request=request, policy_ref=self.policy_ref)
        for attempt in range(3):
            operation: WithStartWorkflowOperation[Any, Any] = WithStartWorkflowOperation(
                "IncidentIntake",
                IntakeKey(customer_id=request.customer_id, category=request.category),
                id=intake_workflow_id(request.customer_id, request.category),
                task_queue=self.task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            )
            try:
                result: IntakeResult = await self.client.execute_update_with_start_workflow(
                    "open", intake, start_workflow_operation=operation, result_type=IntakeResult
                )
                return result
            except WorkflowUpdateFailedError as error:
                refusal = error.cause
                if isinstance(refusal, ApplicationError) and refusal.type == JOIN_REFUSED:
                    # The customer's open incident cannot take what this request carries: say so, never "joined".
                    raise ActionRejected(
                        intake_workflow_id(request.customer_id, request.category), "open", refusal.message
                    ) from None
                if isinstance(refusal, ApplicationError) and refusal.type == POLICY_REFUSED:
                    raise PolicyRefused(refusal.message) from None
                if attempt == 2:
                    raise
            except RPCError:
                # The intake completed between our lookup and the update (its incident just closed):
                # the next attempt starts a fresh intake.
                if attempt == 2:
                    raise
            await asyncio.sleep(0.05 * (attempt + 1))
        raise AssertionError("unreachable")

    async def _start_directly(self, request: OpenIncident) -> IntakeResult:
        """The caller asked for a new incident: skip the recontact check, keep request-id idempotency."""
        outage = await self._outage_for(request)
        for attempt in range(TICKET_ATTEMPTS):
            if request.request_id:
                ticket = ticket_for_request(request.customer_id, request.request_id, attempt)
            else:
                ticket = new_ticket_id()
            input = IncidentInput(
                ticket_id=ticket,
                request=request,
                policy_ref=self.policy_ref,
                customer_locale=True,
                features=list(OPENING_FEATURES),
                outage=outage,
            )
            try:
                await self.client.start_workflow(
                    WORKFLOW_TYPE,
                    input,
                    task_queue=self.task_queue,
                    id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                    **start_options(input, policy=self.policy),
                )
            except WorkflowAlreadyStartedError:
                # Taken: by this very request before, or by another request whose number collided (never ours).
                if request.request_id and await request_key_of(self.client, ticket) == request_key(
                    request.customer_id, request.request_id
                ):
                    return IntakeResult(ticket_id=ticket, outcome="existing")
                continue
            return IntakeResult(ticket_id=ticket, outcome="created")
        raise WorkflowAlreadyStartedError(ticket, WORKFLOW_TYPE)

    async def _outage_for(self, request: OpenIncident) -> OutageNotice | None:
        """The major incident a new incident opens linked to, as the intake would find it."""
        from activities.outages import board_notices

        if request.area is None:
            return None
        try:
            notices = await board_notices(self.client, self.task_queue)
        except RPCError:
            return None  # the board out of reach never keeps a customer from a ticket
        return best_match(notices, request.area, request.category, datetime.now(UTC))

    async def _policy_refusal(self, ticket_id: str) -> str | None:
        """Why an incident started directly failed to open for its policy; None if it did not fail so."""
        if (await self._describe(ticket_id)).status != WorkflowExecutionStatus.FAILED:
            return None
        try:
            await self.client.get_workflow_handle(ticket_id).result()
        except WorkflowFailureError as error:
            cause = error.cause
            if isinstance(cause, ApplicationError) and cause.type == POLICY_REFUSED:
                return cause.message
        return None

    # --- reading ---

    def handle(self, ticket_id: str) -> WorkflowHandle[Any, Any]:
        return self.client.get_workflow_handle(ticket_id)

    async def state(self, ticket_id: str, wait_for_start: bool = False) -> IncidentState:
        handle = self.handle(ticket_id)
        # Fast path, one round trip: ask the open incident itself. A closed one is not replayed for a
        # query (the server refuses at once); its final state is the workflow's result.
        attempts = WAIT_FOR_START_ATTEMPTS if wait_for_start else 1
        for attempt in range(attempts):
            try:
                state: IncidentState = await handle.query(
                    "state", result_type=IncidentState, reject_condition=QueryRejectCondition.NOT_OPEN
                )
                return state
            except RPCError as error:
                if error.status == RPCStatusCode.NOT_FOUND:
                    raise IncidentNotFound(ticket_id) from None
                raise
            except WorkflowQueryRejectedError:
                break
            except WorkflowQueryFailedError:
                # Right after the start the first workflow task may not have run yet; or this id is
                # not an incident at all (the slow path below tells).
                if attempt == attempts - 1:
                    break
                await asyncio.sleep(0.02)
        return await self._final_state(ticket_id)

    async def _final_state(self, ticket_id: str) -> IncidentState:
        description = await self._describe(ticket_id)
        if description.status == WorkflowExecutionStatus.COMPLETED:
            final: IncidentState = await self.client.get_workflow_handle(ticket_id, result_type=IncidentState).result()
            return final
        # Ended without closing (terminated, failed): replay it for its last state.
        state: IncidentState = await self.handle(ticket_id).query("state", result_type=IncidentState)
        return state

    async def history(self, ticket_id: str) -> list[IncidentEvent]:
        return list((await self.state(ticket_id)).events)

    async def search(
        self,
        status: Status | str | None = None,
        severity: Severity | str | None = None,
        line: int | None = None,
        customer_id: str | None = None,
        category: str | None = None,
        limit: int = 100,
        outage_id: str | None = None,
    ) -> list[IncidentSummary]:
        query = visibility_query(status, severity, line, customer_id, category, outage_id)
        rows: list[IncidentSummary] = []
        async for execution in self.client.list_workflows(query, limit=limit):
            attributes = execution.typed_search_attributes
            rows.append(
                IncidentSummary(
                    ticket_id=execution.id,
                    severity=attributes.get(sa.SEVERITY),
                    status=attributes.get(sa.STATUS),
                    line=attributes.get(sa.LINE),
                    category=attributes.get(sa.CATEGORY),
                    customer_id=attributes.get(sa.CUSTOMER),
                    sla_deadline=attributes.get(sa.SLA_DEADLINE),
                    assignee=attributes.get(sa.ASSIGNEE),
                    opened_at=execution.start_time,
                    execution_status=execution.status.name.lower() if execution.status else "unknown",
                    outage_id=attributes.get(sa.OUTAGE_ID),
                )
            )
        return rows

    # --- acting ---

    async def act(self, ticket_id: str, action: ActionModel) -> ActionResult:
        """Apply an agent's action and return the verdict; a rejection raises ActionRejected."""
        if isinstance(action, LinkOutage) and action.notice is None:
            action = await self._with_notice(ticket_id, action)
        payload = action.model_dump(mode="json", exclude={"type"})
        handle = self.handle(ticket_id)
        try:
            result: ActionResult = await handle.execute_update(
                "act", args=[action.type, payload], result_type=ActionResult
            )
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                await self._describe(ticket_id)
                raise ActionRejected(ticket_id, action.type, "the incident is closed") from None
            raise
        except WorkflowUpdateFailedError as error:
            await self._describe(ticket_id)
            raise ActionRejected(ticket_id, action.type, f"the incident could not take it: {error.cause}") from None
        if not result.accepted:
            raise ActionRejected(ticket_id, action.type, result.reason or "rejected", result.event_seq)
        return result

    async def _with_notice(self, ticket_id: str, action: LinkOutage) -> LinkOutage:
        """A link carries the major incident's notice as it stands now (what the customer will be told)."""
        from starter.outages import OutageNotFound, OutageRefused, OutageService

        await self._describe(ticket_id)  # an unknown ticket is a 404 whatever the outage
        try:
            notice = await OutageService(self.client, task_queue=self.task_queue).notice(action.outage_id)
        except (OutageNotFound, OutageRefused) as error:
            raise ActionRejected(ticket_id, action.type, str(error)) from None
        return action.model_copy(update={"notice": notice})

    async def _describe(self, ticket_id: str) -> WorkflowExecutionDescription:
        """The incident's execution, or IncidentNotFound (also for ids of other workflow types)."""
        try:
            description = await self.handle(ticket_id).describe()
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                raise IncidentNotFound(ticket_id) from None
            raise
        if description.workflow_type != WORKFLOW_TYPE:
            raise IncidentNotFound(ticket_id)
        return description
