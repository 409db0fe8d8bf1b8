"""What the incident tells the customer and the support lines: every text, as a named template.

Each message is a key (`Message`) with one template per language, filled in by
field name (`string.Template`: `${ticket}`). The state machine picks the message
and passes the fields; it never builds a sentence itself. A message is for the
customer (`CUSTOMER_MESSAGES`: written in the customer's language, its dates and
times in the customer's time zone and its amounts in their locale's way, by
Babel) or for a support line (`LINE_MESSAGES`: English, times in UTC). A
language is one more entry of `TEMPLATES` with every customer message and the
same fields (tests check). The English texts are the ones stored histories and
receivers have seen: change one only knowing that its notifications change with
it. An incident opened before languages existed keeps reading them, with the
formats of then (`fmt_time`, `fmt_money`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from string import Template
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date, format_time, get_datetime_format
from babel.numbers import format_currency

from workflows.domain.models import Language, Money

ENGLISH = Language.en.value


class Message(StrEnum):
    # To the customer
    TICKET_OPENED = "ticket_opened"
    TICKET_OPENED_CRITICAL = "ticket_opened.critical"
    ACKNOWLEDGED = "acknowledged"
    STATUS_UPDATE = "status_update"
    ESCALATED = "escalated"
    RESOLVED = "resolved"
    AGENT_MESSAGE = "agent_message"
    FEEDBACK_REQUEST = "feedback_request"
    REOPENED = "reopened"
    REOPENED_WITH_FIX_TIME = "reopened.with_fix_time"
    REFUND_PAID = "refund_paid"
    REFUND_ELSEWHERE = "refund_elsewhere"
    COMPENSATION = "compensation"
    TICKET_OPENED_SELF_HELP = "ticket_opened.self_help"
    TICKET_OPENED_CRITICAL_SELF_HELP = "ticket_opened.critical.self_help"
    SELF_RESOLVED = "self_resolved"
    QUESTION = "question"
    REPLY_RECEIVED = "reply_received"
    REPLY_REMINDER = "reply_reminder"
    CLOSED_NO_REPLY = "closed.no_reply"
    TICKET_PAGE = "ticket_page"  # added to the opening message by the notifier (activities/notifications.py)
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
    LINE_ACKNOWLEDGE_OVERDUE = "acknowledge_overdue.line"
    LINE_SELF_RESOLVED = "line.self_resolved"
    LINE_CUSTOMER_REPLIED = "line.customer_replied"
    LINE_CLOSED_NO_REPLY = "line.closed.no_reply"
    LINE_NO_REPLY_MONEY_OWED = "line.no_reply.money_owed"
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


# Written in the customer's language; every language has each of them (tests check).
CUSTOMER_MESSAGES = frozenset(
    {
        Message.TICKET_OPENED,
        Message.TICKET_OPENED_CRITICAL,
        Message.ACKNOWLEDGED,
        Message.STATUS_UPDATE,
        Message.ESCALATED,
        Message.RESOLVED,
        Message.AGENT_MESSAGE,
        Message.FEEDBACK_REQUEST,
        Message.REOPENED,
        Message.REOPENED_WITH_FIX_TIME,
        Message.REFUND_PAID,
        Message.REFUND_ELSEWHERE,
        Message.COMPENSATION,
        Message.TICKET_OPENED_SELF_HELP,
        Message.TICKET_OPENED_CRITICAL_SELF_HELP,
        Message.SELF_RESOLVED,
        Message.QUESTION,
        Message.REPLY_RECEIVED,
        Message.REPLY_REMINDER,
        Message.CLOSED_NO_REPLY,
        Message.TICKET_PAGE,
        Message.NOT_ONLY_YOU,
        Message.OUTAGE_STATUS_UPDATE,
        Message.OUTAGE_NEWS,
        Message.OUTAGE_RESOLVED,
        Message.OUTAGE_UNLINKED,
        Message.PLANNED_WORKS_AHEAD,
        Message.PLANNED_WORKS_STARTED,
        Message.PLANNED_WORKS_FINISHED,
    }
)
# Written in English, the support lines' language. A new message joins one of the two sets (tests check).
LINE_MESSAGES = frozenset(
    {
        Message.NEW_INCIDENT,
        Message.ASSIGNED,
        Message.ACKNOWLEDGE_OVERDUE,
        Message.RENOTIFY,
        Message.LINE_ESCALATED_TIMEOUT,
        Message.LINE_ESCALATED_MANUAL,
        Message.CUSTOMER_RECONTACTED,
        Message.CUSTOMER_RECONTACTED_OWNED,
        Message.LINE_REOPENED,
        Message.CALLBACK_DUE,
        Message.REFUND_APPROVAL,
        Message.REFUND_SECOND_APPROVAL,
        Message.REFUND_TASK,
        Message.REFUND_REFUSED,
        Message.COMPENSATION_TASK,
        Message.COMPENSATION_TASK_TO_SETTLE,
        Message.OWNED_REMINDER,
        Message.REFUND_AWAITS_APPROVAL_REMINDER,
        Message.REFUND_FAILED_REMINDER,
        Message.REFUND_OVERDUE_REMINDER,
        Message.COMPENSATION_FAILED_REMINDER,
        Message.COMPENSATION_OVERDUE_REMINDER,
        Message.REMINDER,
        Message.LINE_ACKNOWLEDGE_OVERDUE,
        Message.LINE_SELF_RESOLVED,
        Message.LINE_CUSTOMER_REPLIED,
        Message.LINE_CLOSED_NO_REPLY,
        Message.LINE_NO_REPLY_MONEY_OWED,
        Message.LINE_OUTAGE_UNLINKED,
        Message.LINE_OUTAGE_SILENT,
        Message.OUTAGE_DECLARED,
        Message.OUTAGE_UPDATE_DUE,
        Message.OUTAGE_ESCALATED,
        Message.OUTAGE_FIX_OVERDUE,
        Message.OUTAGE_FAN_OUT_FAILED,
    }
)


_ENGLISH: dict[Message, str] = {
    Message.TICKET_OPENED: "Thank you, we have registered your request. Your ticket number is ${ticket}.",
    Message.TICKET_PAGE: "Follow ticket ${ticket} and write to us on its page: ${url}",
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
    Message.AGENT_MESSAGE: "Message from support about your ticket ${ticket}: ${text}",
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
    Message.TICKET_OPENED_SELF_HELP: (
        "Thank you, we have registered your request. Your ticket number is ${ticket}. While our team looks into "
        "it, these steps often fix it:\n${steps}\nIf they do, tell us and we will close the ticket. If they do "
        "not, there is nothing more you need to do: we are already working on it."
    ),
    Message.TICKET_OPENED_CRITICAL_SELF_HELP: (
        "We are sorry for the trouble. Your ticket number is ${ticket}. Our specialists are on it and "
        "we expect to fix it by ${fix_by}; we will keep you informed. Meanwhile, these steps often fix it:\n"
        "${steps}\nIf they do, tell us and we will close the ticket. If they do not, there is nothing more you "
        "need to do: we are already working on it."
    ),
    Message.SELF_RESOLVED: (
        "Glad it works again. We have closed your ticket ${ticket}; if the trouble comes back, contact us and "
        "give the ticket number."
    ),
    Message.QUESTION: (
        "A question about your ticket ${ticket}: ${question}\nPlease reply to this message; we go on as soon as "
        "we have your answer."
    ),
    Message.REPLY_RECEIVED: "Thank you for your answer. We are working on your ticket ${ticket} again.",
    Message.REPLY_REMINDER: (
        "Reminder about your ticket ${ticket}: we still need your answer to our question: ${question}\n"
        "If we do not hear from you by ${close_by}, we will close the ticket."
    ),
    Message.CLOSED_NO_REPLY: (
        "We have closed your ticket ${ticket} because we did not hear back from you. Reply by ${reopen_by} and "
        "we will reopen it and go on where we stopped."
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
    Message.LINE_ACKNOWLEDGE_OVERDUE: (
        "Incident ${ticket} (${severity}) reached line ${line} at ${since} and nobody has taken it: please take it."
    ),
    Message.LINE_SELF_RESOLVED: (
        "Incident ${ticket} is closed: the customer says the self-help steps fixed it. Nothing to do."
    ),
    Message.LINE_CUSTOMER_REPLIED: (
        "The customer answered ${agent}'s question on ${ticket} via ${channel}: ${text}\n"
        "Its SLA clocks run again (waited ${waited})."
    ),
    Message.LINE_CLOSED_NO_REPLY: (
        "Incident ${ticket} is closed: the customer did not answer ${agent}'s question within ${waited}. "
        "A reply by ${reopen_by} reopens it."
    ),
    Message.LINE_NO_REPLY_MONEY_OWED: (
        "The customer did not answer ${agent}'s question on ${ticket} within ${waited}, but ${money} is still owed "
        "to them: it stays open and its SLA clocks run again."
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

_RUSSIAN: dict[Message, str] = {
    Message.TICKET_OPENED: "Спасибо, мы зарегистрировали ваше обращение. Номер заявки: ${ticket}.",
    Message.TICKET_PAGE: "Следить за заявкой ${ticket} и написать нам можно на её странице: ${url}",
    Message.TICKET_OPENED_CRITICAL: (
        "Приносим извинения за неудобства. Номер вашей заявки: ${ticket}. Наши специалисты уже занимаются ею "
        "и рассчитывают всё исправить к ${fix_by}. Мы будем держать вас в курсе."
    ),
    Message.ACKNOWLEDGED: "Специалист ${line}-й линии поддержки уже работает над вашей заявкой ${ticket}.",
    Message.STATUS_UPDATE: (
        "Новости по заявке ${ticket}: специалисты ${line}-й линии продолжают работу. "
        "Мы сообщим вам, как только всё исправим."
    ),
    Message.ESCALATED: "Новости по заявке ${ticket}: мы передали её специалистам ${line}-й линии поддержки.",
    Message.RESOLVED: "Проблема по вашей заявке ${ticket} решена: ${resolution}",
    Message.AGENT_MESSAGE: "Сообщение службы поддержки по заявке ${ticket}: ${text}",
    Message.FEEDBACK_REQUEST: (
        "Всё ли теперь в порядке по заявке ${ticket}? Пожалуйста, оцените нашу помощь по шкале от 1 до 5."
    ),
    Message.REOPENED: "Мы снова открыли заявку ${ticket} и продолжаем работу над ней.",
    Message.REOPENED_WITH_FIX_TIME: (
        "Мы снова открыли заявку ${ticket} и продолжаем работу над ней. Рассчитываем всё исправить к ${fix_by}."
    ),
    Message.REFUND_PAID: "Мы отправили вам возврат ${money} (заявка ${ticket}).",
    Message.REFUND_ELSEWHERE: (
        "Возврат ${money} по платежу ${charge} уже оформлен по заявке ${other}: мы вернём эти деньги один раз, "
        "по ней (заявка ${ticket})."
    ),
    Message.COMPENSATION: (
        "Простите, что решение заняло больше времени, чем мы обещали: мы зачислили на ваш счёт ${money} "
        "(заявка ${ticket})."
    ),
    Message.TICKET_OPENED_SELF_HELP: (
        "Спасибо, мы зарегистрировали ваше обращение. Номер заявки: ${ticket}. Пока наши специалисты "
        "разбираются, попробуйте эти шаги, они часто помогают:\n${steps}\nЕсли помогло, сообщите нам, и мы "
        "закроем заявку. Если нет, больше ничего делать не нужно: мы уже работаем над ней."
    ),
    Message.TICKET_OPENED_CRITICAL_SELF_HELP: (
        "Приносим извинения за неудобства. Номер вашей заявки: ${ticket}. Наши специалисты уже занимаются ею "
        "и рассчитывают всё исправить к ${fix_by}. Мы будем держать вас в курсе. А пока попробуйте эти шаги, "
        "они часто помогают:\n${steps}\nЕсли помогло, сообщите нам, и мы закроем заявку. Если нет, больше "
        "ничего делать не нужно: мы уже работаем над ней."
    ),
    Message.SELF_RESOLVED: (
        "Рады, что всё снова работает. Мы закрыли заявку ${ticket}; если проблема вернётся, свяжитесь с нами "
        "и назовите номер заявки."
    ),
    Message.QUESTION: (
        "Вопрос по вашей заявке ${ticket}: ${question}\nПожалуйста, ответьте на это сообщение: мы продолжим, "
        "как только получим ваш ответ."
    ),
    Message.REPLY_RECEIVED: "Спасибо за ответ. Мы продолжаем работу над заявкой ${ticket}.",
    Message.REPLY_REMINDER: (
        "Напоминаем о заявке ${ticket}: нам всё ещё нужен ваш ответ на вопрос: ${question}\n"
        "Если мы не получим ответа до ${close_by}, заявка будет закрыта."
    ),
    Message.CLOSED_NO_REPLY: (
        "Мы закрыли заявку ${ticket}, потому что не получили от вас ответа. Ответьте до ${reopen_by}, и мы "
        "откроем её снова и продолжим с того места, где остановились."
    ),
    Message.NOT_ONLY_YOU: (
        "Мы знаем о проблеме: она не только у вас. ${summary} Наши инженеры уже устраняют её и рассчитывают "
        "закончить к ${fix_by}. Номер вашей заявки: ${ticket}; мы сообщим, как только всё заработает."
    ),
    Message.OUTAGE_STATUS_UPDATE: (
        "Новости по заявке ${ticket}: сбой в вашем районе ещё устраняется; рассчитываем закончить к ${fix_by}."
    ),
    Message.OUTAGE_NEWS: "Новости по заявке ${ticket}: ${news} Сбой в вашем районе рассчитываем устранить к ${fix_by}.",
    Message.OUTAGE_RESOLVED: (
        "Сбой в вашем районе устранён (заявка ${ticket}): ${resolution} Если у вас что-то всё ещё не работает, "
        "сообщите нам, и мы снова откроем вашу заявку."
    ),
    Message.OUTAGE_UNLINKED: (
        "Новости по заявке ${ticket}: ваш случай всё же не связан со сбоем в вашем районе; им отдельно "
        "занимаются специалисты ${line}-й линии."
    ),
    Message.PLANNED_WORKS_AHEAD: (
        "Плановые работы в вашем районе (${ticket}) с ${start} до ${end}: ${summary} Связь может прерываться; "
        "если через день после окончания работ что-то не будет работать, сообщите нам."
    ),
    Message.PLANNED_WORKS_STARTED: (
        "Плановые работы в вашем районе (${ticket}) начались и продлятся до ${end}: ${summary}"
    ),
    Message.PLANNED_WORKS_FINISHED: (
        "Плановые работы в вашем районе (${ticket}) завершены. Если что-то не работает, сообщите нам, и мы разберёмся."
    ),
}

# Every language's templates, by message: one copy per worker, shared by every incident (never in its state).
TEMPLATES: dict[str, dict[Message, Template]] = {
    language: {message: Template(text) for message, text in texts.items()}
    for language, texts in {Language.en.value: _ENGLISH, Language.ru.value: _RUSSIAN}.items()
}


def render(message: Message, fields: Mapping[str, object], language: str = ENGLISH) -> str:
    """The text of `message` in `language`, its `${field}`s filled in from `fields`; a missing one raises KeyError."""
    # A message a language lacks falls back to English rather than fail the incident's workflow task;
    # the tests keep every customer message in every language.
    template = TEMPLATES[language].get(message) or TEMPLATES[ENGLISH][message]
    return template.substitute(fields)


def language_of(text: str, messages: Iterable[Message]) -> str | None:
    """The language in which one of `messages` was rendered as `text` (by its words before the first field);
    None when none of them was. For a part that sees the text but not the incident (the notifier)."""
    for language, templates in TEMPLATES.items():
        for message in messages:
            template = templates.get(message)
            if template is None:
                continue
            fixed = template.template.split("$", 1)[0]
            if fixed and text.startswith(fixed):
                return language
    return None


OPENING_MESSAGES = (
    Message.TICKET_OPENED,
    Message.TICKET_OPENED_CRITICAL,
    Message.TICKET_OPENED_SELF_HELP,
    Message.TICKET_OPENED_CRITICAL_SELF_HELP,
)


def render_for_customer(
    message: Message, fields: Mapping[str, object], language: str | None, time_zone: str | None
) -> str:
    """The text of `message` as the customer reads it: in `language`, with the datetimes among `fields` in
    `time_zone` and the Money among them in the language's format (other fields as given).

    An incident opened before languages (`language` None) gets the English text with the formats it has
    always sent (UTC times), so its customer reads the same as before.
    """
    if language is None or time_zone is None:
        return render(message, {name: _as_before(value) for name, value in fields.items()})
    return render(message, {name: _for(value, language, time_zone) for name, value in fields.items()}, language)


def _as_before(value: object) -> object:
    if isinstance(value, datetime):
        return fmt_time(value)
    if isinstance(value, Money):
        return fmt_money(value)
    return value


def _for(value: object, language: str, time_zone: str) -> object:
    if isinstance(value, datetime):
        return fmt_local_time(value, language, time_zone)
    if isinstance(value, Money):
        return fmt_local_money(value, language)
    return value


# --- formats ---


def fmt_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def fmt_amount(amount: Decimal, currency: str) -> str:
    return f"{amount:.2f} {currency}"


def fmt_money(money: Money) -> str:
    return fmt_amount(money.amount, money.currency)


_LOCALES = {language.value: Locale.parse(language.value) for language in Language}


def fmt_local_time(moment: datetime, language: str, time_zone: str) -> str:
    """`moment` on the customer's clock, as their language writes a date and time: "December 2, 2026, 12:30 PM"."""
    zone = ZoneInfo(time_zone)
    local, locale = moment.astimezone(zone), _LOCALES[language]
    date, time = format_date(local, "long", locale=locale), format_time(local, "short", tzinfo=zone, locale=locale)
    # The language's own way of joining them (Babel's format_datetime does the same with its patterns).
    glue = str(get_datetime_format("medium", locale=locale))
    return glue.replace("'", "").replace("{0}", time).replace("{1}", date)


# CLDR's currency spacing, which Babel leaves out: a currency written in letters stands apart from the digits.
_LETTERS_TOUCH_DIGITS = re.compile(r"(?<=[^\W\d_])(?=\d)|(?<=\d)(?=[^\W\d_])")


def fmt_local_money(money: Money, language: str) -> str:
    """The amount the way the customer's language writes money: "700,00 ₽", "RUB 700.00"; never rounded."""
    text = format_currency(money.amount, money.currency, locale=_LOCALES[language], decimal_quantization=False)
    return _LETTERS_TOUCH_DIGITS.sub("\u00a0", text)


# Babel reads its locale data files on first use: read them now (at import, outside any workflow) so that no
# incident's workflow task ever waits on a file.
for _language in _LOCALES:
    fmt_local_time(datetime(2026, 1, 1, tzinfo=UTC), _language, "UTC")
    fmt_local_money(Money(amount=Decimal("1.00"), currency="RUB"), _language)
