"""IncidentWorkflow: one durable execution per customer incident; its id is the ticket number.

The workflow is a thin driver. The pure state machine (`workflows.domain`)
decides; this file feeds it signals, updates, expired deadlines and activity
outcomes, carries out the side effects it returns, keeps one timer for the
incident's earliest deadline, and publishes search attributes and details for
the web UI. It has no execution timeout: an incident ends only when closed.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Coroutine, Sequence
from datetime import timedelta
from typing import Any, Literal, NoReturn

from temporalio import workflow
from temporalio.common import RawValue, RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, RetryState, TimeoutError

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from infra.errors import describe_validation_error
    from infra.payloads import undecodable_reason
    from workflows import search_attributes
    from workflows.contracts import (
        CLAIM_CHARGE,
        CURRENT_CALENDARS,
        FIND_PAYMENT,
        MAKE_PAYMENT,
        NOTIFICATION_REJECTED,
        NOTIFY_RETRY,
        PAYMENT_REJECTED,
        POLICY_REFUSED,
        RESOLVE_POLICY,
        SEND_NOTIFICATIONS,
        CalendarCheck,
        CalendarUpdate,
        ChargeClaim,
        DeliveryReport,
        Notification,
        NotificationBatch,
        PaymentLookup,
        PaymentReceipt,
        PaymentRequest,
    )
    from workflows.domain.actions import CATALOGUE
    from workflows.domain.calendars import AROUND_THE_CLOCK
    from workflows.domain.incident import (
        ANNOUNCE_ACKNOWLEDGEMENT,
        CUSTOMER_LOCALE,
        CUSTOMER_TIME,
        FOLLOW_THROUGH,
        RECONTACT_REOPENS,
        Effect,
        GrantCompensation,
        Incident,
        Notify,
        Outcome,
        PayRefund,
    )
    from workflows.domain.inputs import WORKFLOW_TYPE, IncidentInput, shared_feature_list, shared_features
    from workflows.domain.linking import OUTAGE_ACTIONS, OUTAGE_LINKS
    from workflows.domain.models import MAX_NAME, ActionResult, IncidentState, Money
    from workflows.domain.money import AGENT_AUTHORITY, NEW_KEY_AFTER_LOOKUP
    from workflows.domain.policy import Policy, shared, shared_from_json
    from workflows.domain.policy_catalogue import shared_reference
    from workflows.domain.sla import Deadline
    from workflows.features import (
        CARRY_UNDELIVERED_NOTIFICATIONS,
        CHECK_CALENDARS,
        CLAIM_CHARGES,
        CONTINUE_BY_HISTORY_SIZE,
        MESSAGE_CUSTOMER,
        POLICY_BY_REFERENCE,
        PUBLISH_CLOSED_AS,
        PUBLISH_NEXT_DEADLINE,
        PUBLISH_NOTIFICATIONS_FAILED,
        RESOLVE_POLICY_LOCALLY,
    )
    from workflows.metrics import IncidentMetrics
    from workflows.presentation import current_details, notification_summary

NOTIFY_GIVE_UP_AFTER = timedelta(days=7)
# Past this, retries wait on a durable timer instead of holding the workflow task open, so a failing
# notification endpoint cannot delay the incident's own timers and signals by more than a few seconds.
NOTIFY_LOCAL_RETRY_THRESHOLD = timedelta(seconds=2)
NOTIFY_ATTEMPT_TIMEOUT = timedelta(seconds=5)
PAYMENT_ATTEMPT_TIMEOUT = timedelta(seconds=10)
# Claiming a charge and looking up the ledger: retried (on durable timers past the first seconds) until the
# refund's give-up time, like the payment itself.
MONEY_CALL_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=5))
# Domain events worth a log line (customer contact data is never in an event's data).
LOGGED_EVENTS = frozenset(
    {
        "opened",
        "escalated",
        "sla_breached",
        "acknowledged",
        "resolved",
        "reopened",
        "closed",
        "action_rejected",
        "refund_requested",
        "refund_succeeded",
        "refund_failed",
        "compensation_granted",
        "compensation_failed",
        "notification_failed",
        "customer_recontacted",
        "customer_asked",
        "customer_replied",
        "self_help_answered",
    }
)
# Behaviour a running incident switches on (through `workflow.patched`) the first time it takes the action.
FEATURES_BY_ACTION = {
    "acknowledge": ANNOUNCE_ACKNOWLEDGEMENT,
    "customer_contact": RECONTACT_REOPENS,
    # Refund authority from the acting agent's token, four eyes, settling only approved refunds (money.py).
    "add_refund": AGENT_AUTHORITY,
    "approve_refund": AGENT_AUTHORITY,
    "settle_refund": AGENT_AUTHORITY,
    # After a final no from the provider, a new idempotency key, once the ledger shows nothing paid (money.py).
    "retry_refund": NEW_KEY_AFTER_LOOKUP,
}
# Actions that did not exist before their feature: an incident that refused one as unknown replays that way.
ACTIONS_SINCE = {
    "ask_customer": CUSTOMER_TIME,
    "customer_reply": CUSTOMER_TIME,
    "self_help_worked": CUSTOMER_TIME,
    "self_help_failed": CUSTOMER_TIME,
    "message_customer": MESSAGE_CUSTOMER,
    **dict.fromkeys(OUTAGE_ACTIONS, OUTAGE_LINKS),
}
# An incident opened with the customer's locale was opened by code that already took message_customer.
KNOWN_FROM_OPENING = {MESSAGE_CUSTOMER: CUSTOMER_LOCALE}
# Search attributes added after incidents were already running, each published only under its patch.
PATCHED_ATTRIBUTES = {
    search_attributes.NEXT_DEADLINE.name: PUBLISH_NEXT_DEADLINE,
    search_attributes.NOTIFICATIONS_FAILED.name: PUBLISH_NOTIFICATIONS_FAILED,
    search_attributes.CLOSED_AS.name: PUBLISH_CLOSED_AS,
}
# The domain event log a run carries into the next; older events become counts by type.
KEEP_DOMAIN_EVENTS = 500
# What continue-as-new carries, as JSON, whatever the count: Temporal refuses a payload over 2 MB (500
# notes of 4,000 Cyrillic characters alone weigh 4 MB), and the SDK warns from 512 KiB; this leaves room for
# the payload codec's few bytes. The event log's tail gets what the rest leaves.
CARRIED_INPUT_BUDGET = 384 * 1024
# Of that budget, at most this for notifications still undelivered (an endpoint down for days).
UNDELIVERED_BUDGET = 128 * 1024
POLICY_LOOKUP_TIMEOUT = timedelta(seconds=10)
# Until a worker answers (an unknown policy is refused at once, not retried).
POLICY_LOOKUP_RETRY = RetryPolicy(maximum_interval=timedelta(seconds=10), non_retryable_error_types=[POLICY_REFUSED])
# Calendars' current data (CHECK_CALENDARS): the answer, recorded in the history, counts from the next clock start.
CALENDAR_CHECK_EVERY = timedelta(hours=1)
CALENDAR_CHECK_TIMEOUT = timedelta(seconds=10)


@workflow.defn(name=WORKFLOW_TYPE)
class IncidentWorkflow:
    @workflow.init
    def __init__(self, input: IncidentInput) -> None:
        # The SDK keeps the input for the whole run: its features list (about 1 KB) shared with other runs'.
        input.features = shared_feature_list(input.features)
        self._input = input
        # What the opening code had from the first moment (the start event holds the list): never asked again.
        self._opened_with = input.opening_features()
        self._started_at = workflow.now()
        self._live: Incident | None = None
        self._frozen = b""
        self._frozen_features: frozenset[str] = frozenset()
        self._pending: list[Effect] = []
        self._observed_seq = 0
        # Why the incident cannot open (its policy): the run fails with it, cleanly, before anything happens.
        self._refusal: str | None = None
        policy = self._policy_given(input)
        if policy is not None:
            self._open(policy)
        # else `run` resolves `input.policy_ref` first; handlers wait for the incident to be open.
        self._changed = True
        self._background: set[asyncio.Task[None]] = set()
        self._notifying: set[asyncio.Task[None]] = set()
        # Notifications sent but not yet delivered or given up on, by event seq: what continue-as-new carries.
        self._undelivered: dict[int, Notify] = {}
        self._continuing = False
        self._timer: asyncio.Task[None] | None = None
        self._timer_for: Deadline | None = None
        self._broken: BaseException | None = None
        # The input's calendars are as new as the opening (or the continue-as-new that carried them).
        self._calendars_checked_at = workflow.now()

    # --- opening: under a policy the worker knows ---

    def _policy_given(self, input: IncidentInput) -> Policy | None:
        """The policy in the input when it may be taken as it is; None when `run` must resolve the reference.

        A policy travels in the input from the intake (a parent workflow, which resolved it) and from the run
        this one continues; from a client it is refused, or ignored beside a reference. Incidents started with
        a client's policy before incidents named theirs replay as they ran (`POLICY_BY_REFERENCE`).
        """
        if input.policy is None:
            if input.policy_ref is None:
                self._refusal = "the input names no policy: give policy_ref (the name and version of a policy)"
            return None
        info = workflow.info()
        if info.parent is not None or info.continued_run_id is not None:
            return input.policy
        if input.policy_ref is not None:
            return None
        if workflow.patched(POLICY_BY_REFERENCE):
            self._refusal = (
                "a client cannot open an incident under a policy of its own: name one the workers know "
                "(policy_ref: its name and version)"
            )
            return None
        return input.policy

    async def _open_by_reference(self) -> None:
        """Resolve the named policy (an activity: its answer is recorded) and open under it, or fail the run.

        A local activity when the incident opened with RESOLVE_POLICY_LOCALLY: its opening asks no `patched`.
        Otherwise (incidents opened before, or started without the opening features) a regular activity: its
        result always arrives in a workflow task of its own, on the first run as on a replay, so the `patched`
        markers the opening asks for right after it (follow-through, the published attributes, a waiting
        action's feature) are met at the same point of the history. A local activity's result may come in the
        task that recorded it or in the next, and the replay of the latter failed on the dev server.
        """
        reference = self._input.policy_ref
        if self._refusal is None and reference is not None:
            try:
                # Raw: decoded once per worker for all the incidents (and replays) that resolved the same policy.
                local = RESOLVE_POLICY_LOCALLY in self._opened_with
                execute = workflow.execute_local_activity if local else workflow.execute_activity
                resolved: RawValue = await execute(
                    RESOLVE_POLICY,
                    reference,
                    result_type=RawValue,
                    start_to_close_timeout=POLICY_LOOKUP_TIMEOUT,
                    retry_policy=POLICY_LOOKUP_RETRY,
                    summary=f"policy {reference}",
                )
            except ActivityError as error:
                self._refusal = str(_root_cause(error) or error)
            else:
                self._open(_resolved_policy(resolved))
        if self._refusal is not None:
            raise ApplicationError(
                f"{self._input.ticket_id} not opened: {self._refusal}", type=POLICY_REFUSED, non_retryable=True
            )

    def _open(self, policy: Policy) -> None:
        input = self._input
        input.policy = shared(policy)
        if input.policy_ref is not None:
            input.policy_ref = shared_reference(input.policy_ref)
        if input.carried is not None:
            incident = Incident(input.carried, input.policy, self._opened_with)
            self._pending = incident.resume_effects()
            self._observed_seq = input.carried.event_seq
            input.carried = None  # the SDK keeps the input for the whole run; the state lives on below
        else:
            # Never later than the start: an opening time from the future would push every deadline out.
            opened_at = min(input.opened_at, self._started_at) if input.opened_at else self._started_at
            incident, self._pending = Incident.open(
                input.ticket_id,
                input.request,
                input.policy,
                opened_at,
                self._opened_with,
                previous_ticket=input.previous_ticket,
                outage=input.outage,
            )
        self._live = incident

    @property
    def _policy(self) -> Policy:
        assert self._input.policy is not None, "the incident is open: its policy is known"
        return self._input.policy

    @property
    def _opened(self) -> bool:
        return self._live is not None or bool(self._frozen)

    async def _until_opened(self) -> None:
        if not self._opened:  # an action that came with the start waits for the policy to be resolved
            await workflow.wait_condition(lambda: self._opened)

    # --- the incident: live while it is being worked on, frozen to JSON while it waits ---

    @property
    def _incident(self) -> Incident:
        if self._live is None:
            self._live = Incident(self._thawed_state(), self._policy, self._frozen_features)
        return self._live

    def _thawed_state(self) -> IncidentState:
        return IncidentState.model_validate_json(self._frozen)

    def _freeze(self) -> None:
        """Keep the waiting incident as one JSON string instead of a tree of models.

        An open incident waits in the worker's cache for hours or days; as objects its state costs
        several times its JSON. A replay catching up does not freeze: the next activation would thaw
        it at once, and the two JSON passes per activation were about a tenth of the workflow code's CPU in
        an evicted incident's wake-up (bench/replay_probe.py). It freezes on its first pass past the
        replay, or on a query if nothing new came after it. A thawed incident equals the one frozen
        (tests/unit/test_invariants.py), so a replay that skips the passes decides as the run did.
        """
        if not workflow.unsafe.is_replaying():
            self._freeze_now()

    def _freeze_now(self) -> None:
        if self._live is not None:
            self._frozen = self._live.state.__pydantic_serializer__.to_json(self._live.state)
            self._frozen_features = shared_features(frozenset(self._live.features))
            self._live = None

    @workflow.run
    async def run(self, input: IncidentInput) -> IncidentState:
        if not self._opened:
            await self._open_by_reference()
        while True:
            self._changed = False
            if self._calendars_need_checking():
                await self._check_calendars()
            self._follow_through_when_first_needed()
            self._fire_due_deadlines()
            self._carry_out(self._pending)
            self._publish()
            if self._incident.finished and not self._background:
                break
            if self._history_is_long():
                await self._continue_as_new()
            self._arm_timer()
            self._freeze()
            await workflow.wait_condition(lambda: self._changed or self._timer_fired())
            if self._broken is not None:
                # Not an ApplicationError on purpose: the workflow task fails and is retried (visible in
                # the UI, fixable by a deploy) instead of the incident failing and vanishing.
                raise RuntimeError(f"a background step of the incident failed: {self._broken!r}") from self._broken
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.logger.info("incident closed", extra={"ticket_id": self._incident.t})
        return self._incident.state

    # --- what agents, customers and services send ---

    @workflow.signal(dynamic=True)
    async def receive_signal(self, name: str, args: Sequence[RawValue]) -> None:
        """Every action arrives here by its signal name (acknowledge, escalate, ...).

        One dynamic handler instead of one per action: a handler with a fixed parameter list fails the
        workflow task, forever, when any client sends no payload or two; here that is recorded as a
        rejected action and the incident goes on.
        """
        await self._until_opened()
        if len(args) != 1:
            self._changed = True
            self._incident.reject(
                _bounded_name(name),
                None,
                f"expected exactly one payload (a JSON object), got {len(args)}",
                workflow.now(),
            )
            return
        self._receive(name, args[0])

    @workflow.update(name="act")
    async def act(self, action_type: str, payload: RawValue) -> ActionResult:
        """The same actions as the signals, for callers who want the verdict back at once."""
        await self._until_opened()
        outcome = self._receive(action_type, payload)
        return ActionResult(
            accepted=outcome.accepted,
            reason=outcome.reason,
            code=outcome.code,
            event_seq=outcome.event_seq,
            state=self._incident.state,
        )

    @workflow.query(name="state")
    def state(self) -> IncidentState:
        if not self._opened:
            raise ApplicationError(self._refusal or "the incident is opening: its policy is being resolved")
        if self._live is None:
            # A query must not leave a thawed copy behind: nothing would freeze it again until the next change.
            return self._thawed_state()
        # Live between activations after a replay that nothing new followed (a query woke an evicted incident),
        # or while the run awaits mid-pass (a calendar check): frozen now, as its next pass would have; the run
        # reads it only through `_incident`, which thaws it again, and a thawed incident is the one frozen.
        state = self._live.state
        self._freeze_now()
        return state

    def _receive(self, action_type: str, payload: RawValue) -> Outcome:
        """Parse and apply one action; whatever is wrong with it becomes an `action_rejected` event."""
        now = workflow.now()
        self._changed = True
        action_type = _bounded_name(action_type)
        model = CATALOGUE.get(action_type) if self._knows(action_type) else None
        undecodable = undecodable_reason(payload.payload)
        if undecodable is not None:
            return self._incident.reject(action_type, None, f"payload could not be decoded: {undecodable}", now)
        try:
            data = workflow.payload_converter().from_payload(payload.payload)
        except Exception as error:  # any undecodable payload is the sender's mistake, never the incident's
            return self._incident.reject(action_type, None, f"payload could not be decoded: {error}", now)
        actor = _actor_of(data)
        if model is None:
            return self._incident.reject(action_type, actor, f"unknown action {action_type!r}", now)
        if not isinstance(data, dict):
            return self._incident.reject(
                action_type, actor, f"payload must be a JSON object, got {type(data).__name__}", now
            )
        if data.get("type", action_type) != action_type:
            return self._incident.reject(
                action_type, actor, f"type: {data['type']!r} does not match the action {action_type!r}", now
            )
        try:
            action = model.model_validate({**data, "type": action_type})
        except ValidationError as error:
            return self._incident.reject(action_type, actor, describe_validation_error(error), now)
        feature = FEATURES_BY_ACTION.get(action_type)
        if feature is not None and feature not in self._incident.features and workflow.patched(feature):
            # Incidents that took this action before the feature existed replay without it.
            self._incident.features.add(feature)
        outcome = self._incident.act(action, now)
        self._pending.extend(outcome.effects)
        return outcome

    # --- switching on behaviour that running incidents must replay without ---

    def _knows(self, action_type: str) -> bool:
        """Whether this run takes `action_type`: an action newer than the incident's history is unknown to it."""
        feature = ACTIONS_SINCE.get(action_type)
        features = self._incident.features
        if feature is None or feature in features or KNOWN_FROM_OPENING.get(feature) in features:
            return True
        if workflow.patched(feature):
            features.add(feature)
            return True
        return False

    def _switched_on(self, feature: str) -> bool:
        """Whether this run has `feature`: from its opening, or for an incident opened before it, once asked."""
        return feature in self._opened_with or workflow.patched(feature)

    def _follow_through_when_first_needed(self) -> None:
        """Switch FOLLOW_THROUGH on the first time its rules apply to the incident (they change nothing before).

        The state alone decides when `patched` is asked, so every replay asks at the same point: a new
        incident (or a new run after continue-as-new) gets True there and keeps it; an incident that
        reached that point before the change replays it with False, which the SDK memoizes for the run,
        so it carries on as it ran, with no new timer in its replay. Not asked at open: each `patched`
        also upserts TemporalChangeVersion, and an incident's first task upserts nothing (the intake
        set its attributes), nor do incidents that never need it (a quick fix on line 1).
        """
        incident = self._incident
        if (
            FOLLOW_THROUGH not in incident.features
            and incident.follow_through_matters()
            and workflow.patched(FOLLOW_THROUGH)
        ):
            self._pending.extend(incident.enable(FOLLOW_THROUGH, workflow.now()))

    # --- calendars: a new holiday reaches open incidents ---

    def _calendars_need_checking(self) -> bool:
        """Only while the incident counts working time, and not more often than CALENDAR_CHECK_EVERY."""
        policy, incident = self._policy, self._incident
        return (
            not incident.finished
            and policy.for_severity(incident.state.severity).calendar != AROUND_THE_CLOCK
            and workflow.now() - self._calendars_checked_at >= CALENDAR_CHECK_EVERY
        )

    async def _check_calendars(self) -> None:
        """Take the worker's current data of the policy's calendars: clocks started from here count in it.

        Deadlines already set stay as they are (they are in the state); the answer is a local activity's
        marker in the history, so a replay by a worker that knows other holidays by then does the same.
        """
        self._calendars_checked_at = workflow.now()
        if not self._switched_on(CHECK_CALENDARS):
            return
        policy = self._policy
        check = CalendarCheck(digests={name: calendar.digest() for name, calendar in policy.calendars.items()})
        try:
            update: CalendarUpdate = await workflow.execute_local_activity(
                CURRENT_CALENDARS,
                check,
                result_type=CalendarUpdate,
                start_to_close_timeout=CALENDAR_CHECK_TIMEOUT,
                schedule_to_close_timeout=3 * CALENDAR_CHECK_TIMEOUT,
                summary="current calendars",
            )
        except (ActivityError, ApplicationError, TimeoutError) as error:
            # The calendars the incident has still hold; the next check asks again.
            workflow.logger.warning("calendar check failed", extra={"reason": _failure_reason(error)})
            return
        if not update.calendars:
            return
        workflow.logger.info("calendars changed", extra={"calendars": sorted(update.calendars)})
        self._input.policy = shared(policy.with_calendars(update.calendars))
        if self._live is not None:
            self._live.policy = self._input.policy
            self._live.count_working_time()

    # --- a long life: continue as new with the whole incident ---

    def _history_is_long(self) -> bool:
        info = workflow.info()
        if info.is_continue_as_new_suggested() or info.get_current_history_length() >= self._input.history_limit:
            return True
        # Big signals fill the history's 50 MB long before its event limit; not every server suggests by size.
        too_big = info.get_current_history_size() >= self._input.history_size_limit
        return too_big and self._switched_on(CONTINUE_BY_HISTORY_SIZE)

    async def _continue_as_new(self) -> NoReturn:
        """Start a fresh run carrying the state, its event log (tail) and its clocks' deadlines.

        Nothing in flight is waited for (an endpoint may be down for days while the incident's own
        deadlines fall due): notifications not yet delivered are carried and sent again by the next run
        (same ids, so the receiver drops repeats, and the same give-up time), payments are asked again
        with the same idempotency key (`resume_effects`). What is carried is bounded by size
        (`CARRIED_INPUT_BUDGET`), not only by count.
        """
        if (self._notifying or self._pending) and not self._switched_on(CARRY_UNDELIVERED_NOTIFICATIONS):
            await self._finish_notifications()  # how runs recorded before the patch continued
        else:
            # No local activity may still run when the run ends: Core would record its marker after the
            # continue-as-new command, which the server refuses, and the incident would be stuck
            # (temporalio/sdk-rust#659). So the sending is cancelled and its notifications carried.
            self._continuing = True
            for task in self._notifying:
                task.cancel()
            await workflow.wait_condition(lambda: workflow.all_handlers_finished() and not self._notifying)
            pending = self._with_give_up_time([e for e in self._pending if isinstance(e, Notify)])
            self._undelivered.update((n.event_seq, n) for n in pending)
            self._pending.clear()  # payments among them are asked again by the next run, from the state
        incident, now = self._incident, workflow.now()
        given_up = incident.carry_undelivered(list(self._undelivered.values()), UNDELIVERED_BUDGET, now)
        successor = IncidentInput(
            ticket_id=self._input.ticket_id,
            request=self._input.request,
            policy=self._input.policy,
            policy_ref=self._input.policy_ref,
            history_limit=self._input.history_limit,
            history_size_limit=self._input.history_size_limit,
            features=self._input.features,  # what the opening had, the successor has (nothing, if opened before)
        )
        room = CARRIED_INPUT_BUDGET - len(successor.__pydantic_serializer__.to_json(successor))
        compacted = incident.compact(KEEP_DOMAIN_EVENTS, max_bytes=room)
        successor.carried = incident.state
        workflow.logger.info(
            "continuing as new",
            extra={
                "ticket_id": incident.t,
                "history_length": workflow.info().get_current_history_length(),
                "history_size": workflow.info().get_current_history_size(),
                "events_compacted": compacted,
                "notifications_carried": len(incident.state.undelivered),
                "notifications_given_up": given_up,
            },
        )
        workflow.continue_as_new(successor, search_attributes=workflow.info().typed_search_attributes)

    async def _finish_notifications(self) -> None:
        while True:
            self._carry_out(self._pending)
            await workflow.wait_condition(
                lambda: workflow.all_handlers_finished() and (bool(self._pending) or not self._notifying)
            )
            if not self._pending:
                break

    # --- time ---

    def _timer_fired(self) -> bool:
        return self._timer is not None and self._timer.done() and not self._timer.cancelled()

    def _fire_due_deadlines(self) -> None:
        upcoming = self._incident.next_deadline()
        if upcoming is not None and upcoming.due_at <= workflow.now():
            self._pending.extend(self._incident.advance(workflow.now()))

    def _arm_timer(self) -> None:
        """Keep exactly one timer, for the earliest deadline; replace it only when that deadline moves."""
        upcoming = self._incident.next_deadline()
        if upcoming == self._timer_for and self._timer is not None and not self._timer.done():
            return
        if self._timer is not None and not self._timer.done():
            self._timer.cancel()
        self._timer, self._timer_for = None, upcoming
        if upcoming is None:
            return
        delay = max(upcoming.due_at - workflow.now(), timedelta(milliseconds=1))
        self._timer = asyncio.create_task(workflow.sleep(delay, summary=upcoming.label))

    # --- side effects ---

    def _carry_out(self, effects: list[Effect]) -> None:
        if (
            effects
            and not self._incident.finished
            and self._history_is_long()
            and self._switched_on(CARRY_UNDELIVERED_NOTIFICATIONS)
        ):
            # The run continues as new in this very step: `_continue_as_new` carries these instead, so
            # that no local activity starts now and ends after the run.
            return
        # What the side effects send is read from the state now, so the tasks that wait on them do
        # not hold (or thaw) the incident while they wait.
        notifications = self._with_give_up_time([e for e in effects if isinstance(e, Notify)])
        # One batch per give-up time: the new ones together, those carried from the previous run as they were.
        for give_up_at in sorted({n.give_up_at for n in notifications if n.give_up_at is not None}):
            batch = [n for n in notifications if n.give_up_at == give_up_at]
            self._undelivered.update((n.event_seq, n) for n in batch)
            self._notifying.add(self._spawn(self._notify(batch, self._notification_batch(batch))))
        for effect in effects:
            if isinstance(effect, PayRefund):
                self._spawn(self._pay_refund(effect))
            elif isinstance(effect, GrantCompensation):
                self._spawn(self._grant_compensation(effect))
        effects.clear()

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background_done)
        return task

    def _background_done(self, task: asyncio.Task[None]) -> None:
        self._background.discard(task)
        self._notifying.discard(task)
        self._changed = True
        if not task.cancelled() and task.exception() is not None:
            self._broken = task.exception()

    def _notification_batch(self, effects: list[Notify]) -> NotificationBatch:
        state = self._incident.state
        return NotificationBatch(
            notifications=[
                Notification(
                    id=f"{state.ticket_id}:{effect.event_seq}",
                    ticket_id=state.ticket_id,
                    recipient=effect.recipient,
                    kind=effect.kind,
                    message=effect.message,
                    contact=state.contact if effect.recipient == "customer" else None,
                )
                for effect in effects
            ]
        )

    def _with_give_up_time(self, effects: list[Notify]) -> list[Notify]:
        give_up_at = workflow.now() + NOTIFY_GIVE_UP_AFTER
        return [e if e.give_up_at is not None else dataclasses.replace(e, give_up_at=give_up_at) for e in effects]

    async def _notify(self, effects: list[Notify], batch: NotificationBatch) -> None:
        give_up_at = effects[0].give_up_at
        assert give_up_at is not None, "every notification gets its give-up time before it is sent"
        # At least one attempt, even for a notification carried past its give-up time.
        give_up_after = max(give_up_at - workflow.now(), NOTIFY_ATTEMPT_TIMEOUT)
        try:
            # A local activity: one marker event instead of six, and no server round trip. The receiver
            # drops repeats by notification id, so re-running it after a crash is harmless.
            await workflow.execute_local_activity(
                SEND_NOTIFICATIONS,
                batch,
                result_type=DeliveryReport,
                start_to_close_timeout=NOTIFY_ATTEMPT_TIMEOUT,
                schedule_to_close_timeout=give_up_after,
                retry_policy=NOTIFY_RETRY,
                local_retry_threshold=NOTIFY_LOCAL_RETRY_THRESHOLD,
                summary=notification_summary(effects),
            )
        # A local activity's give-up (its schedule-to-close timeout) arrives as a bare TimeoutError; uncaught,
        # it failed the incident's workflow task forever instead of recording the notification_failed.
        except (ActivityError, ApplicationError, TimeoutError) as error:
            if self._continuing:
                return  # cancelled so that the run can continue as new: the next run sends them again
            reason = _failure_reason(error)
            workflow.logger.warning("notifications gave up", extra={"reason": reason})
            self._pending.extend(
                self._incident.notifications_failed([e.event_seq for e in effects], reason, workflow.now())
            )
        for effect in effects:
            self._undelivered.pop(effect.event_seq, None)

    async def _pay(
        self, kind: Literal["refund", "credit"], key: str, money: Money, summary: str, charge: str | None = None
    ) -> PaymentReceipt:
        """Pay through the provider: the first attempt inline, the retries durable on the server.

        Most payments succeed at once, and a local activity records that as one marker event; a
        failed first attempt hands over to a regular activity whose exponential-backoff retries
        live on the server (no history events per retry) until the policy's give-up time. Both
        send the same idempotency key, so the provider pays at most once.
        """
        # From the input, not the state: this task may wait for days and must not keep the incident thawed.
        request = PaymentRequest(
            kind=kind,
            ticket_id=self._input.ticket_id,
            customer_id=self._input.request.customer_id,
            idempotency_key=key,
            money=money,
            charge=charge,
        )
        try:
            first: PaymentReceipt = await workflow.execute_local_activity(
                MAKE_PAYMENT,
                request,
                result_type=PaymentReceipt,
                start_to_close_timeout=PAYMENT_ATTEMPT_TIMEOUT,
                retry_policy=RetryPolicy(maximum_attempts=1),
                summary=f"{summary}: first attempt",
            )
            return first
        except (ActivityError, ApplicationError) as error:
            if _is_rejection(error):
                raise
            first_failure = _failure_reason(error)
        receipt: PaymentReceipt = await workflow.execute_activity(
            MAKE_PAYMENT,
            request,
            result_type=PaymentReceipt,
            start_to_close_timeout=PAYMENT_ATTEMPT_TIMEOUT,
            schedule_to_close_timeout=self._policy.refund_give_up_after,
            retry_policy=RetryPolicy(
                initial_interval=timedelta(seconds=1),
                backoff_coefficient=2.0,
                maximum_interval=timedelta(minutes=10),
                non_retryable_error_types=[PAYMENT_REJECTED],
            ),
            summary=f"{summary}: retrying ({first_failure})"[:200],
        )
        return receipt

    async def _pay_refund(self, effect: PayRefund) -> None:
        money = effect.money
        try:
            if effect.charge is not None and self._switched_on(CLAIM_CHARGES):
                holder = await self._claim_charge(effect.charge, money)
                if holder != self._input.ticket_id:
                    self._pending.extend(self._incident.refund_refused(holder, workflow.now()))
                    return
            if effect.look_up_key is not None:
                # The provider said a final no to the old key: pay under the new one only if nothing was paid.
                found = await self._find_payment(effect.look_up_key)
                if found.payment is not None:
                    self._pending.extend(
                        self._incident.refund_paid(found.payment.payment_id, workflow.now(), effect.look_up_key)
                    )
                    return
            receipt = await self._pay(
                "refund",
                effect.idempotency_key,
                money,
                f"refund {money.amount:.2f} {money.currency}",
                charge=effect.charge,
            )
        except (ActivityError, ApplicationError, TimeoutError) as error:
            self._pending.extend(
                self._incident.refund_failed(_failure_reason(error), workflow.now(), answered_no=_is_rejection(error))
            )
        else:
            self._pending.extend(self._incident.refund_paid(receipt.payment_id, workflow.now()))

    async def _claim_charge(self, charge: str, money: Money) -> str:
        """The ticket that holds the charge: this incident, or the one that claimed it first."""
        holder: str = await workflow.execute_local_activity(
            CLAIM_CHARGE,
            ChargeClaim(charge=charge, ticket_id=self._input.ticket_id, money=money),
            result_type=str,
            start_to_close_timeout=PAYMENT_ATTEMPT_TIMEOUT,
            schedule_to_close_timeout=self._policy.refund_give_up_after,
            retry_policy=MONEY_CALL_RETRY,
            summary=f"claim charge {charge}"[:200],
        )
        return holder

    async def _find_payment(self, key: str) -> PaymentLookup:
        found: PaymentLookup = await workflow.execute_local_activity(
            FIND_PAYMENT,
            key,
            result_type=PaymentLookup,
            start_to_close_timeout=PAYMENT_ATTEMPT_TIMEOUT,
            schedule_to_close_timeout=self._policy.refund_give_up_after,
            retry_policy=MONEY_CALL_RETRY,
            summary=f"ledger lookup: {key}"[:200],
        )
        return found

    async def _grant_compensation(self, effect: GrantCompensation) -> None:
        money = effect.money
        try:
            receipt = await self._pay(
                "credit", effect.idempotency_key, money, f"compensation credit {money.amount:.2f} {money.currency}"
            )
        except (ActivityError, ApplicationError) as error:
            self._pending.extend(self._incident.compensation_failed(_failure_reason(error), workflow.now()))
        else:
            self._pending.extend(self._incident.compensation_paid(receipt.payment_id, workflow.now()))

    # --- what the web UI and visibility show ---

    def _publish(self) -> None:
        state = self._incident.state
        fresh = [e for e in state.events if e.seq > self._observed_seq]
        if fresh:
            self._observed_seq = fresh[-1].seq
            IncidentMetrics(workflow.metric_meter()).record(state, fresh)
            for event in fresh:
                if event.type.value in LOGGED_EVENTS:
                    # workflow.logger stays silent during replay, so no line is written twice.
                    workflow.logger.info(
                        event.type.value,
                        extra={"ticket_id": state.ticket_id, "line": state.line, "by": event.by, **event.data},
                    )
        current = search_attributes.values_of(state)
        # What the start carried and every upsert since: the SDK's info keeps it, so the incident keeps no copy.
        published = search_attributes.from_typed(workflow.info().typed_search_attributes)
        for attribute, patch_id in PATCHED_ATTRIBUTES.items():
            if current[attribute] != published.get(attribute) and not self._switched_on(patch_id):
                # Incidents that ran before the attribute existed replay without its upserts.
                current[attribute] = published.get(attribute)
        changes = search_attributes.updates(published, current)
        if changes:
            workflow.upsert_search_attributes(changes)
        workflow.set_current_details(current_details(state, self._incident.next_deadline()))


def _resolved_policy(resolved: RawValue) -> Policy:
    """The policy `resolve_policy` answered, as the payload converter would decode it (JSON, validated)."""
    payload = resolved.payload
    if payload.metadata.get("encoding") != b"json/plain":
        return shared(workflow.payload_converter().from_payload(payload, Policy))
    return shared_from_json(payload.data, Policy.model_validate_json)


def _bounded_name(name: str) -> str:
    # A signal or update name comes from any client; the event log keeps a bounded, printable form.
    printable = "".join(c if c.isprintable() else "?" for c in name[:MAX_NAME])
    return printable if len(name) <= MAX_NAME else printable + "…"


def _actor_of(data: Any) -> str | None:
    if isinstance(data, dict):
        for name in ("agent", "by"):
            value = data.get(name)
            if isinstance(value, str) and value.strip():
                return value.strip()[:100]
    return None


def _root_cause(error: ActivityError | ApplicationError | TimeoutError) -> BaseException | None:
    # A regular activity's failure arrives as an ActivityError around the cause; a local activity's
    # may arrive as the cause itself.
    return error.cause if isinstance(error, ActivityError) else error


def _is_rejection(error: ActivityError | ApplicationError | TimeoutError) -> bool:
    cause = _root_cause(error)
    return isinstance(cause, ApplicationError) and cause.type in (PAYMENT_REJECTED, NOTIFICATION_REJECTED)


def _failure_reason(error: ActivityError | ApplicationError | TimeoutError) -> str:
    cause = _root_cause(error)
    if isinstance(cause, ApplicationError):
        if _is_rejection(error):
            return f"rejected: {cause.message}"
        if isinstance(error, ActivityError) and error.retry_state == RetryState.TIMEOUT:
            return f"gave up: retried until the give-up time passed; last error: {cause.message}"
        return f"failed: {cause.message}"
    if isinstance(cause, TimeoutError):
        last_failure = f"; last error: {cause.cause}" if cause.cause else ""
        kind = cause.type.name.lower().replace("_", "-") if cause.type else "activity"
        return f"gave up: {kind} timeout passed{last_failure}"
    return str(cause or error)
