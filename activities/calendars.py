"""The worker's current calendars, for incidents already open: how a new holiday reaches them.

An incident keeps the calendars of the policy it opened under, written into its input; now and then it
asks this activity whether the worker's policy (INCIDENT_POLICY, else the shipped one) has other data
for them, and the answer is recorded in its history (a local activity's marker), so a replay sees what
the incident saw whatever the worker knows by then.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path

from temporalio import activity

from workflows.contracts import CURRENT_CALENDARS, CalendarCheck, CalendarUpdate
from workflows.domain.policy import Policy, policy_from


class CalendarActivities:
    def __init__(self, policy_file: Path | None, today: Callable[[], date] = date.today) -> None:
        self._policy_file = policy_file
        self._today = today
        self._loaded: tuple[object, Policy] | None = None
        self._policy()  # a policy file that cannot be read stops the worker at its start, naming the field

    def _policy(self) -> Policy:
        """The policy as it is now: read again when the file changes or the day does (the years it covers)."""
        changed = self._policy_file.stat().st_mtime_ns if self._policy_file is not None else None
        key = (changed, self._today())
        if self._loaded is None or self._loaded[0] != key:
            self._loaded = (key, policy_from(self._policy_file, today=key[1]))
        return self._loaded[1]

    @activity.defn(name=CURRENT_CALENDARS)
    async def current_calendars(self, check: CalendarCheck) -> CalendarUpdate:
        calendars = self._policy().calendars
        return CalendarUpdate(
            calendars={
                name: calendars[name]
                for name, digest in check.digests.items()
                if name in calendars and calendars[name].digest() != digest
            }
        )
