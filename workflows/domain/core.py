"""What the incident's lifecycle (incident.py) and its money rules (money.py) share.

The effects the state machine hands the workflow, the rejection it turns into an
`action_rejected` event, the names of behaviour the workflow switches on, the
registry of action handlers, and `IncidentCore`: the state with the plumbing that
records events, notifies and collects effects. No rule of the incident lives here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, TypeVar

from workflows.domain.actions import ActionModel
from workflows.domain.messages import Message, render, render_for_customer
from workflows.domain.models import EventType, IncidentEvent, IncidentState, Money, Status
from workflows.domain.policy import Policy, SeverityPolicy

Recipient = Literal["customer", "line_1", "line_2", "line_3"]

# Behaviour switched on by the workflow once its `workflow.patched` marker says this run may use it.
ANNOUNCE_ACKNOWLEDGEMENT = "announce-acknowledgement"
RECONTACT_REOPENS = "recontact-reopens"
# The customer is written to in their language and time zone (the open request's, else the policy's default).
# Switched on at open by the incident's input, never later: an incident opened before keeps English and UTC.
CUSTOMER_LOCALE = "customer-locale"
# Nothing that is not closed waits without a clock: reminder ladders chase owned-but-idle work on the
# last line, refund tasks and failed credits (a failed credit is a task that holds the closing until
# `settle_compensation`); a reopen promises a new fix time, and compensation judges the reopened fix by it.
FOLLOW_THROUGH = "follow-through"
# Customer time (issue 17): asking the customer, their reply, and their answer to the self-help steps. Actions the
# workflow takes only once its marker says so: an incident that refused them as unknown before replays that way.
CUSTOMER_TIME = "customer-time"

# Refusal codes a program acts on (the intake opens a new incident for these two).
CLOSED = "closed"
REOPEN_WINDOW_PASSED = "reopen_window_passed"


@dataclass(frozen=True)
class Notify:
    recipient: Recipient
    kind: str
    message: str
    event_seq: int
    # When delivery is given up on; None: a fresh notification, the workflow's give-up time from now.
    give_up_at: datetime | None = None


@dataclass(frozen=True)
class PayRefund:
    idempotency_key: str
    money: Money
    # The charge the refund reverses: claimed for this incident before anything is paid (one refund per charge).
    charge: str | None = None
    # A key the provider answered with a final no: the ledger is asked about it before paying under the new key.
    look_up_key: str | None = None


@dataclass(frozen=True)
class GrantCompensation:
    idempotency_key: str
    money: Money


Effect = Notify | PayRefund | GrantCompensation


@dataclass
class Outcome:
    accepted: bool
    event_seq: int
    reason: str | None = None
    code: str | None = None
    effects: list[Effect] = field(default_factory=list)


class Rejected(Exception):
    """Raised inside the state machine only, to turn into an `action_rejected` event."""

    def __init__(self, reason: str, code: str = "invalid") -> None:
        super().__init__(reason)
        self.code = code


def line_recipient(line: int) -> Recipient:
    recipients: dict[int, Recipient] = {1: "line_1", 2: "line_2", 3: "line_3"}
    return recipients[line]


# A handler takes the incident, its action and `now`, and returns the event it recorded or raises Rejected.
Handler = Callable[..., IncidentEvent]
H = TypeVar("H", bound=Handler)
# Each action's handler, by action name: filled by @handles as incident.py and money.py are imported.
HANDLERS: dict[str, Handler] = {}


def handles(model: type[ActionModel]) -> Callable[[H], H]:
    """Mark a function or method as the handler of one catalogue action (workflows/domain/actions.py)."""

    def register(handler: H) -> H:
        HANDLERS[model.action_name()] = handler
        return handler

    return register


class IncidentCore:
    """The incident's state and policy, and the plumbing every rule records and notifies through."""

    def __init__(self, state: IncidentState, policy: Policy, features: frozenset[str] = frozenset()) -> None:
        self.state = state
        self.policy = policy
        self.features = set(features)
        self._effects: list[Effect] = []
        self.count_working_time()

    def count_working_time(self) -> None:
        """Bind the clock to the calendar of the incident's severity (again after the severity changes)."""
        self.state.clock.use(self.policy.working_time(self.state.severity))

    @property
    def rules(self) -> SeverityPolicy:
        return self.policy.for_severity(self.state.severity)

    @property
    def t(self) -> str:
        return self.state.ticket_id

    def record(self, event_type: EventType, now: datetime, by: str | None = None, **data: Any) -> IncidentEvent:
        self.state.event_seq += 1
        event = IncidentEvent(seq=self.state.event_seq, type=event_type, at=now, by=by, data=data)
        self.state.events.append(event)
        return event

    def text(self, message: Message, **fields: object) -> str:
        """The words of a line's `message` about this incident (its ticket filled in)."""
        return render(message, {"ticket": self.t, **fields})

    def notify_customer(self, kind: str, message: Message, now: datetime, **fields: object) -> None:
        """Tell the customer `message`: in their language, its datetime fields in their time zone and its Money
        fields in their locale's format (give them unformatted)."""
        state = self.state
        text = render_for_customer(message, {"ticket": self.t, **fields}, state.language, state.time_zone)
        event = self.record(EventType.customer_notified, now, kind=kind)
        self.emit(Notify("customer", kind, text, event.seq))

    def notify_line(self, line: int, kind: str, text: str, now: datetime, **data: Any) -> None:
        event = self.record(EventType.line_notified, now, line=line, kind=kind, **data)
        self.emit(Notify(line_recipient(line), kind, text, event.seq))

    def emit(self, effect: Effect) -> None:
        self._effects.append(effect)

    def take_effects(self) -> list[Effect]:
        effects, self._effects = self._effects, []
        return effects

    def require_status(self, status: Status, verb: str) -> None:
        if self.state.status is not status:
            raise Rejected(f"cannot {verb}: the incident is {self.state.status.value}, not {status.value}")

    def require_not_closed(self, verb: str) -> None:
        if self.state.status is Status.closed:
            raise Rejected(f"cannot {verb} a closed incident")

    def close_if_pending(self, now: datetime) -> None:
        """Close a resolved incident whose closing waited only on money (the lifecycle's rule)."""
        raise NotImplementedError
