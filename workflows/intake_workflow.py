"""IncidentIntake: one short-lived workflow per (customer, category) that makes opening race-free.

Every open for a customer and category goes through this workflow's `open`
update (update-with-start, so the intake exists the moment anyone asks), and
the handler runs under a lock, so two concurrent opens see each other: the
first starts the incident as a child, the second joins it as a recontact ("is
this about the same issue?", seed 003). A repeated request id gets its first ticket back. The
intake completes once its incident closes; the next open starts a new one.
"""

from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.exceptions import ApplicationError, FailureError, WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from workflows.domain.inputs import (
        INTAKE_WORKFLOW_TYPE,
        IncidentInput,
        IntakeKey,
        IntakeRequest,
        IntakeResult,
    )
    from workflows.domain.tickets import new_ticket_id, ticket_for_request
    from workflows.incident_start import opening_state, start_options

TICKET_ATTEMPTS = 5


@workflow.defn(name=INTAKE_WORKFLOW_TYPE)
class IncidentIntakeWorkflow:
    def __init__(self) -> None:
        self._current: str | None = None
        self._by_request: dict[str, str] = {}
        self._served = 0
        # Update handlers interleave at every await; the lock makes "look, then start or join" atomic.
        self._lock = asyncio.Lock()

    @workflow.run
    async def run(self, key: IntakeKey) -> None:
        # Started by update-with-start, so an update is on its way; stay until its incident closes.
        await workflow.wait_condition(lambda: self._served > 0 and self._current is None)
        await workflow.wait_condition(workflow.all_handlers_finished)

    @workflow.update(name="open")
    async def open(self, intake: IntakeRequest) -> IntakeResult:
        async with self._lock:
            return await self._open_locked(intake)

    async def _open_locked(self, intake: IntakeRequest) -> IntakeResult:
        request = intake.request
        try:
            if request.request_id and request.request_id in self._by_request:
                return IntakeResult(ticket_id=self._by_request[request.request_id], outcome="existing")
            if self._current is not None and await self._join(self._current, intake):
                return self._remember(request.request_id, IntakeResult(ticket_id=self._current, outcome="joined"))
            return self._remember(request.request_id, await self._start_incident(intake))
        finally:
            self._served += 1

    @workflow.query(name="current")
    def current(self) -> str | None:
        return self._current

    def _remember(self, request_id: str | None, result: IntakeResult) -> IntakeResult:
        if request_id:
            self._by_request[request_id] = result.ticket_id
        return result

    async def _join(self, ticket_id: str, intake: IntakeRequest) -> bool:
        request = intake.request
        try:
            await workflow.get_external_workflow_handle(ticket_id).signal(
                "customer_contact", {"channel": request.channel.value, "text": request.description}
            )
        except FailureError:
            return False  # it closed a moment ago: this contact deserves a new incident
        return True

    async def _start_incident(self, intake: IntakeRequest) -> IntakeResult:
        request = intake.request
        for _ in range(TICKET_ATTEMPTS):
            if request.request_id:
                ticket = ticket_for_request(request.customer_id, request.request_id)
            else:
                ticket = new_ticket_id(workflow.random())
            # The incident opens at the intake's clock, so the intake knows its opening state exactly.
            opened_at = workflow.now()
            input = IncidentInput(ticket_id=ticket, request=request, policy=intake.policy, opened_at=opened_at)
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
                    # The same request was opened before this intake existed (its incident may be closed).
                    return IntakeResult(ticket_id=ticket, outcome="existing")
                continue  # a random ticket number collided: draw another
            self._current = ticket
            self._watcher = asyncio.create_task(self._forget_when_closed(child, ticket))
            return IntakeResult(ticket_id=ticket, outcome="created", state=opened)
        raise ApplicationError("could not draw a free ticket number", non_retryable=True)

    async def _forget_when_closed(self, child: workflow.ChildWorkflowHandle[object, object], ticket: str) -> None:
        try:
            await child
        except Exception as error:  # a failed or terminated incident is not open either
            workflow.logger.warning("incident %s ended without closing: %r", ticket, error)
        if self._current == ticket:
            self._current = None
