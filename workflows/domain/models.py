"""The incident's public data: what services send, what agents send, what the state query returns.

Field names here are a contract with every client (HTTP, CLI, raw Temporal
signals), so they change only by adding optional fields.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
)
from pydantic_extra_types.currency_code import ISO4217

from workflows.domain.areas import Area
from workflows.domain.notice import OutageLink
from workflows.domain.sla import SlaClock

MAX_NAME = 100
MAX_SHORT_TEXT = 1_000
MAX_TEXT = 4_000
MAX_ID = 128


class Channel(StrEnum):
    phone = "phone"
    chat = "chat"
    email = "email"
    app = "app"


class Severity(StrEnum):
    critical = "critical"
    routine = "routine"
    convenience = "convenience"


class Status(StrEnum):
    open = "open"
    # An agent asked the customer a question: the SLA clocks are paused until the answer.
    waiting_on_customer = "waiting_on_customer"
    resolved = "resolved"
    closed = "closed"


class ClosedAs(StrEnum):
    """How a closed incident ended: what the audit and the metrics count (self_resolved: no agent needed)."""

    resolved = "resolved"
    self_resolved = "self_resolved"
    no_reply = "no_reply"


def _reject_float(value: Any) -> Any:
    # A binary float cannot carry an exact amount of money; make the caller say it as text.
    if isinstance(value, float):
        raise ValueError('write the amount as a decimal string, e.g. "1500.00", not a number')
    return value


Amount = Annotated[
    Decimal,
    BeforeValidator(_reject_float),
    Field(gt=0, max_digits=14, decimal_places=2, description='decimal string, e.g. "1500.00"'),
    PlainSerializer(lambda d: f"{d:.2f}", return_type=str),
]
AgentName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_NAME)]
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_SHORT_TEXT)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_TEXT)]
Identifier = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_ID, pattern=r"^[A-Za-z0-9._:@-]+$"),
]
Category = Annotated[str, StringConstraints(strip_whitespace=True, to_lower=True, pattern=r"^[a-z][a-z0-9_]{0,63}$")]
Line = Annotated[int, Field(ge=1, le=3)]

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^\+?[0-9][0-9 ()-]{5,24}$")


def _email_or_phone(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if _EMAIL.match(value) or _PHONE.match(value):
        return value
    raise ValueError("must be an e-mail address or a phone number")


ContactAddress = Annotated[
    Annotated[str, StringConstraints(strip_whitespace=True, max_length=254)] | None, AfterValidator(_email_or_phone)
]


class Language(StrEnum):
    """A language customers are written to in: workflows/domain/messages.py has its templates (tests check)."""

    en = "en"
    ru = "ru"


def _known_time_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    # ZoneInfoNotFoundError is a KeyError: uncaught, it would escape validation instead of naming the field.
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"unknown time zone {value!r}: give an IANA name, e.g. Europe/Moscow") from None
    return value


TimeZone = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=64),
    AfterValidator(_known_time_zone),
    Field(description="an IANA time zone, e.g. Europe/Moscow"),
]


class Contract(BaseModel):
    """Base of every inbound model: unknown fields are a mistake worth naming, not silently dropped."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Money(Contract):
    amount: Amount
    currency: ISO4217


class Refund(Money):
    """Money owed back to the customer, and the charge it reverses."""

    charge: Identifier | None = Field(
        default=None,
        description="the payment provider's reference of the charge this refund reverses: a charge is refunded "
        "once, across all incidents (a second refund of it is refused, naming the incident that refunds it)",
    )


class OpenIncident(Contract):
    """What a service (billing, the app, the IVR) sends to open an incident."""

    customer_id: Identifier
    category: Category
    description: Text
    channel: Channel
    contact: ContactAddress = None
    request_id: Identifier | None = None
    refund: Refund | None = None
    new_incident: bool = Field(
        default=False,
        description="open a new incident even if this customer has an open one in the same category",
    )
    language: Language | None = Field(
        default=None, description="the language the customer is written to in; omitted: the policy's default"
    )
    time_zone: TimeZone | None = Field(
        default=None,
        description="the customer's IANA time zone (e.g. Europe/Moscow), for the times they are told; "
        "omitted: the policy's default",
    )
    area: Area | None = Field(
        default=None,
        description="where the customer is (region, city, network segment): an incident opened in the area of a "
        "major incident for its category is linked to it",
    )


# --- the domain event log and the incident state ---


class EventType(StrEnum):
    opened = "opened"
    customer_notified = "customer_notified"
    customer_messaged = "customer_messaged"
    line_notified = "line_notified"
    acknowledged = "acknowledged"
    assigned = "assigned"
    note_added = "note_added"
    escalated = "escalated"
    sla_breached = "sla_breached"
    customer_recontacted = "customer_recontacted"
    severity_changed = "severity_changed"
    refund_requested = "refund_requested"
    refund_approved = "refund_approved"
    refund_succeeded = "refund_succeeded"
    refund_failed = "refund_failed"
    refund_settled = "refund_settled"
    refund_refused = "refund_refused"
    compensation_granted = "compensation_granted"
    compensation_failed = "compensation_failed"
    compensation_settled = "compensation_settled"
    notification_failed = "notification_failed"
    resolved = "resolved"
    callback_scheduled = "callback_scheduled"
    feedback_requested = "feedback_requested"
    feedback_received = "feedback_received"
    reopened = "reopened"
    closed = "closed"
    action_rejected = "action_rejected"
    customer_asked = "customer_asked"
    customer_replied = "customer_replied"
    self_help_answered = "self_help_answered"
    # A major incident (OUT-...) owns this incident's escalation while they are linked.
    outage_linked = "outage_linked"
    outage_update = "outage_update"
    outage_unlinked = "outage_unlinked"


class IncidentEvent(BaseModel):
    seq: int
    type: EventType
    at: datetime
    by: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)


class RefundStatus(StrEnum):
    awaiting_approval = "awaiting_approval"
    approved = "approved"
    requested = "requested"
    paid = "paid"
    failed = "failed"
    settled = "settled"
    # Its charge is refunded by another incident: nothing is paid here.
    refused = "refused"


SETTLED_REFUND = frozenset({RefundStatus.paid, RefundStatus.settled})
# Nothing more to pay or chase: paid, settled by hand, or refused as a second refund of its charge.
FINISHED_REFUND = SETTLED_REFUND | {RefundStatus.refused}


class RefundState(BaseModel):
    amount: Amount
    currency: str
    status: RefundStatus
    idempotency_key: str
    owed_since: datetime
    added_by: str
    approved_by: str | None = None
    # Four eyes (AGENT_AUTHORITY): the first of the two approvals a refund above the policy's threshold needs.
    first_approved_by: str | None = None
    attempts_started: int = 0
    payment_id: str | None = None
    failure: str | None = None
    charge: str | None = Field(default=None, description="the charge it reverses: one refund per charge")
    refunded_by: str | None = Field(default=None, description="refused: the incident that refunds its charge")
    key_answered_no: bool = Field(
        default=False,
        description="the provider answered its idempotency key with a final no, and answers that key so from now "
        "on: a retry pays under a new key, once the ledger says nothing was paid under this one",
    )
    look_up_key: str | None = Field(
        default=None, description="a key answered no, to look up in the ledger before paying under the new key"
    )

    @property
    def money(self) -> Money:
        return Money(amount=self.amount, currency=self.currency)


class CompensationState(BaseModel):
    amount: Amount
    currency: str
    status: Literal["granting", "granted", "failed", "settled"]
    idempotency_key: str
    payment_id: str | None = None
    failure: str | None = None
    reference: str | None = Field(default=None, description="how it was credited by hand (settled)")


class ReminderState(BaseModel):
    """One reminder ladder in progress: what it is about and how many reminders went out."""

    about: str = Field(description="the work it chases, e.g. refund:failed:1; when that changes, it starts over")
    since: datetime
    sent: int = 0


class WaitingState(BaseModel):
    """An agent's question the customer has not answered yet; the SLA clocks are paused meanwhile."""

    question: str
    asked_by: str
    asked_at: datetime
    resume_to: Status = Field(description="the status the customer's answer returns the incident to")
    reminders_sent: int = 0


class FeedbackRecord(BaseModel):
    score: int
    comment: str | None = None
    at: datetime


class UndeliveredNotification(BaseModel):
    """A notification still on its way when a run continued as new; the next run sends it again.

    Its id (`TICKET:event_seq`) stays the same, so the receiver drops it if the earlier run's attempt
    did arrive; `give_up_at` stays too, so an endpoint that never returns is given up on in time.
    """

    event_seq: int
    recipient: Literal["customer", "line_1", "line_2", "line_3"]
    kind: str
    message: str
    give_up_at: datetime


class IncidentState(BaseModel):
    """The whole incident, as the `state` query returns it and continue-as-new carries it."""

    ticket_id: str
    customer_id: str
    category: str
    description: str
    channel: Channel
    contact: str | None = None
    language: Language | None = Field(
        default=None,
        description="what the customer is written to in; none: opened before languages, so English with UTC times",
    )
    time_zone: str | None = Field(default=None, description="the customer's IANA time zone, for the times they read")
    request_id: str | None = None
    previous_ticket: str | None = Field(default=None, description="the customer's earlier incident this one follows")
    severity: Severity
    triage_note: str | None = None
    policy_name: str
    status: Status = Status.open
    line: int = 1
    line_entered_at: datetime
    assignee: str | None = None
    opened_at: datetime
    acknowledged_at: datetime | None = None
    resolved_at: datetime | None = None
    closed_at: datetime | None = None
    closed_as: ClosedAs | None = Field(default=None, description="how it closed; None while it is not closed")
    resolution: str | None = None
    expected_fix_by: datetime
    sla_deadline: datetime | None = Field(default=None, description="when the current line must hand over")
    acknowledge_deadline: datetime | None = None
    next_deadline: datetime | None = None
    sla_breaches: list[str] = Field(default_factory=list)
    awaiting: Literal["callback", "feedback"] | None = None
    close_pending: str | None = Field(default=None, description="why it will close once money has settled")
    refund: RefundState | None = None
    compensation: CompensationState | None = None
    reminders: dict[str, ReminderState] = Field(
        default_factory=dict, description="reminder ladders in progress, by clock (owned, refund, compensation)"
    )
    feedback: FeedbackRecord | None = None
    waiting: WaitingState | None = Field(
        default=None, description="the question the customer owes an answer to (kept while a reply may reopen it)"
    )
    self_help: Literal["offered", "failed"] | None = Field(
        default=None, description="self-help steps went out with the ticket number; failed: the customer said so"
    )
    notes: int = 0
    recontacts: int = 0
    reopen_count: int = 0
    notifications_failed: int = Field(default=0, description="notifications that gave up: nobody was told")
    events: list[IncidentEvent] = Field(default_factory=list)
    events_compacted: int = Field(default=0, description="older events summarised away by continue-as-new")
    compacted_counts: dict[str, int] = Field(
        default_factory=dict, description="how many events of each type were summarised away"
    )
    event_seq: int = 0
    undelivered: list[UndeliveredNotification] = Field(
        default_factory=list,
        description="notifications still undelivered when the previous run continued as new; this run resends them",
    )
    clock: SlaClock = Field(default_factory=SlaClock)
    area: Area | None = None
    outage: OutageLink | None = Field(
        default=None, description="the major incident it is (or was, resolved together) linked to"
    )


class ActionResult(BaseModel):
    accepted: bool
    reason: str | None = None
    code: str | None = Field(default=None, description="why it was refused, for programs: e.g. closed")
    event_seq: int = Field(description="sequence number of the event the action produced (or its rejection)")
    state: IncidentState | None = Field(
        default=None, description="the incident right after the action (or its rejection): no second query needed"
    )
