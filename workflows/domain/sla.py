"""The incident's clocks, kept in one object with its own rules.

Every deadline the incident has (first response, how long a line may hold it,
the last line's re-notification, the customer's status updates, the
satisfaction callback and its answer window, the reminders of work that waits
on a person) lives here, so the workflow holds a single timer for the earliest
of them. The arithmetic that turns "now + 4h" into a due time is in one
method, `_after`, which is where business hours and team calendars will plug
in; `pause`/`resume` stop the SLA clocks while the incident waits on the
customer.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, Field


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
    # While linked to a major incident: the link is trusted until then without news (workflows/domain/linking.py).
    outage = "outage"


# The clocks that measure the support team against its SLA; only these stop while the customer owes us.
SLA_CLOCKS = frozenset({Clock.acknowledge, Clock.line})
_ORDER = {clock: index for index, clock in enumerate(Clock)}


class Deadline(BaseModel):
    clock: Clock
    due_at: datetime
    label: str


class SlaClock(BaseModel):
    deadlines: dict[Clock, Deadline] = Field(default_factory=dict)
    paused_since: datetime | None = None

    def start(self, clock: Clock, now: datetime, duration: timedelta, label: str) -> Deadline:
        deadline = Deadline(clock=clock, due_at=self._after(now, duration), label=label)
        self.deadlines[clock] = deadline
        return deadline

    def start_from(self, clock: Clock, since: datetime, duration: timedelta, label: str) -> Deadline:
        """A clock that began earlier (e.g. after the policy changed): may already be due."""
        return self.start(clock, since, duration, label)

    def stop(self, *clocks: Clock) -> None:
        for clock in clocks:
            self.deadlines.pop(clock, None)

    def stop_all(self) -> None:
        self.deadlines.clear()

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
        if self.paused_since is None:
            self.paused_since = now

    def resume(self, now: datetime) -> None:
        if self.paused_since is None:
            return
        waited = now - self.paused_since
        self.paused_since = None
        for clock in SLA_CLOCKS:
            deadline = self.deadlines.get(clock)
            if deadline is not None:
                self.deadlines[clock] = deadline.model_copy(update={"due_at": deadline.due_at + waited})

    @staticmethod
    def _after(start: datetime, duration: timedelta) -> datetime:
        # Wall-clock arithmetic today; business-hours calendars replace this one method.
        return start + duration
