"""The major-incident service, as every client of this project uses it: HTTP API, CLI, demo, benchmark.

Declaring starts a `MajorIncident` workflow (`OUT-...`, idempotent by request
id); the owner's actions go through its `act` update (the verdict at once);
reading uses its `state` query, or its result once it is over; the list comes
from visibility (`WorkflowType = 'MajorIncident'`, with the memo each keeps).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel
from temporalio.client import (
    Client,
    WorkflowFailureError,
    WorkflowQueryFailedError,
    WorkflowQueryRejectedError,
    WorkflowUpdateFailedError,
)
from temporalio.common import (
    QueryRejectCondition,
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from workflows import search_attributes as sa
from workflows.domain.inputs import TASK_QUEUE
from workflows.domain.notice import OutageKind, OutageNotice, is_outage_id, new_outage_id, outage_for_request
from workflows.domain.outage import (
    OUTAGE_WORKFLOW_TYPE,
    DeclareOutage,
    OutageAction,
    OutagePolicy,
    OutageState,
    default_outage_policy,
)
from workflows.outage_contracts import OutageActionResult, OutageInput

ID_ATTEMPTS = 5
REQUEST_MEMO = "request_id"


class OutageNotFound(LookupError):
    def __init__(self, outage_id: str) -> None:
        super().__init__(f"no major incident {outage_id}")
        self.outage_id = outage_id


class OutageRefused(Exception):
    def __init__(self, outage_id: str, action: str, reason: str, event_seq: int | None = None) -> None:
        super().__init__(f"{outage_id} refused {action}: {reason}")
        self.outage_id = outage_id
        self.action = action
        self.reason = reason
        self.event_seq = event_seq


@dataclass(frozen=True)
class Declared:
    outcome: Literal["created", "existing"]
    state: OutageState

    @property
    def outage_id(self) -> str:
        return self.state.outage_id


class OutageSummary(BaseModel):
    """One row of the list: what the major incident's memo and search attributes say."""

    outage_id: str
    kind: str | None
    status: str | None
    area: str | None
    categories: list[str]
    summary: str | None
    owner: str | None
    line: int | None
    expected_fix_by: datetime | None
    declared_at: datetime
    execution_status: str


class OutageService:
    def __init__(self, client: Client, policy: OutagePolicy | None = None, task_queue: str = TASK_QUEUE) -> None:
        self.client = client
        self.policy = policy if policy is not None else default_outage_policy()
        self.task_queue = task_queue

    async def declare(self, request: DeclareOutage, owner_line: int = 2) -> Declared:
        """Start the major incident; a repeated request id gets the one it declared back."""
        for attempt in range(ID_ATTEMPTS):
            outage_id = outage_for_request(request.request_id, attempt) if request.request_id else new_outage_id()
            input = OutageInput(outage_id=outage_id, request=request, policy=self.policy, owner_line=owner_line)
            try:
                await self.client.start_workflow(
                    OUTAGE_WORKFLOW_TYPE,
                    input,
                    id=outage_id,
                    task_queue=self.task_queue,
                    id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                    search_attributes=_initial_attributes(outage_id, request, owner_line),
                    static_summary=f"major incident · {request.kind.value.replace('_', ' ')} · {request.area.path}",
                    static_details=f"**{outage_id}**\n\n{request.summary}\n\nIts incidents: `OutageId = '{outage_id}'`",
                    memo={REQUEST_MEMO: request.request_id} if request.request_id else None,
                )
            except WorkflowAlreadyStartedError:
                # Taken: by this very request before, or by another whose id hashed alike (never ours).
                if request.request_id:
                    memo = await (await self._handle(outage_id).describe()).memo()
                    if memo.get(REQUEST_MEMO) == request.request_id:
                        return Declared("existing", await self.state(outage_id))
                continue
            return Declared("created", await self.state(outage_id, wait_for_start=True))
        raise WorkflowAlreadyStartedError(outage_id, OUTAGE_WORKFLOW_TYPE)

    async def state(self, outage_id: str, wait_for_start: bool = False) -> OutageState:
        handle = self._handle(outage_id)
        for attempt in range(50 if wait_for_start else 1):
            try:
                state: OutageState = await handle.query(
                    "state", result_type=OutageState, reject_condition=QueryRejectCondition.NOT_OPEN
                )
                return state
            except RPCError as error:
                if error.status == RPCStatusCode.NOT_FOUND:
                    raise OutageNotFound(outage_id) from None
                raise
            except WorkflowQueryRejectedError:
                break
            except WorkflowQueryFailedError:
                if not wait_for_start or attempt == 49:
                    break
                await asyncio.sleep(0.02)
        # Over: its result is its final state; one that ended without completing is replayed for its last.
        try:
            final: OutageState = await self.client.get_workflow_handle(outage_id, result_type=OutageState).result()
        except WorkflowFailureError:
            replayed: OutageState = await handle.query("state", result_type=OutageState)
            return replayed
        return final

    async def notice(self, outage_id: str) -> OutageNotice:
        """What the major incident tells linked customers now (its workflow must be running)."""
        try:
            notice: OutageNotice = await self._handle(outage_id).query(
                "notice", result_type=OutageNotice, reject_condition=QueryRejectCondition.NOT_OPEN
            )
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                raise OutageNotFound(outage_id) from None
            raise
        except WorkflowQueryRejectedError:
            raise OutageRefused(outage_id, "link", f"{outage_id} is over") from None
        except WorkflowQueryFailedError:
            raise OutageNotFound(outage_id) from None
        return notice

    async def act(self, outage_id: str, action: OutageAction) -> OutageActionResult:
        handle = self._handle(outage_id)
        payload = action.model_dump(mode="json", exclude={"type"})
        try:
            result: OutageActionResult = await handle.execute_update(
                "act", args=[action.type, payload], result_type=OutageActionResult
            )
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                await self.state(outage_id)  # OutageNotFound, or the final state says it is over
                raise OutageRefused(outage_id, action.type, f"{outage_id} is over") from None
            raise
        except WorkflowUpdateFailedError as error:
            raise OutageRefused(outage_id, action.type, f"it could not take it: {error.cause}") from None
        if not result.accepted:
            raise OutageRefused(outage_id, action.type, result.reason or "refused", result.event_seq)
        return result

    async def list(self, running_only: bool = False, limit: int = 100) -> list[OutageSummary]:
        query = f"WorkflowType = '{OUTAGE_WORKFLOW_TYPE}'"
        if running_only:
            query += " AND ExecutionStatus = 'Running'"
        rows: list[OutageSummary] = []
        async for execution in self.client.list_workflows(query, limit=limit):
            memo: Mapping[str, Any] = await execution.memo()
            attributes = execution.typed_search_attributes
            fix_by = memo.get("expected_fix_by")
            rows.append(
                OutageSummary(
                    outage_id=execution.id,
                    kind=memo.get("kind"),
                    status=memo.get("status"),
                    area=memo.get("area"),
                    categories=list(memo.get("categories") or []),
                    summary=memo.get("summary"),
                    owner=memo.get("owner"),
                    line=attributes.get(sa.LINE),
                    expected_fix_by=datetime.fromisoformat(fix_by) if isinstance(fix_by, str) else None,
                    declared_at=execution.start_time,
                    execution_status=execution.status.name.lower() if execution.status else "unknown",
                )
            )
        return rows

    def _handle(self, outage_id: str) -> Any:
        if not is_outage_id(outage_id):
            raise OutageNotFound(outage_id)
        return self.client.get_workflow_handle(outage_id)


def _initial_attributes(outage_id: str, request: DeclareOutage, owner_line: int) -> TypedSearchAttributes:
    """What the major incident carries from its start, so its first task has nothing to upsert."""
    ahead = request.kind is OutageKind.planned_works and request.started_at is not None
    status = "announced" if ahead and request.started_at > datetime.now(UTC) else "active"  # type: ignore[operator]
    return TypedSearchAttributes(
        [
            SearchAttributePair(sa.OUTAGE_ID, outage_id),
            SearchAttributePair(sa.AREA, request.area.prefixes()),
            SearchAttributePair(sa.LINE, owner_line),
            SearchAttributePair(sa.ASSIGNEE, request.owner),
            SearchAttributePair(sa.STATUS, status),
        ]
    )
