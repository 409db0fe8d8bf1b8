"""The desk's queue: a read model of every incident the API process knows, kept in SQLite (in memory).

Why its own: Temporal's visibility store is eventually consistent (and rate-limited on Temporal Cloud),
and a queue of 1,000 incidents sorted by deadline must answer in milliseconds on every change. So the
queue is a table fed from the incidents' own state (the workflow's `state` query, the truth), never
written by the desk itself:

- **write-through**: every state this API process obtains (an action's result, an opening, a read) is
  upserted at once (`DeskFeed.saw`), so an agent's action shows on every open desk without delay;
- **deadlines**: a row whose next deadline has passed is read again just after it (the workflow acts on
  its timer: an escalation, a breach, a reminder), then with a growing pause while the incident has not
  moved on (its worker may be down);
- **settling**: an incident just acted on is read again after 1, 3 and 8 s (a refund paid, a
  notification given up on: what activities finish later);
- **visibility**: every second the incidents started since the last look (opened elsewhere: the CLI,
  another API process), and every 15 s a reconciliation of all running incidents' search attributes
  (line, status, severity, assignee) against the table, reading again each that differs or is missing.

It is rebuilt from scratch at the API's start (the reconciliation reads every running incident), so
there is nothing to migrate or repair: restart the API and it is whole again. Closed incidents stay in
the table once seen (a later reconciliation reads their final state).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from workflows.domain.linking import outage_id_of
from workflows.domain.models import IncidentState, Status

ANY_OUTAGE = "any"  # the queue's filter: linked to some major incident, whichever

log = logging.getLogger(__name__)

DUE_GRACE = 0.2  # seconds after a deadline before reading the incident again: its timer fires, a task runs
SETTLE_AFTER = (1.0, 3.0, 8.0)  # seconds after an action to read the incident again (activities finish)
MAX_PAUSE = 30.0  # the longest pause between reads of an incident whose deadline passed without a change
READS_AT_ONCE = 16
TICK = 0.2

_COLUMNS = (
    "ticket",
    "severity",
    "status",
    "line",
    "category",
    "customer_id",
    "assignee",
    "next_due",
    "next_label",
    "next_clock",
    "opened_at",
    "description",
    "recontacts",
    "customer_wrote_at",
    "refund",
    "awaiting",
    "outage",
    "event_seq",
)
# What the queue shows: a change in any of these is a change every open desk hears of.
_SHOWN = _COLUMNS[1:]

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS incidents (
    {", ".join(f"{name} {'TEXT PRIMARY KEY' if name == 'ticket' else ''}" for name in _COLUMNS)},
    version INTEGER NOT NULL,
    recheck_at REAL,
    misses INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS queue ON incidents (line, status, next_due);
CREATE INDEX IF NOT EXISTS rechecks ON incidents (recheck_at);
CREATE INDEX IF NOT EXISTS changes ON incidents (version);
"""


@dataclass(frozen=True)
class QueueRow:
    ticket: str
    severity: str
    status: str
    line: int
    category: str
    customer_id: str
    assignee: str | None
    next_due: datetime | None
    next_label: str | None
    next_clock: str | None
    opened_at: datetime
    description: str
    recontacts: int
    customer_wrote_at: datetime | None
    refund: str | None
    awaiting: str | None
    outage: str | None  # the major incident it is linked to (or was, resolved together)
    event_seq: int
    version: int


def _ts(moment: datetime | None) -> float | None:
    return moment.timestamp() if moment is not None else None


def _dt(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if value is not None else None


def _customer_wrote_at(state: IncidentState) -> float | None:
    """When the customer last wrote, if nobody on the lines has acted since: the queue marks it."""
    for event in reversed(state.events):
        if event.type.value == "customer_recontacted":
            return event.at.timestamp()
        if event.by and event.by != "customer" and event.type.value not in ("action_rejected", "opened"):
            return None
    return None


def row_values(state: IncidentState) -> tuple[object, ...]:
    upcoming = state.clock.next() if state.status is not Status.closed else None
    refund = f"{state.refund.amount:.2f} {state.refund.currency} {state.refund.status.value}" if state.refund else None
    return (
        state.ticket_id,
        state.severity.value,
        state.status.value,
        state.line,
        state.category,
        state.customer_id,
        state.assignee,
        _ts(upcoming.due_at) if upcoming else None,
        upcoming.label if upcoming else None,
        upcoming.clock.value if upcoming else None,
        state.opened_at.timestamp(),
        state.description[:200],
        state.recontacts,
        _customer_wrote_at(state),
        refund,
        state.awaiting,
        outage_id_of(state),
        state.event_seq,
    )


class ReadModel:
    """The table and its change counter: every change bumps `version`; waiters hear of it at once."""

    def __init__(self, path: str = ":memory:") -> None:
        # One connection, used only from the event loop's thread: every statement here takes microseconds.
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.executescript(SCHEMA)
        self.version = int(self.db.execute("SELECT coalesce(max(version), 0) FROM incidents").fetchone()[0])
        self._changed = asyncio.Event()

    # --- writing ---

    def upsert(self, state: IncidentState, now: float, recheck_at: float | None = None, read: bool = False) -> bool:
        """Take `state` if it is not older than what the table has; True when something shown changed.

        `read`: the state was just read because the row was due for it (a deadline passed, a settle, a
        reconciliation); a deadline still in the past then means the incident has not moved on yet."""
        values = row_values(state)
        found = self.db.execute(
            f"SELECT {', '.join(_SHOWN)}, misses, recheck_at FROM incidents WHERE ticket = ?", (state.ticket_id,)
        ).fetchone()
        if found is not None and found[_SHOWN.index("event_seq")] > state.event_seq:
            return False  # an older answer overtaken by a newer one
        next_due = values[_COLUMNS.index("next_due")]
        misses = 0
        due_at: float | None = None
        if state.status is not Status.closed and isinstance(next_due, float):
            due_at = next_due + DUE_GRACE
            if due_at <= now and read and found is not None:
                misses = int(found[-2]) + 1
                due_at = now + min(MAX_PAUSE, DUE_GRACE * 2**misses)
            elif due_at <= now:
                due_at = now + DUE_GRACE
        if recheck_at is not None:
            due_at = recheck_at if due_at is None else min(due_at, recheck_at)
        changed = found is None or tuple(found[: len(_SHOWN)]) != values[1:]
        if changed:
            self.version += 1
        version = self.version if changed else None
        self.db.execute(
            f"INSERT INTO incidents ({', '.join(_COLUMNS)}, version, recheck_at, misses) "
            f"VALUES ({', '.join('?' * len(_COLUMNS))}, ?, ?, ?) "
            "ON CONFLICT(ticket) DO UPDATE SET "
            + ", ".join(f"{name} = excluded.{name}" for name in _SHOWN)
            + ", version = coalesce(?, version), recheck_at = excluded.recheck_at, misses = excluded.misses",
            (*values, self.version, due_at, misses, version),
        )
        if changed:
            self._changed.set()
            self._changed = asyncio.Event()
        return changed

    def postpone(self, ticket: str, now: float) -> None:
        """The incident could not be read: try again later, less often each time."""
        self.db.execute(
            "UPDATE incidents SET misses = misses + 1, recheck_at = ? + min(?, ? * (1 << min(misses + 1, 10))) "
            "WHERE ticket = ?",
            (now, MAX_PAUSE, DUE_GRACE, ticket),
        )

    # --- reading ---

    def due(self, now: float, limit: int = 64) -> list[str]:
        rows = self.db.execute(
            "SELECT ticket FROM incidents WHERE recheck_at <= ? ORDER BY recheck_at LIMIT ?", (now, limit)
        ).fetchall()
        return [str(row[0]) for row in rows]

    def known(self) -> dict[str, tuple[str, int, str, str | None]]:
        """Every incident not closed: (status, line, severity, assignee), to reconcile with visibility."""
        rows = self.db.execute(
            "SELECT ticket, status, line, severity, assignee FROM incidents WHERE status != 'closed'"
        ).fetchall()
        return {str(r[0]): (str(r[1]), int(r[2]), str(r[3]), r[4]) for r in rows}

    def has(self, ticket: str) -> bool:
        return self.db.execute("SELECT 1 FROM incidents WHERE ticket = ?", (ticket,)).fetchone() is not None

    def queue(
        self,
        line: int | None = None,
        statuses: Iterable[str] = ("open", "resolved"),
        severity: str | None = None,
        category: str | None = None,
        assignee: str | None = None,
        limit: int = 200,
        outage: str | None = None,
    ) -> tuple[list[QueueRow], int]:
        """The rows that match, the next deadline first (none last), and how many match in all.

        `outage`: only those linked to this major incident (`ANY_OUTAGE`: to any)."""
        clauses, params = self._where(line, statuses, severity, category, assignee)
        if outage == ANY_OUTAGE:
            clauses.append("outage IS NOT NULL")
        elif outage is not None:
            clauses.append("outage = ?")
            params.append(outage)
        where = " AND ".join(clauses) or "1"
        total = int(self.db.execute(f"SELECT count(*) FROM incidents WHERE {where}", params).fetchone()[0])
        rows = self.db.execute(
            f"SELECT {', '.join(_COLUMNS)}, version FROM incidents WHERE {where} "
            "ORDER BY next_due IS NULL, next_due, opened_at LIMIT ?",
            (*params, limit),
        ).fetchall()
        return [self._row(row) for row in rows], total

    @staticmethod
    def _where(
        line: int | None, statuses: Iterable[str], severity: str | None, category: str | None, assignee: str | None
    ) -> tuple[list[str], list[object]]:
        clauses: list[str] = []
        params: list[object] = []
        wanted = list(statuses)
        if wanted:
            clauses.append(f"status IN ({', '.join('?' * len(wanted))})")
            params += wanted
        for column, value in (("line", line), ("severity", severity), ("category", category), ("assignee", assignee)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        return clauses, params

    def counts(self, statuses: Iterable[str] = ("open", "resolved")) -> dict[int, int]:
        wanted = list(statuses) or ["open", "resolved", "closed"]
        rows = self.db.execute(
            f"SELECT line, count(*) FROM incidents WHERE status IN ({', '.join('?' * len(wanted))}) GROUP BY line",
            wanted,
        ).fetchall()
        return {int(line): int(count) for line, count in rows}

    def outages(self) -> list[str]:
        """The major incidents the queue's incidents are linked to, for the filter's choices."""
        return [
            str(row[0])
            for row in self.db.execute("SELECT DISTINCT outage FROM incidents WHERE outage IS NOT NULL ORDER BY 1")
        ]

    def categories(self) -> list[str]:
        return [str(row[0]) for row in self.db.execute("SELECT DISTINCT category FROM incidents ORDER BY 1")]

    def changed_since(self, version: int, limit: int = 50) -> list[str]:
        rows = self.db.execute(
            "SELECT ticket FROM incidents WHERE version > ? ORDER BY version DESC LIMIT ?", (version, limit)
        ).fetchall()
        return [str(row[0]) for row in rows]

    async def wait_change(self, after: int, within: float) -> int:
        """The version once it is past `after`, or the same version when `within` seconds passed first."""
        deadline = time.monotonic() + within
        while self.version <= after:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)
        return self.version

    @staticmethod
    def _row(row: tuple[object, ...]) -> QueueRow:
        v = dict(zip((*_COLUMNS, "version"), row, strict=True))
        return QueueRow(
            ticket=str(v["ticket"]),
            severity=str(v["severity"]),
            status=str(v["status"]),
            line=int(v["line"]),  # type: ignore[call-overload]
            category=str(v["category"]),
            customer_id=str(v["customer_id"]),
            assignee=v["assignee"],  # type: ignore[arg-type]
            next_due=_dt(v["next_due"]),  # type: ignore[arg-type]
            next_label=v["next_label"],  # type: ignore[arg-type]
            next_clock=v["next_clock"],  # type: ignore[arg-type]
            opened_at=_dt(v["opened_at"]) or datetime.now(UTC),  # type: ignore[arg-type]
            description=str(v["description"]),
            recontacts=int(v["recontacts"]),  # type: ignore[call-overload]
            customer_wrote_at=_dt(v["customer_wrote_at"]),  # type: ignore[arg-type]
            refund=v["refund"],  # type: ignore[arg-type]
            awaiting=v["awaiting"],  # type: ignore[arg-type]
            outage=v["outage"],  # type: ignore[arg-type]
            event_seq=int(v["event_seq"]),  # type: ignore[call-overload]
            version=int(v["version"]),  # type: ignore[call-overload]
        )


# What the feed needs of the incidents: a state read, and the visibility store's open incidents.
ReadState = Callable[[str], Awaitable[IncidentState]]


@dataclass(frozen=True)
class Listed:
    ticket: str
    status: str | None
    line: int | None
    severity: str | None
    assignee: str | None
    started: datetime | None


ListIncidents = Callable[[str], Awaitable[list[Listed]]]


class DeskFeed:
    """Keeps a ReadModel fed (see the module's docstring); its loops run once `start` is called."""

    def __init__(
        self,
        model: ReadModel,
        read_state: ReadState,
        list_incidents: ListIncidents,
        new_every: float = 1.0,
        reconcile_every: float = 15.0,
    ) -> None:
        self.model = model
        self.read_state = read_state
        self.list_incidents = list_incidents
        self.new_every = new_every
        self.reconcile_every = reconcile_every
        self._tasks: list[asyncio.Task[None]] = []
        self._settling: dict[str, list[float]] = {}
        self._reading: set[str] = set()
        self._gate = asyncio.Semaphore(READS_AT_ONCE)
        self._watermark: datetime | None = None
        self._unread: dict[str, tuple[float, int]] = {}  # ticket -> (when to try again, tries so far)
        self.rebuilt = asyncio.Event()

    # --- what the API process saw ---

    def saw(self, state: IncidentState, acted: bool = False) -> None:
        """A state this process obtained; `acted`: an action just changed it (read it again as it settles)."""
        now = time.time()
        recheck = None
        if acted:
            steps = [now + after for after in SETTLE_AFTER]
            self._settling[state.ticket_id] = steps[1:]
            recheck = steps[0]
        self.model.upsert(state, now, recheck_at=recheck)

    # --- the loops ---

    def start(self) -> None:
        if self._tasks:
            return
        self._tasks = [
            asyncio.create_task(self._forever(self._recheck_due, TICK), name="desk-feed-due"),
            asyncio.create_task(self._forever(self._new_incidents, self.new_every), name="desk-feed-new"),
            asyncio.create_task(self._forever(self._reconcile, self.reconcile_every), name="desk-feed-reconcile"),
        ]

    @property
    def running(self) -> bool:
        return bool(self._tasks)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []

    async def _forever(self, step: Callable[[], Awaitable[None]], every: float) -> None:
        while True:
            try:
                await step()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # Temporal away for a moment: the next round tries again
                log.warning("desk feed: %s: %s", step.__name__, error)
            await asyncio.sleep(every)

    async def read(self, ticket: str) -> None:
        """Read one incident again and take what it says."""
        if ticket in self._reading:
            return
        self._reading.add(ticket)
        try:
            async with self._gate:
                try:
                    state = await asyncio.wait_for(self.read_state(ticket), 10)
                except Exception as error:
                    log.info("desk feed: cannot read %s: %s", ticket, error)
                    now = time.time()
                    if self.model.has(ticket):
                        self.model.postpone(ticket, now)
                    else:
                        # Not readable yet (its first workflow task has not run): try again soon, then less often.
                        tries = self._unread.get(ticket, (0.0, 0))[1] + 1
                        self._unread[ticket] = (now + min(MAX_PAUSE, DUE_GRACE * 2**tries), tries)
                    return
            self._unread.pop(ticket, None)
            now = time.time()
            steps = self._settling.get(ticket)
            recheck = steps.pop(0) if steps else None
            if steps is not None and not steps:
                self._settling.pop(ticket, None)
            self.model.upsert(state, now, recheck_at=recheck, read=True)
        finally:
            self._reading.discard(ticket)

    async def _recheck_due(self) -> None:
        now = time.time()
        due = self.model.due(now) + [ticket for ticket, (at, _) in self._unread.items() if at <= now]
        if due:
            await asyncio.gather(*(self.read(ticket) for ticket in due))

    async def _new_incidents(self) -> None:
        if self._watermark is None:
            return  # the first reconciliation sets it
        since = self._watermark
        listed = await self.list_incidents(f"StartTime >= '{since.strftime('%Y-%m-%dT%H:%M:%S.%fZ')}'")
        fresh = [row.ticket for row in listed if not self.model.has(row.ticket)]
        self._advance(listed)
        if fresh:
            await asyncio.gather(*(self.read(ticket) for ticket in fresh))

    def _advance(self, listed: list[Listed]) -> None:
        # Visibility may show a start a little late: keep looking a few seconds back.
        starts = [row.started for row in listed if row.started is not None]
        if starts and self._watermark is not None:
            self._watermark = max(self._watermark, max(starts) - timedelta(seconds=5))

    async def _reconcile(self) -> None:
        started = datetime.now(UTC)
        listed = await self.list_incidents("ExecutionStatus = 'Running'")
        known = self.model.known()
        stale = []
        for row in listed:
            mine = known.pop(row.ticket, None)
            if mine is None or mine != (row.status, row.line, row.severity, row.assignee):
                stale.append(row.ticket)
        stale += list(known)  # no longer running: closed (or ended) since; read its final state
        if stale:
            await asyncio.gather(*(self.read(ticket) for ticket in stale))
        if self._watermark is None:
            self._watermark = started - timedelta(seconds=5)
        self.rebuilt.set()
