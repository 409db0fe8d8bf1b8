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
    # A major incident (workflows/domain/outage.py) and the incidents linked to it (linking.py)
    NOT_ONLY_YOU = "outage.not_only_you"
    OUTAGE_STATUS_UPDATE = "outage.status_update"
    OUTAGE_NEWS = "outage.news"
    OUTAGE_RESOLVED = "outage.resolved"
    OUTAGE_UNLINKED = "outage.unlinked"
    PLANNED_WORKS_AHEAD = "planned_works.ahead"
    PLANNED_WORKS_STARTED = "planned_works.started"
    PLANNED_WORKS_FINISHED = "planned_works.finished"
    LINE_OUTAGE_UNLINKED = "line.outage.unlinked"
    LINE_OUTAGE_SILENT = "line.outage.silent"
    OUTAGE_DECLARED = "outage.line.declared"
    OUTAGE_UPDATE_DUE = "outage.line.update_due"
    OUTAGE_ESCALATED = "outage.line.escalated"
    OUTAGE_FIX_OVERDUE = "outage.line.fix_overdue"
    OUTAGE_FAN_OUT_FAILED = "outage.line.fan_out_failed"


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
    # Seed 002, told right: at once, with a time, and without a word about any other customer.
    Message.NOT_ONLY_YOU: (
        "We know about it: it is not only you. ${summary} Our engineers are fixing it and expect it fixed by "
        "${fix_by}. Your ticket number is ${ticket}; we will tell you as soon as it is fixed."
    ),
    Message.OUTAGE_STATUS_UPDATE: (
        "Update on ${ticket}: the failure in your area is still being fixed; we expect it fixed by ${fix_by}."
    ),
    Message.OUTAGE_NEWS: "Update on ${ticket}: ${news} We expect the failure in your area fixed by ${fix_by}.",
    Message.OUTAGE_RESOLVED: (
        "The failure in your area is fixed (ticket ${ticket}): ${resolution} If anything is still wrong for you, "
        "tell us and we will reopen your ticket."
    ),
    Message.OUTAGE_UNLINKED: (
        "Update on ${ticket}: your case is not part of the failure in your area after all; our line-${line} "
        "specialists are handling it on its own."
    ),
    Message.PLANNED_WORKS_AHEAD: (
        "Planned works in your area (${ticket}) from ${start} to ${end}: ${summary} The service may be "
        "interrupted meanwhile; if anything is still wrong a day after they end, tell us."
    ),
    Message.PLANNED_WORKS_STARTED: "The planned works in your area (${ticket}) have started, until ${end}: ${summary}",
    Message.PLANNED_WORKS_FINISHED: (
        "The planned works in your area (${ticket}) are finished. If anything is still wrong, tell us and we will "
        "look at it."
    ),
    Message.LINE_OUTAGE_UNLINKED: (
        "Incident ${ticket} is no longer part of major incident ${outage} (${reason}): it is line ${line}'s own again "
        "and its SLA runs on."
    ),
    Message.LINE_OUTAGE_SILENT: (
        "Incident ${ticket} has heard nothing from major incident ${outage} since ${since}, past its expected fix "
        "time: it is line ${line}'s own again and its SLA runs on."
    ),
    Message.OUTAGE_DECLARED: (
        "Major incident ${ticket} (${kind}) in ${area}, categories ${categories}: ${summary} Owner ${owner}; "
        "expected fix by ${fix_by}."
    ),
    Message.OUTAGE_UPDATE_DUE: (
        "Major incident ${ticket} (${owner}): no status update since ${since}. Post one with the expected fix time "
        "(incidents outage update)."
    ),
    Message.OUTAGE_ESCALATED: (
        "Major incident ${ticket} in ${area} escalated to line ${line}: ${reason}. ${summary} Owner ${owner}."
    ),
    Message.OUTAGE_FIX_OVERDUE: (
        "Major incident ${ticket} in ${area} is past its expected fix time ${fix_by}: post a new time or resolve it."
    ),
    Message.OUTAGE_FAN_OUT_FAILED: (
        "Major incident ${ticket}: ${what} did not reach its linked incidents (${reason}). "
        "Find them with `incidents list --outage ${ticket}`."
    ),
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
