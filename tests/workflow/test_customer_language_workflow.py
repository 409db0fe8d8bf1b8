"""Customer time on the time-skipping server: a Russian-speaking customer in Moscow, opened through the intake
as services open incidents, reads every notification in Russian with Moscow times and roubles, the agent's
message among them; the lines still read English."""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

from temporalio.testing import WorkflowEnvironment

from starter.incidents import IncidentService
from tests.harness import RunningWorker, Sandboxes
from tests.helpers import HOUR, MINUTE, settled, state_of
from tests.helpers import open_request as request
from workflows.domain.actions import MessageCustomer
from workflows.domain.policy import default_policy

# Written out here rather than asked of Babel, so that the test checks the formatting instead of repeating it.
MONTHS_GENITIVE = [
    *("января", "февраля", "марта", "апреля", "мая", "июня"),
    *("июля", "августа", "сентября", "октября", "ноября", "декабря"),
]


def in_moscow(moment: datetime) -> str:
    local = moment.astimezone(ZoneInfo("Europe/Moscow"))
    return f"{local.day} {MONTHS_GENITIVE[local.month - 1]} {local.year} г., {local:%H:%M}"


def plain(text: str) -> str:
    return text.replace("\u202f", " ").replace("\xa0", " ")


async def test_a_russian_speaking_customer_reads_russian_with_moscow_time(
    time_env: WorkflowEnvironment, skipping: RunningWorker, sandboxes: Sandboxes
):
    service = IncidentService(skipping.client, policy=default_policy(), task_queue=skipping.task_queue)
    opened = await service.open(
        request(
            customer_id="moscow-1",
            category="connection_lost",
            language="ru",
            time_zone="Europe/Moscow",
            refund={"amount": "700.00", "currency": "RUB"},
        )
    )
    ticket = opened.ticket_id
    assert (opened.state.language, opened.state.time_zone) == ("ru", "Europe/Moscow")
    handle = service.handle(ticket)
    await settled(handle)

    await service.act(
        ticket, MessageCustomer(agent="ann", text="Перезагрузите роутер: отключите питание на 30 секунд.")
    )
    await time_env.sleep(HOUR + MINUTE)  # line 1's hour runs out: the customer hears that line 2 has it
    await settled(handle)

    told = {n["kind"]: plain(n["message"]) for n in await sandboxes.notifications(ticket, "customer")}
    assert set(told) >= {"ticket_opened", "refund_paid", "agent_message", "escalated"}
    fix_by = (await state_of(handle)).expected_fix_by
    assert told["ticket_opened"].startswith(
        f"Приносим извинения за неудобства. Номер вашей заявки: {ticket}. Наши специалисты уже занимаются ею "
        f"и рассчитывают всё исправить к {in_moscow(fix_by)}. Мы будем держать вас в курсе. А пока попробуйте "
        "эти шаги, они часто помогают:\n1. Перезагрузите роутер"
    )
    assert told["refund_paid"] == f"Мы отправили вам возврат 700,00 ₽ (заявка {ticket})."
    assert told["agent_message"] == (
        f"Сообщение службы поддержки по заявке {ticket}: Перезагрузите роутер: отключите питание на 30 секунд."
    )
    assert told["escalated"] == f"Новости по заявке {ticket}: мы передали её специалистам 2-й линии поддержки."
    for text in told.values():
        assert "UTC" not in text and not re.search(r"\d{4}-\d{2}-\d{2}", text), text

    to_lines = await sandboxes.notifications(ticket, "line_2")
    assert any(n["message"].startswith(f"Incident {ticket} (critical, connection_lost) escalated") for n in to_lines)
    logged = [e for e in (await state_of(handle)).events if e.type == "customer_messaged"]
    assert len(logged) == 1 and logged[0].by == "ann"
