"""Human output of the CLI: a ticket summary, a timeline, a table. `rich` decides on colour (only on
a terminal, and never when NO_COLOR is set).

What customers and agents wrote (descriptions, notes, resolutions, names, reasons) reaches the terminal
only through `_shown`, at the entry of each function here: control characters become visible escapes
(`\x1b`, `\r`), so no text can move the cursor, clear the screen or rewrite a line, and `[` is escaped
for rich, so text like `[/bold]` is shown as written, never read as markup (or refused as bad markup).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel
from rich.console import Console
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    from starter.incidents import IncidentSummary
    from starter.outages import OutageSummary
    from workflows.domain.models import IncidentEvent, IncidentState
    from workflows.domain.outage import OutageState

M = TypeVar("M")

# C0 and C1 controls but newline and tab, DEL, the line and paragraph separators, and the bidi
# overrides and isolates (which reorder what follows them on screen).
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def visible(text: str) -> str:
    """`text` with every control character written out as its escape (ESC as `\x1b`, CR as `\r`)."""
    return _CONTROL.sub(lambda found: found.group().encode("unicode_escape").decode("ascii"), text)


def _escaped(value: Any) -> Any:
    if isinstance(value, Enum):
        return value  # ours: a closed set of words
    if isinstance(value, str):
        return escape(visible(value))
    if isinstance(value, BaseModel):
        return value.model_copy(update={name: _escaped(getattr(value, name)) for name in type(value).model_fields})
    if isinstance(value, Mapping):
        return {_escaped(key): _escaped(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_escaped(item) for item in value)
    return value


def _shown(value: M) -> M:
    """A copy of `value` (a model, or a sequence of them) whose every string is safe to print as rich markup."""
    escaped: M = _escaped(value)
    return escaped


_SEVERITY_STYLE = {"critical": "bold red", "routine": "yellow", "convenience": "cyan"}
_STATUS_STYLE = {"open": "bold", "waiting_on_customer": "yellow", "resolved": "green", "closed": "dim"}


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "-"


def show(console: Console, state: IncidentState) -> None:
    state = _shown(state)
    severity = state.severity.value
    console.print(
        f"[bold]{state.ticket_id}[/]  [{_SEVERITY_STYLE.get(severity, '')}]{severity}[/]  "
        f"[{_STATUS_STYLE.get(state.status.value, '')}]{state.status.value}[/]  line {state.line}"
    )
    rows = [
        ("customer", f"{state.customer_id} via {state.channel.value}"),
        ("category", state.category + (f"  ({state.triage_note})" if state.triage_note else "")),
        ("description", state.description),
        ("assignee", state.assignee or "nobody yet"),
        ("opened", _when(state.opened_at)),
        ("line deadline", _when(state.sla_deadline)),
        ("next deadline", _when(state.next_deadline)),
    ]
    if state.outage is not None:
        link = state.outage
        fix_by = _when(link.notice.expected_fix_by)
        rows.append(
            (
                "major incident",
                f"linked to {link.outage_id}, expected fixed by {fix_by}: it owns escalation"
                if link.active
                else f"{link.outage_id} ({link.ended})",
            )
        )
    if state.sla_breaches:
        rows.append(("SLA breached", ", ".join(state.sla_breaches)))
    if state.refund is not None:
        refund = state.refund
        rows.append(
            (
                "refund",
                f"{refund.amount:.2f} {refund.currency} {refund.status.value}"
                + (f" for charge {refund.charge}" if refund.charge else "")
                + (f" ({refund.failure})" if refund.failure else ""),
            )
        )
    if state.compensation is not None:
        rows.append(
            (
                "compensation",
                f"{state.compensation.amount:.2f} {state.compensation.currency} {state.compensation.status}",
            )
        )
    if state.resolution:
        rows.append(("resolution", state.resolution))
    if state.awaiting:
        rows.append(("waiting for", state.awaiting))
    if state.waiting is not None:
        waiting = state.waiting
        rows.append(("asked", f"{waiting.asked_by} at {_when(waiting.asked_at)}: {waiting.question}"))
    if state.self_help is not None:
        rows.append(("self-help", "steps sent" if state.self_help == "offered" else "steps sent; did not fix it"))
    if state.closed_as is not None:
        rows.append(("closed as", state.closed_as.value))
    if state.feedback is not None:
        rows.append(("feedback", f"{state.feedback.score}/5 {state.feedback.comment or ''}".strip()))
    rows.append(("activity", f"{state.notes} notes, {state.recontacts} recontacts, {state.reopen_count} reopens"))
    table = Table.grid(padding=(0, 2))
    table.add_column(style="dim")
    table.add_column()
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)


def kind_words(value: Any) -> str:
    """`ticket_opened` -> `ticket opened`."""
    return str(value or "").replace("_", " ")


def _rest(data: dict[str, Any], skip: tuple[str, ...] = ()) -> str:
    hidden = {"idempotency_key", "deadline", "label", *skip}
    return ", ".join(f"{key.replace('_', ' ')}: {value}" for key, value in data.items() if key not in hidden)


def event_words(event: IncidentEvent) -> str:
    """One domain event as a sentence an agent reads: the one describer, for the CLI's timeline and the desk
    (never the customer's contact: events do not carry it)."""
    d = dict(event.data)
    who = event.by or "the incident"
    t = event.type.value
    if t == "opened":
        return f"Opened via {d.get('channel', event.by)}: {d.get('severity')} · {d.get('category')}" + (
            f" (follows {d['previous_ticket']})" if d.get("previous_ticket") else ""
        )
    if t == "customer_notified":
        return f"Customer told: {kind_words(d.get('kind'))}"
    if t == "line_notified":
        reminder = f" (reminder {d['reminder']})" if d.get("reminder") else ""
        return f"Line {d.get('line')} told: {kind_words(d.get('kind'))}{reminder}"
    if t == "acknowledged":
        return f"{who} took it"
    if t == "assigned":
        return f"{who} handed it to {d.get('assignee')}"
    if t == "note_added":
        return f"{who} noted: {d.get('text')}"
    if t == "escalated":
        if d.get("reason") == "timeout":
            why = "its time on the line ran out"
        else:  # an agent's: their words are the comment ("manual" says only that an agent did it)
            why = f"by {who}" + (f": {d['comment']}" if d.get("comment") else "")
        return f"Escalated from line {d.get('from_line')} to line {d.get('to_line')} ({why})"
    if t == "sla_breached":
        return f"Deadline missed: {d.get('label') or d.get('clock')}"
    if t == "customer_recontacted":
        return f"Customer wrote via {d.get('channel')}: {d.get('text')}"
    if t == "severity_changed":
        return f"{who} changed the severity from {d.get('from')} to {d.get('to')}: {d.get('reason')}"
    if t == "resolved":
        return f"{who} resolved it on line {d.get('line')}: {d.get('resolution')}"
    if t == "reopened":
        return f"Reopened on line {d.get('line')} by {who}: {d.get('reason')}"
    if t == "feedback_received":
        comment = f" \u201c{d['comment']}\u201d" if d.get("comment") else ""
        return f"Customer scored {d.get('score')}/5{comment}"
    if t == "closed":
        return f"Closed: {d.get('reason')}"
    if t == "action_rejected":
        return f"Refused {kind_words(d.get('action'))} from {who}: {d.get('reason')}"
    if t.startswith("refund_") or t.startswith("compensation_"):
        money = f"{d.get('amount')} {d.get('currency')}" if d.get("amount") else ""
        return f"{kind_words(t).capitalize()} {money}".strip() + (f" ({_rest(d, ('amount', 'currency'))})" if d else "")
    rest = _rest(d)
    return f"{kind_words(t).capitalize()}" + (f" by {event.by}" if event.by else "") + (f": {rest}" if rest else "")


def timeline(console: Console, events: Sequence[IncidentEvent], compacted: int = 0) -> None:
    events = _shown(events)
    if compacted:
        console.print(f"[dim]({compacted} older events summarised)[/]")
    grid = Table.grid(padding=(0, 2))
    grid.add_column(justify="right")
    for _ in range(4):
        grid.add_column()
    for event in events:
        style = "red" if event.type in ("action_rejected", "sla_breached", "refund_failed") else "bold"
        grid.add_row(
            str(event.seq),
            _when(event.at),
            f"[{style}]{event.type.value}[/]",
            f"[dim]{event.by}[/]" if event.by else "",
            event_words(event),
        )
    console.print(grid)


def table(console: Console, rows: Sequence[IncidentSummary]) -> None:
    rows = _shown(rows)
    if not rows:
        console.print("no incidents match")
        return
    grid = Table(show_edge=False, header_style="bold")
    for title in ("ticket", "severity", "status", "line", "category", "customer", "assignee", "SLA deadline"):
        grid.add_column(title)
    for row in rows:
        grid.add_row(
            row.ticket_id,
            f"[{_SEVERITY_STYLE.get(row.severity or '', '')}]{row.severity or '-'}[/]",
            row.status or row.execution_status,
            str(row.line or "-"),
            row.category or "-",
            row.customer_id or "-",
            row.assignee or "-",
            _when(row.sla_deadline),
        )
    console.print(grid)


def outage(console: Console, state: OutageState) -> None:
    """A major incident: what it is, where, who owns it, and its own event log."""
    state = _shown(state)
    console.print(
        f"[bold]{state.outage_id}[/]  {state.kind.value.replace('_', ' ')}  [bold]{state.status.value}[/]  "
        f"line {state.line}"
    )
    rows = [
        ("area", state.area.path),
        ("categories", ", ".join(state.categories) or "all"),
        ("summary", state.summary),
        ("owner", state.owner),
        ("started", _when(state.started_at)),
        ("expected fixed by", _when(state.expected_fix_by)),
        ("updates", f"{state.updates}, the last {_when(state.last_update_at)}"),
    ]
    if state.resolution:
        rows.append(("resolution", f"{state.resolution} ({_when(state.resolved_at)})"))
    if state.compensation:
        rows.append(
            ("credit", ", ".join(f"{s.value} {m.amount:.2f} {m.currency}" for s, m in state.compensation.items()))
        )
    for record in state.fan_outs:
        reached = f", {record.reached} reached" if record.reached is not None else ""
        rows.append(
            ("fan-out", f"{record.job_id}: {record.status}{reached}" + (f" ({record.reason})" if record.reason else ""))
        )
    rows.append(("its incidents", f"incidents outage incidents {state.outage_id}"))
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim")
    grid.add_column()
    for name, value in rows:
        grid.add_row(name, value)
    console.print(grid)


def outage_table(console: Console, rows: Sequence[OutageSummary]) -> None:
    rows = _shown(rows)
    if not rows:
        console.print("no major incidents")
        return
    grid = Table(show_edge=False, header_style="bold")
    for title in ("major incident", "kind", "status", "area", "categories", "owner", "line", "expected fixed by"):
        grid.add_column(title)
    for row in rows:
        grid.add_row(
            row.outage_id,
            (row.kind or "-").replace("_", " "),
            row.status or row.execution_status,
            row.area or "-",
            ", ".join(row.categories) or "all",
            row.owner or "-",
            str(row.line or "-"),
            _when(row.expected_fix_by),
        )
    console.print(grid)
