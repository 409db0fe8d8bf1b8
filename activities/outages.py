"""The major incident's calls on Temporal and on customers: fan-outs by batch operation, its notice on the
outage board, the board read at opening, and planned-works notices to the area's customers.

A fan-out is Temporal's job, not a loop in a workflow task: `StartBatchOperation` with a visibility query
signals every selected incident from the server's own batcher, and this activity only follows the job
until it is done (heartbeating, so a worker that dies mid-way hands the following to a retry, which finds
the job already started under the same id and follows it).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import UTC, timedelta

from temporalio import activity
from temporalio.api.batch.v1 import BatchOperationSignal
from temporalio.api.common.v1 import Payloads, WorkflowExecution
from temporalio.api.enums.v1 import BatchOperationState
from temporalio.api.workflowservice.v1 import (
    DescribeBatchOperationRequest,
    DescribeWorkflowExecutionRequest,
    StartBatchOperationRequest,
)
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowQueryFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from activities.notifications import NotificationActivities
from workflows import search_attributes as sa
from workflows.contracts import Notification
from workflows.domain.inputs import WORKFLOW_TYPE
from workflows.domain.models import IncidentState
from workflows.domain.notice import OutageNotice
from workflows.domain.outage import OUTAGE_BOARD_WORKFLOW_TYPE, outage_board_id
from workflows.outage_contracts import (
    FAN_OUT,
    FAN_OUT_UNAVAILABLE,
    FIND_OUTAGES,
    POST_NOTICE,
    TELL_AREA,
    AreaNotice,
    AreaReport,
    BoardInput,
    FanOutReport,
    FanOutRequest,
    OutageLookup,
)

FOLLOW_EVERY_SECONDS = 0.5
# A sweep waits for the job it follows to be done, then for the incidents that job signalled to act on it:
# until none is left to reach, or the count of those left has not fallen for SWEEP_QUIET (a worker still
# working through the job's signals lowers it every second), or for SWEEP_WAIT_AT_MOST in all.
SWEEP_POLL = timedelta(seconds=1)
SWEEP_QUIET = timedelta(seconds=5)
SWEEP_WAIT_AT_MOST = timedelta(minutes=10)
CONTACT_QUERY_TIMEOUT = timedelta(seconds=5)
BOARD_QUERY_TIMEOUT = timedelta(seconds=2)


class OutageActivities:
    def __init__(self, client: Client, notifier: NotificationActivities) -> None:
        self._client = client
        self._notifier = notifier

    @activity.defn(name=FAN_OUT)
    async def fan_out_to_incidents(self, request: FanOutRequest) -> FanOutReport:
        client = self._client
        if request.follows is not None and not await self._job_exists(request.job_id):
            # Started at once, a sweep of 2,000 resolved incidents signalled 1,481 of them a second time: those
            # whose first signal was still waiting for the worker were still "open" to the sweep's query.
            if await self._job_exists(request.follows):
                with contextlib.suppress(ApplicationError):  # failed: then the sweep is all the more needed
                    await self._follow(request.follows)
            left = await left_to_reach(lambda: self._count(request.query), activity.heartbeat)
            if left == 0:
                return FanOutReport(job_id=request.job_id, total=0, reached=0, failures=0)
        payloads = await client.data_converter.encode([request.payload])
        try:
            await client.workflow_service.start_batch_operation(
                StartBatchOperationRequest(
                    namespace=client.namespace,
                    job_id=request.job_id,
                    reason=f"{request.outage_id}: {request.operation}",
                    visibility_query=request.query,
                    signal_operation=BatchOperationSignal(
                        signal=request.signal, input=Payloads(payloads=payloads), identity=request.outage_id
                    ),
                )
            )
        except RPCError as error:
            if error.status == RPCStatusCode.UNIMPLEMENTED:
                raise _unavailable("offers no batch operations", error) from None
            if error.status != RPCStatusCode.ALREADY_EXISTS:
                raise  # e.g. another batch job holds the namespace's slot: retried with backoff
            # An earlier attempt started this very job: follow it.
        return await self._follow(request.job_id)

    async def _job_exists(self, job_id: str) -> bool:
        client = self._client
        try:
            await client.workflow_service.describe_batch_operation(
                DescribeBatchOperationRequest(namespace=client.namespace, job_id=job_id)
            )
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                return False
            if error.status == RPCStatusCode.UNIMPLEMENTED:
                raise _unavailable("offers no batch operations", error) from None
            raise
        return True

    async def _count(self, query: str) -> int:
        return (await self._client.count_workflows(query)).count

    async def _follow(self, job_id: str) -> FanOutReport:
        client = self._client
        while True:
            job = await client.workflow_service.describe_batch_operation(
                DescribeBatchOperationRequest(namespace=client.namespace, job_id=job_id)
            )
            if job.state == BatchOperationState.BATCH_OPERATION_STATE_COMPLETED:
                return FanOutReport(
                    job_id=job_id,
                    total=job.total_operation_count,
                    reached=job.complete_operation_count,
                    failures=job.failure_operation_count,
                )
            if job.state == BatchOperationState.BATCH_OPERATION_STATE_FAILED:
                raise ApplicationError(f"batch job {job_id} failed: {job.reason}", non_retryable=True)
            activity.heartbeat(job.complete_operation_count)
            await asyncio.sleep(FOLLOW_EVERY_SECONDS)

    @activity.defn(name=POST_NOTICE)
    async def post_outage_notice(self, notice: OutageNotice) -> None:
        """Put the notice on the outage board (starting the board if it is not running)."""
        await self._client.start_workflow(
            OUTAGE_BOARD_WORKFLOW_TYPE,
            BoardInput(),
            id=outage_board_id(activity.info().task_queue),
            task_queue=activity.info().task_queue,
            start_signal="post",
            start_signal_args=[notice],
        )

    @activity.defn(name=FIND_OUTAGES)
    async def find_outages(self, lookup: OutageLookup) -> list[OutageNotice]:
        """The notices on the board that cover this customer's area and category (the intake picks by time)."""
        notices = await board_notices(self._client, activity.info().task_queue)
        return [n for n in notices if n.covers(lookup.area, lookup.category)]

    @activity.defn(name=TELL_AREA)
    async def tell_area(self, notice: AreaNotice) -> AreaReport:
        """Tell every customer with an incident in the area since `recent_since`, once each (by notification id)."""
        since = notice.recent_since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        query = (
            f"WorkflowType = '{WORKFLOW_TYPE}' AND {sa.AREA.name} = '{_quoted(notice.area.path)}'"
            f" AND StartTime > '{since}'"
        )
        latest = await self.area_incidents(query)
        told = unreachable = 0
        for customer, ticket in latest.items():
            try:
                state = await self._state_of(ticket)
            except (RPCError, WorkflowQueryFailedError) as error:
                # One incident nobody serves (its worker gone, its task failing) must not silence the rest.
                activity.logger.warning("planned works: no contact from %s: %s", ticket, error)
                unreachable += 1
                continue
            if state is None or state.contact is None:
                continue
            # The contact goes straight to the notifier: it never enters the major incident's history.
            await self._notifier.deliver(
                Notification(
                    id=f"{notice.notice_id}:{customer}",
                    ticket_id=notice.outage_id,
                    recipient="customer",
                    kind=notice.kind,
                    # In the language and on the clock of the customer's latest incident in the area.
                    message=notice.text_for(state.language, state.time_zone),
                    contact=state.contact,
                )
            )
            told += 1
            activity.heartbeat(told)
        return AreaReport(notice_id=notice.notice_id, customers=told, unreachable=unreachable)

    async def area_incidents(self, query: str) -> dict[str, str]:
        """Each customer's latest incident the visibility `query` selects: customer -> ticket."""
        latest: dict[str, str] = {}  # the listing is newest first
        try:
            async for execution in self._client.list_workflows(query):
                customer = execution.typed_search_attributes.get(sa.CUSTOMER)
                if customer is not None and customer not in latest:
                    latest[customer] = execution.id
        except RPCError as error:
            if error.status == RPCStatusCode.UNIMPLEMENTED:
                raise _unavailable("cannot list the area's incidents", error) from None
            raise
        return latest

    async def _state_of(self, ticket: str) -> IncidentState | None:
        handle = self._client.get_workflow_handle(ticket)
        try:
            # The raw description: its status is all that is needed, and the SDK's decoding of the search
            # attributes fails on the time-skipping server (its datetime lists come back as numbers).
            description = await self._client.workflow_service.describe_workflow_execution(
                DescribeWorkflowExecutionRequest(
                    namespace=self._client.namespace, execution=WorkflowExecution(workflow_id=ticket)
                )
            )
            status = WorkflowExecutionStatus(description.workflow_execution_info.status)
            if status == WorkflowExecutionStatus.RUNNING:
                state: IncidentState = await handle.query(
                    "state", result_type=IncidentState, rpc_timeout=CONTACT_QUERY_TIMEOUT
                )
            elif status == WorkflowExecutionStatus.COMPLETED:
                state = await self._client.get_workflow_handle(ticket, result_type=IncidentState).result()
            else:
                return None
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                return None
            raise
        return state


async def board_notices(client: Client, task_queue: str) -> list[OutageNotice]:
    """What the outage board holds; nothing while no major incident was ever declared.

    Asked on every open with an area, so it answers within BOARD_QUERY_TIMEOUT or not at all: a customer
    is never kept from their ticket by the board (the incident opens unlinked, a sweep links it later)."""
    try:
        notices: list[OutageNotice] = await client.get_workflow_handle(outage_board_id(task_queue)).query(
            "notices", result_type=list[OutageNotice], rpc_timeout=BOARD_QUERY_TIMEOUT
        )
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return []
        raise
    return notices


async def left_to_reach(
    count: Callable[[], Awaitable[int]],
    heartbeat: Callable[[int], None],
    poll: timedelta = SWEEP_POLL,
    quiet: timedelta = SWEEP_QUIET,
    at_most: timedelta = SWEEP_WAIT_AT_MOST,
) -> int:
    """How many incidents a sweep has left to reach, once those a job before it signalled have acted on it:
    `count` polled until it is 0, or its lowest has stood for `quiet`, or `at_most` has passed (heartbeating)."""
    clock = asyncio.get_running_loop().time
    started = clock()
    left = lowest = await count()
    lowest_since = started
    while left > 0 and clock() - lowest_since < quiet.total_seconds() and clock() - started < at_most.total_seconds():
        heartbeat(left)
        await asyncio.sleep(poll.total_seconds())
        left = await count()
        if left < lowest:
            lowest, lowest_since = left, clock()
    return left


def _unavailable(what: str, error: RPCError) -> ApplicationError:
    """A server without what a fan-out needs (batch operations, listing): retrying would not bring it."""
    return ApplicationError(
        f"this Temporal server {what} ({error.message})", type=FAN_OUT_UNAVAILABLE, non_retryable=True
    )


def _quoted(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")
