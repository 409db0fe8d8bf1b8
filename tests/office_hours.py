"""Moving the time-skipping server's clock to a given hour in Moscow: its clock starts at the real now,
and working-time SLAs are tested from a known weekday and hour (env.sleep skips time there)."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from temporalio.testing import WorkflowEnvironment

from workflows.domain.calendars import CalendarTime
from workflows.domain.models import Severity
from workflows.domain.policy import Policy

MOSCOW = ZoneInfo("Europe/Moscow")


def office_hours(policy: Policy, severity: Severity = Severity.routine) -> CalendarTime:
    hours = policy.working_time(severity)
    assert isinstance(hours, CalendarTime), f"{severity.value} counts wall time in {policy.name}"
    return hours


async def next_friday_evening(env: WorkflowEnvironment, policy: Policy) -> datetime:
    """17:30 in Moscow on the next working Friday whose Monday is a working day too (not a holiday)."""
    hours = office_hours(policy)
    day = (await env.get_current_time()).astimezone(MOSCOW).date() + timedelta(days=1)
    while not (
        day.weekday() == 4
        and hours.is_working_day(day.toordinal())
        and hours.is_working_day((day + timedelta(days=3)).toordinal())
    ):
        day += timedelta(days=1)
    return datetime.combine(day, time(17, 30), tzinfo=MOSCOW)


async def sleep_until(env: WorkflowEnvironment, instant: datetime) -> None:
    """Skip the server's clock to `instant` (at once: the time-skipping server has nothing else to wait for)."""
    await env.sleep(max(instant - await env.get_current_time(), timedelta(0)))
