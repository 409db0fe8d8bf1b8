"""The incident's clocks, kept in one object with its own rules.

Every deadline the incident has (first response, how long a line may hold it,
the last line's re-notification, the customer's status updates, the
satisfaction callback and its answer window, the reminders of work that waits
on a person) lives here, so the workflow holds a single timer for the earliest
of them. The arithmetic that turns "now + 4h" into a due time is in one
method, `_after`: the clocks that measure and chase the team (`WORKING_TIME_CLOCKS`)
count the working time of the calendar the incident binds with `use` (its
severity's, from the policy: workflows/domain/calendars.py); the others count
wall time. `pause`/`resume` stop the SLA clocks while the incident waits on the
customer and keep the working time each had left.

A calendar applies from a clock's next start: a deadline already computed stays
in the state as it was, so a new holiday never moves a running clock (and a
replay never sees a deadline change under it).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, Field, PrivateAttr

from workflows.domain.calendars import WALL_TIME, WorkingTime


class Clock(StrEnum):
    acknowledge = "acknowledge"
    line = "line"
    renotify = "renotify"
    customer_update = "customer_update"
    callback = "callback"
    feedback = "feedback"
    # Reminders for work that waits on a person (the policy's `reminders` ladders).
    owned_reminder = "owned_reminder"
    refund_reminder = "refund_reminder"
    compensation_reminder = "compensation_reminder"
    # Waiting on the customer's answer (the policy's `customer_silence` ladder): remind them, then close.
    reply_reminder = "reply_reminder"
    reply_deadline = "reply_deadline"
    # Closed for lack of a reply: until this passes, the customer's reply reopens it.
    reopen_window = "reopen_window"


# The clocks that measure the support team against its SLA; only these stop while the customer owes us.
SLA_CLOCKS = frozenset({Clock.acknowledge, Clock.line})
# The clocks that count the team's working time: its SLA, and the last line's re-notification (a duty
# manager is chased in working hours like the lines before). The customer's clocks (status updates, the
# callback, the answer window) and the reminders of work left with a person count wall time: the customer
# lives by the calendar, and a reminder ladder is a nag, not a promise.
WORKING_TIME_CLOCKS = frozenset({Clock.acknowledge, Clock.line, Clock.renotify})
_ORDER = {clock: index for index, clock in enumerate(Clock)}


class Deadline(BaseModel):
    clock: Clock
    due_at: datetime
    label: str


class SlaClock(BaseModel):
    deadlines: dict[Clock, Deadline] = Field(default_factory=dict)
    paused_since: datetime | None = None
    # While paused: the working time each SLA clock had left (a clock started during the pause: all of
    # it). Resuming counts it from then in the calendar in force then. Absent from the JSON when empty.
    paused_left: dict[Clock, timedelta] = Field(default_factory=dict, exclude_if=lambda left: not left)
    # The incident's calendar, bound by the incident (never stored: the policy holds it, shared).
    _working_time: WorkingTime = PrivateAttr(default=WALL_TIME)

    def use(self, working_time: WorkingTime) -> None:
        """Count the working-time clocks started from now on in `working_time`."""
        self._working_time = working_time

    def start(self, clock: Clock, now: datetime, duration: timedelta, label: str) -> Deadline:
        deadline = Deadline(clock=clock, due_at=self._after(clock, now, duration), label=label)
        self.deadlines[clock] = deadline
        if self.paused_since is not None and clock in SLA_CLOCKS:
            self.paused_left[clock] = duration  # it starts to run when the pause ends
        return deadline

    def start_from(self, clock: Clock, since: datetime, duration: timedelta, label: str) -> Deadline:
        """A clock that began earlier (e.g. after the policy changed): may already be due."""
        return self.start(clock, since, duration, label)

    def stop(self, *clocks: Clock) -> None:
        for clock in clocks:
            self.deadlines.pop(clock, None)
            self.paused_left.pop(clock, None)

    def stop_all(self) -> None:
        self.deadlines.clear()
        self.paused_left.clear()

    def running(self, clock: Clock) -> bool:
        return clock in self.deadlines

    def due_at(self, clock: Clock) -> datetime | None:
        deadline = self.deadlines.get(clock)
        return deadline.due_at if deadline else None

    def _active(self) -> list[Deadline]:
        active = [d for d in self.deadlines.values() if not (self.paused_since is not None and d.clock in SLA_CLOCKS)]
        return sorted(active, key=lambda d: (d.due_at, _ORDER[d.clock]))

    def next(self) -> Deadline | None:
        """The earliest deadline that can fire; the workflow keeps one timer for it."""
        active = self._active()
        return active[0] if active else None

    def expired(self, now: datetime) -> list[Deadline]:
        return [d for d in self._active() if d.due_at <= now]

    def pause(self, now: datetime) -> None:
        if self.paused_since is not None:
            return
        self.paused_since = now
        for clock in SLA_CLOCKS:
            deadline = self.deadlines.get(clock)
            if deadline is not None:
                self.paused_left[clock] = self._left(clock, now, deadline.due_at)

    def resume(self, now: datetime) -> None:
        """Run the SLA clocks again with the working time they had left, counted from `now`."""
        if self.paused_since is None:
            return
        self.paused_since = None
        left, self.paused_left = self.paused_left, {}
        for clock in SLA_CLOCKS:
            deadline = self.deadlines.get(clock)
            if deadline is not None and clock in left:
                self.deadlines[clock] = deadline.model_copy(update={"due_at": self._after(clock, now, left[clock])})

    def after(self, clock: Clock, start: datetime, duration: timedelta) -> datetime:
        """When `clock` would fall due if started at `start` for `duration` (nothing is started)."""
        return self._after(clock, start, duration)

    def _after(self, clock: Clock, start: datetime, duration: timedelta) -> datetime:
        working_time = self._working_time if clock in WORKING_TIME_CLOCKS else WALL_TIME
        return working_time.after(start, duration)

    def _left(self, clock: Clock, now: datetime, due_at: datetime) -> timedelta:
        working_time = self._working_time if clock in WORKING_TIME_CLOCKS else WALL_TIME
        return working_time.between(now, due_at)

    def moved_by_pause(self, moment: datetime, now: datetime) -> datetime:
        """Where `moment`, a promise made before the current pause, lands when the pause ends at `now`.

        The same move `resume` gives the line's SLA deadline: the working time from the pause to `moment`,
        counted again from `now`; a moment that had already passed when the pause began is not moved, and
        without a pause nothing moves.
        """
        if self.paused_since is None or moment <= self.paused_since:
            return moment
        return self._after(Clock.line, now, self._left(Clock.line, self.paused_since, moment))
