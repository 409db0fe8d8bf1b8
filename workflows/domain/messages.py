"""What the incident tells the customer and the support lines: every text, as a named template.

Each message is a key (`Message`) with one template per language, filled in by
field name (`string.Template`: `${ticket}`). The state machine picks the message
and passes the fields, already formatted (`fmt_time`, `fmt_money`); it never
builds a sentence itself. A language is one more entry of `TEMPLATES` with the
same keys and fields (tests check). The English texts are the ones stored
histories and receivers have seen: change one only knowing that its
notifications change with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from string import Template

from workflows.domain.models import Money

ENGLISH = "en"


class Message(StrEnum):
    # To the customer
    TICKET_OPENED = "ticket_opened"
    TICKET_OPENED_CRITICAL = "ticket_opened.critical"
    ACKNOWLEDGED = "acknowledged"
    STATUS_UPDATE = "status_update"
    ESCALATED = "escalated"
    RESOLVED = "resolved"
    FEEDBACK_REQUEST = "feedback_request"
    REOPENED = "reopened"
    REOPENED_WITH_FIX_TIME = "reopened.with_fix_time"
    REFUND_PAID = "refund_paid"
    REFUND_ELSEWHERE = "refund_elsewhere"
    COMPENSATION = "compensation"
    # To a support line
    NEW_INCIDENT = "new_incident"
    ASSIGNED = "assigned"
    ACKNOWLEDGE_OVERDUE = "acknowledge_overdue"
    RENOTIFY = "renotify"
    LINE_ESCALATED_TIMEOUT = "line.escalated.timeout"
    LINE_ESCALATED_MANUAL = "line.escalated.manual"
    CUSTOMER_RECONTACTED = "customer_recontacted"
    CUSTOMER_RECONTACTED_OWNED = "customer_recontacted.owned"
    LINE_REOPENED = "line.reopened"
    CALLBACK_DUE = "callback_due"
    REFUND_APPROVAL = "refund_approval"
    REFUND_SECOND_APPROVAL = "refund_approval.second"
    REFUND_TASK = "refund_task"
    REFUND_REFUSED = "refund_refused"
    COMPENSATION_TASK = "compensation_task"
    COMPENSATION_TASK_TO_SETTLE = "compensation_task.to_settle"
    # Reminder ladders (to the line that owns the waiting work)
    OWNED_REMINDER = "owned_reminder"
    REFUND_AWAITS_APPROVAL_REMINDER = "refund_reminder.awaiting_approval"
    REFUND_FAILED_REMINDER = "refund_reminder.failed"
    REFUND_OVERDUE_REMINDER = "payment_overdue.refund"
    COMPENSATION_FAILED_REMINDER = "compensation_reminder.failed"
    COMPENSATION_OVERDUE_REMINDER = "payment_overdue.compensation"
    REMINDER = "reminder"


_ENGLISH: dict[Message, str] = {
    Message.TICKET_OPENED: "Thank you, we have registered your request. Your ticket number is ${ticket}.",
    Message.TICKET_OPENED_CRITICAL: (
        "We are sorry for the trouble. Your ticket number is ${ticket}. Our specialists are on it and "
        "we expect to fix it by ${fix_by}; we will keep you informed."
    ),
    Message.ACKNOWLEDGED: "A line-${line} specialist is now working on your ticket ${ticket}.",
    Message.STATUS_UPDATE: (
        "Update on ${ticket}: line ${line} is still working on it. We will tell you when it is fixed."
    ),
    Message.ESCALATED: "Update on ${ticket}: your case is now with our line-${line} specialists.",
    Message.RESOLVED: "Your incident ${ticket} is resolved: ${resolution}",
    Message.FEEDBACK_REQUEST: "Is everything fine now with ${ticket}? Please rate our help from 1 to 5.",
    Message.REOPENED: "We have reopened ${ticket} and are working on it again.",
    Message.REOPENED_WITH_FIX_TIME: (
        "We have reopened ${ticket} and are working on it again. We expect to fix it by ${fix_by}."
    ),
    Message.REFUND_PAID: "Your refund of ${money} has been sent (ticket ${ticket}).",
    Message.REFUND_ELSEWHERE: (
        "The refund of ${money} for charge ${charge} is already on its way under ticket ${other}: "
        "it is paid once, there (ticket ${ticket})."
    ),
    Message.COMPENSATION: (
        "We are sorry it took longer than promised: ${money} has been credited to your account (ticket ${ticket})."
    ),
    Message.NEW_INCIDENT: "New ${severity} incident ${ticket} (${category}): ${description}",
    Message.ASSIGNED: "Incident ${ticket} is now with ${assignee} (${agent} assigned it).",
    Message.ACKNOWLEDGE_OVERDUE: (
        "Incident ${ticket} (${severity}) has not been acknowledged since ${opened_at}: please take it."
    ),
    Message.RENOTIFY: "Incident ${ticket} (${severity}) is still waiting on line ${line} since ${since}: please act.",
    Message.LINE_ESCALATED_TIMEOUT: (
        "Incident ${ticket} (${severity}, ${category}) escalated to line ${line}: "
        "its time on the previous line ran out. ${description}"
    ),
    Message.LINE_ESCALATED_MANUAL: (
        "Incident ${ticket} (${severity}, ${category}) escalated to line ${line}: ${agent} escalated it. ${description}"
    ),
    Message.CUSTOMER_RECONTACTED: "Customer got in touch again about ${ticket} via ${channel}: ${text}",
    Message.CUSTOMER_RECONTACTED_OWNED: (
        "Customer got in touch again about ${ticket} (${assignee}) via ${channel}: ${text}"
    ),
    Message.LINE_REOPENED: "Incident ${ticket} reopened: ${reason}",
    Message.CALLBACK_DUE: "Satisfaction callback due for ${ticket}: ask the customer.",
    Message.REFUND_APPROVAL: (
        "Refund of ${money} for ${ticket} is above the line-${line} limit ${limit}: "
        "approve it (approve_refund) or settle it."
    ),
    Message.REFUND_SECOND_APPROVAL: (
        "Refund of ${money} for ${ticket} is above ${threshold} and needs four eyes: ${first} approved it; "
        "another agent whose line may approve it must approve it too (approve_refund)."
    ),
    Message.REFUND_TASK: (
        "Refund of ${money} for ${ticket} (owed since ${owed_since}, payment round ${round}) failed: ${reason}. "
        "Retry it (retry_refund) or record how it was paid (settle_refund)."
    ),
    Message.REFUND_REFUSED: (
        "Refund of ${money} for ${ticket} refused: charge ${charge} is refunded by ${other}, and a charge is "
        "refunded once. Nothing is paid here."
    ),
    Message.COMPENSATION_TASK: (
        "Compensation of ${money} for ${ticket} could not be credited: ${reason}. Credit it by hand."
    ),
    Message.COMPENSATION_TASK_TO_SETTLE: (
        "Compensation of ${money} for ${ticket} could not be credited: ${reason}. Credit it by hand and record it "
        "(settle_compensation with a reference); the incident closes after that."
    ),
    Message.OWNED_REMINDER: (
        "Reminder ${n}: incident ${ticket} (${severity}) is with ${assignee} on line ${line} with no news since "
        "${since}. Add a note on the progress (add_note), resolve it (resolve), or let another agent take it over "
        "(acknowledge)."
    ),
    Message.REFUND_AWAITS_APPROVAL_REMINDER: (
        "Reminder ${n}: the refund of ${money} for ${ticket} has awaited approval since ${owed_since}. "
        "Approve it (approve_refund, line ${line} or above) or record how it was paid (settle_refund)."
    ),
    Message.REFUND_FAILED_REMINDER: (
        "Reminder ${n}: the refund of ${money} for ${ticket} (owed since ${owed_since}) failed: ${reason}. "
        "Retry it (retry_refund) or record how it was paid (settle_refund)."
    ),
    Message.REFUND_OVERDUE_REMINDER: (
        "Reminder ${n}: the refund of ${money} for ${ticket} was sent to the payment provider at ${since} "
        "(round ${round}) and has no outcome past its give-up time. Check the worker and the provider for "
        "idempotency key ${idempotency_key}."
    ),
    Message.COMPENSATION_FAILED_REMINDER: (
        "Reminder ${n}: the goodwill credit of ${money} for ${ticket} could not be paid (${reason}). Credit it by hand "
        "and record it (settle_compensation with a reference); the incident closes after that."
    ),
    Message.COMPENSATION_OVERDUE_REMINDER: (
        "Reminder ${n}: the goodwill credit of ${money} for ${ticket} was sent to the payment provider at ${since} "
        "and has no outcome past its give-up time. Check the worker and the provider for idempotency key "
        "${idempotency_key}."
    ),
    Message.REMINDER: "Reminder ${n}: incident ${ticket} is waiting on line ${line}.",
}

# Every language's templates, by message: the lookup a later language (Babel catalogues) plugs into.
TEMPLATES: dict[str, dict[Message, Template]] = {
    ENGLISH: {message: Template(text) for message, text in _ENGLISH.items()},
}


def render(message: Message, fields: Mapping[str, object], language: str = ENGLISH) -> str:
    """The text of `message` in `language`, its `${field}`s filled in from `fields`; a missing one raises KeyError."""
    return TEMPLATES[language][message].substitute(fields)


def fmt_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def fmt_amount(amount: Decimal, currency: str) -> str:
    return f"{amount:.2f} {currency}"


def fmt_money(money: Money) -> str:
    return fmt_amount(money.amount, money.currency)
