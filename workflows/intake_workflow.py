"""IncidentIntake: one workflow per (customer, category) that makes opening race-free.

Every open for a customer and category goes through this workflow's `open`
update (update-with-start, so the intake exists the moment anyone asks), and
the handler runs under a lock, so two concurrent opens see each other: the
first starts the incident as a child, the second joins it as a recontact ("is
this about the same issue?", seed 003). A joined request reaches the incident
through the incident's own update, with all it carries (its words, a new
contact, a refund), and "joined" is answered only once the incident has
recorded it; a closed incident, or one resolved too long ago, is followed by a
new incident that names it. A repeated request id gets its first ticket back.
The intake completes once its incident closes; the next open starts a new one.
A long-lived intake continues as new, carrying what it remembers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    FailureError,
    TimeoutError,
    WorkflowAlreadyStartedError,
)
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from workflows.contracts import (
        DELIVER_CONTACT,
        INCIDENT_GONE,
        IS_RUNNING,
        POLICY_REFUSED,
        REQUEST_KEY_OF,
        RESOLVE_POLICY,
        ContactDelivery,
    )
    from workflows.domain.actions import CustomerContact
    from workflows.domain.incident import CLOSED, REOPEN_WINDOW_PASSED
    from workflows.domain.inputs import (
        INTAKE_WORKFLOW_TYPE,
        KEEP_REQUEST_IDS,
        IncidentInput,
        IntakeKey,
        IntakeMemory,
        IntakeRequest,
        IntakeResult,
    )
    from workflows.domain.models import ActionResult, OpenIncident
    from workflows.domain.notice import OutageNotice, best_match
    from workflows.domain.policy import Policy, shared
    from workflows.domain.policy_catalogue import PolicyRef
    from workflows.domain.tickets import new_ticket_id, request_key, ticket_for_request
    from workflows.features import OPENING_FEATURES
    from workflows.incident_start import opening_state, start_options
    from workflows.outage_contracts import FIND_OUTAGES, OutageLookup

TICKET_ATTEMPTS = 5
# The refusal type a caller gets when the open incident cannot take what the request carries.
JOIN_REFUSED = "JoinRefused"
# Histories recorded before each change replay the old way at the point of the change.
JOIN_BY_UPDATE = "intake-join-by-update"
EXACT_REQUEST_IDS = "intake-exact-request-ids"
CONTINUES_AS_NEW = "intake-continues-as-new"
# A request that says where the customer is asks the outage board whether a major incident covers it.
OUTAGE_LOOKUP = "intake-outage-lookup"
# A client names the policy (policy_ref) and the intake resolves it; a client's own policy is refused. Asked only
# of a request that carries one, so intakes that opened incidents so before replay as they ran.
POLICY_BY_REFERENCE = "intake-policy-by-reference"
POLICY_LOOKUP_TIMEOUT = timedelta(seconds=10)
# Refusals after which the request deserves an incident of its own, naming the one it follows.
FOLLOW_UP_CODES = frozenset({CLOSED, REOPEN_WINDOW_PASSED, INCIDENT_GONE})
CALL_TIMEOUT = timedelta(seconds=10)
CALL_GIVE_UP_AFTER = timedelta(seconds=60)
BOARD_CALL_TIMEOUT = timedelta(seconds=3)
BOARD_GIVE_UP_AFTER = timedelta(seconds=5)
# A continued intake cannot await the child it started in an earlier run; it asks now and then instead.
CARRIED_CHECK_EVERY = timedelta(hours=6)


@workflow.defn(name=INTAKE_WORKFLOW_TYPE)
class IncidentIntakeWorkflow:
    @workflow.init
    def __init__(self, key: IntakeKey) -> None:
        # What a previous run carried is known before any update handler runs (they may run before `run`).
        carried = key.carried or IntakeMemory()
        self._current: str | None = carried.current
        self._by_request: dict[str, str] = dict(carried.by_request)
        self._served = carried.served
        self._may_continue = True
        # Update handlers interleave at every await; the lock makes "look, then start or join" atomic.
        self._lock = asyncio.Lock()
        self._watchers: set[asyncio.Task[None]] = set()
        # Policies resolved in this run, by reference: asked of the worker once per run, not once per open.
        self._policies: dict[PolicyRef, Policy] = {}

    @workflow.run
    async def run(self, key: IntakeKey) -> None:
        if key.carried is not None and self._current == key.carried.current and self._current is not None:
            self._watch(self._poll_until_closed(self._current))
        # Started by update-with-start, so an update is on its way; stay until its incident closes.
        while True:
            await workflow.wait_condition(
                lambda: (self._served > 0 and self._current is None) or self._history_is_long(key)
            )
            if self._served > 0 and self._current is None:
                break
            if not workflow.patched(CONTINUES_AS_NEW):
                self._may_continue = False  # a history from before: it waited on, and replays so
                continue
            await workflow.wait_condition(workflow.all_handlers_finished)
            workflow.continue_as_new(
                IntakeKey(
                    customer_id=key.customer_id,
                    category=key.category,
                    carried=IntakeMemory(
                        current=self._current,
                        by_request=dict(list(self._by_request.items())[-KEEP_REQUEST_IDS:]),
                        served=self._served,
                    ),
                    history_limit=key.history_limit,
                )
            )
        await workflow.wait_condition(workflow.all_handlers_finished)

    def _history_is_long(self, key: IntakeKey) -> bool:
        if not self._may_continue:
            return False
        info = workflow.info()
        return info.is_continue_as_new_suggested() or info.get_current_history_length() >= key.history_limit

    @workflow.update(name="open")
    async def open(self, intake: IntakeRequest) -> IntakeResult:
        async with self._lock:
            return await self._open_locked(intake)

    async def _open_locked(self, intake: IntakeRequest) -> IntakeResult:
        request = intake.request
        try:
            if request.request_id and request.request_id in self._by_request:
                return IntakeResult(ticket_id=self._by_request[request.request_id], outcome="existing")
            previous: str | None = None
            if self._current is not None:
                joined, previous = await self._join(self._current, intake)
                if joined is not None:
                    return self._remember(request.request_id, joined)
            return self._remember(request.request_id, await self._start_incident(intake, previous))
        finally:
            self._served += 1

    @workflow.query(name="current")
    def current(self) -> str | None:
        return self._current

    def _remember(self, request_id: str | None, result: IntakeResult) -> IntakeResult:
        if request_id:
            self._by_request[request_id] = result.ticket_id
        return result

    async def _join(self, ticket_id: str, intake: IntakeRequest) -> tuple[IntakeResult | None, str | None]:
        """(joined, None), or (None, the ticket a new incident follows); raises when the caller must hear no."""
        request = intake.request
        if not workflow.patched(JOIN_BY_UPDATE):
            try:
                await workflow.get_external_workflow_handle(ticket_id).signal(
                    "customer_contact", {"channel": request.channel.value, "text": request.description}
                )
            except FailureError:
                return None, None
            return IntakeResult(ticket_id=ticket_id, outcome="joined"), None
        contact = CustomerContact(
            channel=request.channel, text=request.description, contact=request.contact, refund=request.refund
        )
        verdict: ActionResult = await workflow.execute_local_activity(
            DELIVER_CONTACT,
            ContactDelivery(ticket_id=ticket_id, contact=contact),
            result_type=ActionResult,
            start_to_close_timeout=CALL_TIMEOUT,
            schedule_to_close_timeout=CALL_GIVE_UP_AFTER,
            summary=f"join {ticket_id}",
        )
        if verdict.accepted:
            return IntakeResult(ticket_id=ticket_id, outcome="joined"), None
        if verdict.code in FOLLOW_UP_CODES:
            return None, ticket_id
        raise ApplicationError(
            f"the open incident {ticket_id} refused what this request carries: {verdict.reason}",
            ticket_id,
            type=JOIN_REFUSED,
            non_retryable=True,
        )

    async def _policy_of(self, intake: IntakeRequest) -> Policy:
        """The policy the request names, as this worker knows it; a request's own policy only in old histories."""
        reference = intake.policy_ref
        if reference is None:
            if intake.policy is not None and not workflow.patched(POLICY_BY_REFERENCE):
                return intake.policy
            raise ApplicationError(
                "a client cannot open an incident under a policy of its own: name one the workers know "
                "(policy_ref: its name and version)",
                type=POLICY_REFUSED,
                non_retryable=True,
            )
        if reference not in self._policies:
            try:
                policy: Policy = await workflow.execute_local_activity(
                    RESOLVE_POLICY,
                    reference,
                    result_type=Policy,
                    start_to_close_timeout=POLICY_LOOKUP_TIMEOUT,
                    summary=f"policy {reference}",
                )
            except ActivityError as error:
                cause = error.cause if error.cause is not None else error
                raise ApplicationError(str(cause), type=POLICY_REFUSED, non_retryable=True) from None
            self._policies[reference] = shared(policy)
        return self._policies[reference]

    async def _start_incident(self, intake: IntakeRequest, previous: str | None) -> IntakeResult:
        request = intake.request
        policy = await self._policy_of(intake)
        outage = await self._outage_for(request)
        for attempt in range(TICKET_ATTEMPTS):
            if request.request_id:
                ticket = ticket_for_request(request.customer_id, request.request_id, attempt)
            else:
                ticket = new_ticket_id(workflow.random())
            # The incident opens at the intake's clock, so the intake knows its opening state exactly.
            opened_at = workflow.now()
            input = IncidentInput(
                ticket_id=ticket,
                request=request,
                policy=policy,
                policy_ref=intake.policy_ref,
                opened_at=opened_at,
                previous_ticket=previous,
                customer_locale=True,
                features=list(OPENING_FEATURES),
                outage=outage,
            )
            opened = opening_state(input)
            assert opened is not None  # an opening time and no carried state: always known here
            try:
                child = await workflow.start_child_workflow(
                    "IncidentWorkflow",
                    input,
                    task_queue=workflow.info().task_queue,
                    parent_close_policy=ParentClosePolicy.ABANDON,
                    **start_options(input, opened),
                )
            except WorkflowAlreadyStartedError:
                if request.request_id:
                    if not workflow.patched(EXACT_REQUEST_IDS):
                        return IntakeResult(ticket_id=ticket, outcome="existing")
                    # The ticket is taken: by this very request (opened before this intake existed), or by
                    # another customer's request whose number collided with ours, which is never answered.
                    if await self._request_key_of(ticket) == request_key(request.customer_id, request.request_id):
                        return IntakeResult(ticket_id=ticket, outcome="existing")
                continue  # a collision: draw the next candidate
            self._current = ticket
            self._watch(self._forget_when_closed(child, ticket))
            return IntakeResult(ticket_id=ticket, outcome="created", state=opened, previous_ticket=previous)
        raise ApplicationError("could not draw a free ticket number", non_retryable=True)

    async def _outage_for(self, request: OpenIncident) -> OutageNotice | None:
        """The major incident the new incident opens linked to: the board's notice covering its area and category."""
        if request.area is None or not workflow.patched(OUTAGE_LOOKUP):
            return None
        try:
            notices: list[OutageNotice] = await workflow.execute_local_activity(
                FIND_OUTAGES,
                OutageLookup(area=request.area, category=request.category),
                result_type=list[OutageNotice],
                # The customer waits for the ticket: ask briefly, and open unlinked rather than late.
                start_to_close_timeout=BOARD_CALL_TIMEOUT,
                schedule_to_close_timeout=BOARD_GIVE_UP_AFTER,
                summary=f"major incident in {request.area.path}?",
            )
        except (ActivityError, TimeoutError) as error:
            # The board out of reach must not keep a customer from a ticket: open it unlinked (the major
            # incident's own sweep, or an agent, links it later).
            workflow.logger.warning("outage board unreachable, opening unlinked: %s", error)
            return None
        return best_match(notices, request.area, request.category, workflow.now())

    async def _request_key_of(self, ticket: str) -> str | None:
        key: str | None = await workflow.execute_local_activity(
            REQUEST_KEY_OF,
            ticket,
            result_type=str,
            start_to_close_timeout=CALL_TIMEOUT,
            schedule_to_close_timeout=CALL_GIVE_UP_AFTER,
            summary=f"whose request is {ticket}",
        )
        return key

    def _watch(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._watchers.add(task)
        task.add_done_callback(self._watchers.discard)

    async def _forget_when_closed(self, child: workflow.ChildWorkflowHandle[object, object], ticket: str) -> None:
        try:
            await child
        except Exception as error:  # a failed or terminated incident is not open either
            workflow.logger.warning("incident %s ended without closing: %r", ticket, error)
        if self._current == ticket:
            self._current = None

    async def _poll_until_closed(self, ticket: str) -> None:
        while self._current == ticket:
            await workflow.sleep(CARRIED_CHECK_EVERY, summary=f"is {ticket} still open?")
            if self._current != ticket:
                return
            running = await workflow.execute_local_activity(
                IS_RUNNING,
                ticket,
                result_type=bool,
                start_to_close_timeout=CALL_TIMEOUT,
                retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=5)),
                summary=f"is {ticket} still open?",
            )
            if not running and self._current == ticket:
                self._current = None
