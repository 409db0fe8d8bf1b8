"""MajorIncidentWorkflow: one durable execution per major incident; its id is `OUT-...`.

A thin driver, like incident_workflow.py: the pure machine (workflows/domain/outage.py)
decides; this file feeds it agents' actions (the `act` update), its deadlines
(one timer for the earliest) and the outcomes of its activities, and carries out
what it returns: pages to its line, its notice on the outage board, fan-outs to
its linked incidents and planned-works notices. A fan-out runs as an activity
that starts the server's batch operation and follows it, so linking or resolving
thousands of incidents costs this history a handful of events and never holds
up its own timers. It completes once resolved and every fan-out has finished.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from datetime import timedelta
from typing import Any, NoReturn

from temporalio import workflow
from temporalio.common import RawValue, RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from infra.errors import describe_validation_error
    from workflows import search_attributes as sa
    from workflows.contracts import NOTIFY_RETRY, SEND_NOTIFICATIONS, DeliveryReport, Notification, NotificationBatch
    from workflows.domain.models import MAX_NAME
    from workflows.domain.notice import OutageNotice
    from workflows.domain.outage import (
        MAJOR_INCIDENT_ACTIONS,
        OUTAGE_WORKFLOW_TYPE,
        FanOut,
        Outage,
        OutageEffect,
        OutageOutcome,
        OutageState,
        PageLine,
        PostNotice,
        TellArea,
    )
    from workflows.outage_contracts import (
        FAN_OUT,
        FAN_OUT_UNAVAILABLE,
        POST_NOTICE,
        TELL_AREA,
        AreaNotice,
        AreaReport,
        FanOutReport,
        FanOutRequest,
        OutageActionResult,
        OutageInput,
        fan_out_query,
    )

NOTIFY_GIVE_UP_AFTER = timedelta(days=1)
# A batch job over thousands of incidents takes minutes; its follower heartbeats every half second.
FAN_OUT_TIMEOUT = timedelta(hours=2)
FAN_OUT_HEARTBEAT = timedelta(seconds=30)
FAN_OUT_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=30),
    non_retryable_error_types=[FAN_OUT_UNAVAILABLE],
)
TELL_AREA_TIMEOUT = timedelta(hours=1)


@workflow.defn(name=OUTAGE_WORKFLOW_TYPE)
class MajorIncidentWorkflow:
    @workflow.init
    def __init__(self, input: OutageInput) -> None:
        self._input = input
        effects: list[OutageEffect] = []
        if input.carried is not None:
            # A run continues only with nothing in flight (no fan-out, no post): the state is all there is.
            outage = Outage(input.carried, input.policy)
            input.carried = None
        else:
            outage, effects = Outage.declare(
                input.outage_id, input.request, input.policy, workflow.now(), owner_line=input.owner_line
            )
        self._outage = outage
        self._pending: list[OutageEffect] = effects
        self._changed = True
        self._background: set[asyncio.Task[None]] = set()
        self._timer: asyncio.Task[None] | None = None
        self._timer_for: object = None
        self._notice_to_post: OutageNotice | None = None
        self._posting = False
        self._published: dict[str, object] = sa.from_typed(workflow.info().typed_search_attributes)
        self._memo: dict[str, object] = {}

    @workflow.run
    async def run(self, input: OutageInput) -> OutageState:
        while True:
            self._changed = False
            self._pending.extend(self._outage.advance(workflow.now()))
            self._carry_out()
            self._publish()
            if self._outage.finished and not self._background:
                break
            if self._history_is_long() and not self._background:
                self._continue_as_new()
            self._arm_timer()
            await workflow.wait_condition(lambda: self._changed or self._timer_fired())
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._outage.state

    # --- what agents send ---

    @workflow.update(name="act")
    def act(self, action_type: str, payload: RawValue) -> OutageActionResult:
        """An agent's action (update, escalate, resolve, hand_over): the verdict and the new state at once."""
        outcome = self._receive(action_type, payload)
        return OutageActionResult(
            accepted=outcome.accepted, reason=outcome.reason, event_seq=outcome.event_seq, state=self._outage.state
        )

    @workflow.query(name="state")
    def state(self) -> OutageState:
        return self._outage.state

    @workflow.query(name="notice")
    def notice(self) -> OutageNotice:
        return self._outage.notice()

    def _receive(self, action_type: str, payload: RawValue) -> OutageOutcome:
        now = workflow.now()
        self._changed = True
        action_type = action_type[:MAX_NAME]
        try:
            data = workflow.payload_converter().from_payload(payload.payload)
        except Exception as error:  # any undecodable payload is the sender's mistake, never the major incident's
            return self._outage.reject(action_type, None, f"payload could not be decoded: {error}", now)
        model = MAJOR_INCIDENT_ACTIONS.get(action_type)
        by = data.get("by") if isinstance(data, dict) and isinstance(data.get("by"), str) else None
        if model is None:
            return self._outage.reject(action_type, by, f"unknown action {action_type!r}", now)
        if not isinstance(data, dict):
            return self._outage.reject(
                action_type, by, f"payload must be a JSON object, got {type(data).__name__}", now
            )
        try:
            action = model.model_validate({**data, "type": action_type})
        except ValidationError as error:
            return self._outage.reject(action_type, by, describe_validation_error(error), now)
        outcome = self._outage.act(action, now)
        self._pending.extend(outcome.effects)
        return outcome

    # --- a long life ---

    def _history_is_long(self) -> bool:
        info = workflow.info()
        return info.is_continue_as_new_suggested() or info.get_current_history_length() >= self._input.history_limit

    def _continue_as_new(self) -> NoReturn:
        successor = OutageInput(
            outage_id=self._input.outage_id,
            request=self._input.request,
            policy=self._input.policy,
            owner_line=self._input.owner_line,
            carried=self._outage.state,
            history_limit=self._input.history_limit,
        )
        workflow.continue_as_new(successor, search_attributes=workflow.info().typed_search_attributes)

    # --- time ---

    def _timer_fired(self) -> bool:
        return self._timer is not None and self._timer.done() and not self._timer.cancelled()

    def _arm_timer(self) -> None:
        upcoming = self._outage.next_deadline()
        if upcoming == self._timer_for and self._timer is not None and not self._timer.done():
            return
        if self._timer is not None and not self._timer.done():
            self._timer.cancel()
        self._timer, self._timer_for = None, upcoming
        if upcoming is None:
            return
        clock, due_at = upcoming
        delay = max(due_at - workflow.now(), timedelta(milliseconds=1))
        summary = f"{self._outage.state.outage_id}: {clock.value.replace('_', ' ')}"
        self._timer = asyncio.create_task(workflow.sleep(delay, summary=summary))

    # --- side effects ---

    def _carry_out(self) -> None:
        effects, self._pending = self._pending, []
        pages = [e for e in effects if isinstance(e, PageLine)]
        if pages:
            self._spawn(self._page(pages))
        for effect in effects:
            if isinstance(effect, PostNotice):
                self._post(effect.notice)
            elif isinstance(effect, FanOut):
                self._spawn(self._fan_out(effect))
            elif isinstance(effect, TellArea):
                self._spawn(self._tell_area(effect))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._background.discard(task)
        self._changed = True

    async def _page(self, pages: list[PageLine]) -> None:
        outage_id = self._outage.state.outage_id
        batch = NotificationBatch(
            notifications=[
                Notification(
                    id=f"{outage_id}:{page.event_seq}",
                    ticket_id=outage_id,
                    recipient=f"line_{page.line}",
                    kind=page.kind,
                    message=page.message,
                )
                for page in pages
            ]
        )
        try:
            await workflow.execute_local_activity(
                SEND_NOTIFICATIONS,
                batch,
                result_type=DeliveryReport,
                start_to_close_timeout=timedelta(seconds=5),
                schedule_to_close_timeout=NOTIFY_GIVE_UP_AFTER,
                retry_policy=NOTIFY_RETRY,
                local_retry_threshold=timedelta(seconds=2),
                summary="page " + ", ".join(f"line {p.line}: {p.kind.replace('_', ' ')}" for p in pages),
            )
        except (ActivityError, ApplicationError) as error:
            workflow.logger.warning("major incident page gave up: %s", error)

    def _post(self, notice: OutageNotice) -> None:
        """Posts go out one at a time, the newest last: the board never ends on an older notice."""
        self._notice_to_post = notice
        if not self._posting:
            self._posting = True
            self._spawn(self._post_newest())

    async def _post_newest(self) -> None:
        try:
            while self._notice_to_post is not None:
                notice, self._notice_to_post = self._notice_to_post, None
                await workflow.execute_local_activity(
                    POST_NOTICE,
                    notice,
                    start_to_close_timeout=timedelta(seconds=10),
                    retry_policy=NOTIFY_RETRY,
                    local_retry_threshold=timedelta(seconds=2),
                    summary=f"outage board: {notice.outage_id} {notice.status.value}",
                )
        finally:
            self._posting = False

    async def _fan_out(self, effect: FanOut) -> None:
        request = FanOutRequest(
            job_id=effect.job_id,
            outage_id=self._outage.state.outage_id,
            operation=effect.operation,
            query=fan_out_query(effect.operation, self._outage.notice()),
            signal=effect.signal,
            payload=effect.payload,
            follows=effect.follows,
        )
        try:
            report: FanOutReport = await workflow.execute_activity(
                FAN_OUT,
                request,
                result_type=FanOutReport,
                start_to_close_timeout=FAN_OUT_TIMEOUT,
                heartbeat_timeout=FAN_OUT_HEARTBEAT,
                retry_policy=FAN_OUT_RETRY,
                summary=f"{effect.operation} the linked incidents: batch job {effect.job_id}",
            )
        except ActivityError as error:
            cause = error.cause
            reason = cause.message if isinstance(cause, ApplicationError) else str(cause or error)
            self._pending.extend(self._outage.fan_out_failed(effect.job_id, reason, workflow.now()))
        else:
            self._pending.extend(
                self._outage.fan_out_done(effect.job_id, report.reached, report.failures, workflow.now())
            )

    async def _tell_area(self, effect: TellArea) -> None:
        state = self._outage.state
        notice = AreaNotice(
            notice_id=effect.notice_id,
            outage_id=state.outage_id,
            area=state.area,
            kind=effect.kind,
            message=effect.message,
            recent_since=effect.recent_since,
            template=effect.template,
            texts={name: value for name, value in effect.fields.items() if isinstance(value, str)},
            times={name: value for name, value in effect.fields.items() if not isinstance(value, str)},
        )
        try:
            report: AreaReport = await workflow.execute_activity(
                TELL_AREA,
                notice,
                result_type=AreaReport,
                start_to_close_timeout=TELL_AREA_TIMEOUT,
                heartbeat_timeout=timedelta(minutes=2),
                retry_policy=RetryPolicy(
                    maximum_interval=timedelta(minutes=5),
                    maximum_attempts=20,
                    non_retryable_error_types=[FAN_OUT_UNAVAILABLE],
                ),
                summary=f"planned works: tell the area ({effect.kind.replace('_', ' ')})",
            )
        except ActivityError as error:
            reason = str(error.cause or error)
            self._pending.extend(self._outage.area_tell_failed(effect.notice_id, reason, workflow.now()))
        else:
            self._pending.extend(
                self._outage.area_told(effect.notice_id, report.customers, report.unreachable, workflow.now())
            )

    # --- what the web UI and visibility show ---

    def _publish(self) -> None:
        state = self._outage.state
        upcoming = self._outage.next_deadline()
        current = dict(self._published)
        current.update(
            {
                sa.OUTAGE_ID.name: state.outage_id,
                sa.AREA.name: state.area.prefixes(),
                sa.STATUS.name: state.status.value,
                sa.LINE.name: state.line,
                sa.ASSIGNEE.name: state.owner,
                sa.NEXT_DEADLINE.name: upcoming[1] if upcoming else None,
            }
        )
        changes = sa.updates(self._published, current)
        if changes:
            workflow.upsert_search_attributes(changes)
        self._published = current
        memo: dict[str, object] = {
            "kind": state.kind.value,
            "area": state.area.path,
            "categories": list(state.categories),
            "summary": state.summary,
            "owner": state.owner,
            "status": state.status.value,
            "expected_fix_by": state.expected_fix_by.isoformat(),
        }
        if memo != self._memo:
            workflow.upsert_memo(memo)
            self._memo = memo
        workflow.set_current_details(_details(state, upcoming))


def _details(state: OutageState, upcoming: Any) -> str:
    lines = [
        f"**{state.outage_id}** · {state.kind.value.replace('_', ' ')} · {state.status.value} · line {state.line}",
        f"- area: {state.area.path}; categories: {', '.join(state.categories) or 'all'}",
        f"- owner: {state.owner}; expected fixed by {state.expected_fix_by.strftime('%Y-%m-%d %H:%M UTC')}",
        f"- its incidents: `OutageId = '{state.outage_id}'`",
    ]
    if upcoming is not None:
        lines.append(
            f"- next: {upcoming[0].value.replace('_', ' ')} at {upcoming[1].strftime('%Y-%m-%d %H:%M:%S UTC')}"
        )
    for record in state.fan_outs[-3:]:
        lines.append(f"- fan-out {record.job_id}: {record.status} ({record.reached} reached)")
    return "\n".join(lines)
