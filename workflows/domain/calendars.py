"""Working time: when a team's SLA clocks run, and the closed-form arithmetic on it.

A calendar is the team's week (working days and one daily window of hours, on the wall clock of its
time zone) and its exceptions: days off on working weekdays (public holidays, the team's own) and
working days on rest days (a Saturday the government made a working day in exchange for a bridge day).
The built-in `24/7` calendar counts wall time.

What the policy holds is data only: the dates are explicit, so an incident computes the same deadline
on every replay whatever library version the worker has. The library that knows a country's official
calendar (python-holidays) is read only by the loaders that build the policy (`resolve_public_holidays`,
imported lazily), never in workflow code.

The arithmetic never steps through time: whole working days between two dates are counted by whole
weeks plus a remainder, minus the days off and plus the working rest days found by bisecting sorted
lists; the n-th working day after a date is a binary search over that count. A year of holidays costs
a few more comparisons, not a slower deadline.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from datetime import UTC, date, datetime, time, timedelta
from hashlib import sha256
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

AROUND_THE_CLOCK = "24/7"
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HOURS = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")
_MICROS_PER_MINUTE = 60_000_000
_MICROS_PER_DAY = 24 * 60 * _MICROS_PER_MINUTE
# Years of a country's official calendar a loaded policy carries: last year (deadlines computed across
# New Year), this year and the next two (the furthest a long-lived incident's clock is likely to reach).
PUBLIC_HOLIDAY_YEARS_BEFORE = 1
PUBLIC_HOLIDAY_YEARS_AFTER = 2


class Calendar(BaseModel):
    """A team's working time. Loaded policies carry the official days explicitly (see the module doc)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    time_zone: str = Field(description="IANA time zone of the team's wall clock, e.g. Europe/Moscow")
    working_days: tuple[Weekday, ...] = Field(default=("mon", "tue", "wed", "thu", "fri"))
    working_hours: str = Field(default="09:00-18:00", description="one daily window, HH:MM-HH:MM, local time")
    public_holidays: str | None = Field(
        default=None,
        description="a country code (e.g. RU): its official days off and transferred working days, read from "
        "python-holidays when the policy is loaded and written into days_off / working_rest_days",
    )
    public_holiday_years: tuple[int, ...] = Field(
        default=(), description="the years of public_holidays already written into the lists (filled by the loader)"
    )
    days_off: tuple[date, ...] = Field(default=(), description="days off on working weekdays")
    working_rest_days: tuple[date, ...] = Field(default=(), description="working days on rest days (e.g. a Saturday)")

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}; write an IANA name like Europe/Moscow") from None
        return value

    @field_validator("working_days")
    @classmethod
    def _some_working_day(cls, value: tuple[Weekday, ...]) -> tuple[Weekday, ...]:
        if not value:
            raise ValueError("give at least one working day, e.g. [mon, tue, wed, thu, fri]")
        return tuple(day for day in WEEKDAYS if day in value)

    @field_validator("working_hours")
    @classmethod
    def _a_window(cls, value: str) -> str:
        _window(value)
        return value

    @field_validator("public_holidays")
    @classmethod
    def _country_code(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Z]{2}", value):
            raise ValueError(f"{value!r}: write the country's two-letter code, e.g. RU")
        return value

    @field_validator("days_off", "working_rest_days", "public_holiday_years")
    @classmethod
    def _sorted(cls, value: tuple[date, ...]) -> tuple[date, ...]:
        return tuple(sorted(set(value)))

    @model_validator(mode="after")
    def _no_day_both_ways(self) -> Calendar:
        both = set(self.days_off) & set(self.working_rest_days)
        if both:
            raise ValueError(f"{min(both)} is in both days_off and working_rest_days")
        return self

    def digest(self) -> str:
        """Names this calendar's content: equal digests, equal deadlines."""
        return sha256(self.model_dump_json().encode()).hexdigest()[:16]


def _window(text: str) -> tuple[int, int]:
    """The daily window as microseconds after local midnight; 24:00 may end it."""
    match = _HOURS.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a window of hours; write it like 09:00-18:00")
    start_h, start_m, end_h, end_m = (int(part) for part in match.groups())
    if start_h > 23 or end_h > 24 or start_m > 59 or end_m > 59 or (end_h == 24 and end_m):
        raise ValueError(f"{text!r}: hours run 00:00 to 24:00")
    start, end = (start_h * 60 + start_m) * _MICROS_PER_MINUTE, (end_h * 60 + end_m) * _MICROS_PER_MINUTE
    if start >= end:
        raise ValueError(f"{text!r}: the window must end after it starts, within one day")
    return start, end


def _micros(value: timedelta) -> int:
    return (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds


class WorkingTime:
    """Deadlines and durations in working time; this base is the `24/7` calendar, where wall time is working time."""

    def after(self, start: datetime, duration: timedelta) -> datetime:
        """The first instant by which `duration` of working time has passed since `start`."""
        return start + duration

    def between(self, start: datetime, end: datetime) -> timedelta:
        """Working time from `start` to `end` (zero when `end` is not later)."""
        return max(end - start, timedelta(0))

    def is_working(self, instant: datetime) -> bool:
        """Whether working time runs at `instant`."""
        return True


class CalendarTime(WorkingTime):
    """Working time by a calendar, exact to the microsecond.

    Working time is counted on the team's wall clock: a day of 09:00-18:00 holds nine hours of it. A
    deadline for a positive duration is the first instant at which that much working time has passed:
    it always lies inside a working window or on its closing minute (18:00 for a duration that uses a
    day up exactly, never the next morning's 09:00). A window that a daylight-saving jump cuts into is
    counted by the wall clock too; the shipped calendars' zones have no such jumps in working hours.
    Naive datetimes are read as UTC and answered naive.
    """

    def __init__(self, calendar: Calendar) -> None:
        self.calendar = calendar
        self.zone = ZoneInfo(calendar.time_zone)
        self._start, self._end = _window(calendar.working_hours)
        self._length = self._end - self._start
        working = [WEEKDAYS.index(day) for day in calendar.working_days]
        weekday_works = tuple(day in working for day in range(7))
        self._per_week = len(working)
        # How many working weekdays lie among weekdays [0, k), Monday = 0.
        self._before_weekday = tuple(sum(weekday_works[:k]) for k in range(8))
        # Only the exceptions that change something: a day off on a rest day changes nothing.
        self._off = sorted(d.toordinal() for d in calendar.days_off if weekday_works[d.weekday()])
        self._on = sorted(d.toordinal() for d in calendar.working_rest_days if not weekday_works[d.weekday()])

    # --- days, as date ordinals ---

    def _weekly_before(self, ordinal: int) -> int:
        """Working weekdays among the ordinals [1, ordinal): date.fromordinal(1) is a Monday."""
        weeks, rest = divmod(ordinal - 1, 7)
        return weeks * self._per_week + self._before_weekday[rest]

    def working_days_between(self, first: int, last: int) -> int:
        """How many working days lie in the ordinals [first, last)."""
        if last <= first:
            return 0
        weekly = self._weekly_before(last) - self._weekly_before(first)
        off = bisect_left(self._off, last) - bisect_left(self._off, first)
        on = bisect_left(self._on, last) - bisect_left(self._on, first)
        return weekly - off + on

    def is_working_day(self, ordinal: int) -> bool:
        return self.working_days_between(ordinal, ordinal + 1) == 1

    def nth_working_day_after(self, ordinal: int, n: int) -> int:
        """The n-th working day after `ordinal` (n >= 1): a binary search over the closed-form count."""
        low = ordinal + 1
        # Each day off removes at most one working day; enough whole weeks make up for all that remain.
        days_off_ahead = len(self._off) - bisect_left(self._off, low)
        high = ordinal + 7 * -(-(n + days_off_ahead) // self._per_week) + 7
        while low < high:
            middle = (low + high) // 2
            if self.working_days_between(ordinal + 1, middle + 1) >= n:
                high = middle
            else:
                low = middle + 1
        return low

    # --- instants ---

    def _local(self, instant: datetime) -> tuple[int, int]:
        """(date ordinal, microseconds after midnight) on the team's wall clock."""
        aware = instant if instant.tzinfo is not None else instant.replace(tzinfo=UTC)
        local = aware.astimezone(self.zone)
        of_day = ((local.hour * 60 + local.minute) * 60 + local.second) * 1_000_000 + local.microsecond
        return local.toordinal(), of_day

    def _position(self, instant: datetime) -> tuple[int, int]:
        """(working day, working time already used on it) of the working time at or after `instant`."""
        day, of_day = self._local(instant)
        if not self.is_working_day(day):
            return self.nth_working_day_after(day, 1), 0
        return day, min(max(of_day - self._start, 0), self._length)

    def _instant(self, day: int, used: int, like: datetime) -> datetime:
        local = datetime.combine(date.fromordinal(day), time()) + timedelta(microseconds=self._start + used)
        aware = local.replace(tzinfo=self.zone)
        if like.tzinfo is None:
            return aware.astimezone(UTC).replace(tzinfo=None)
        return aware.astimezone(like.tzinfo)

    def after(self, start: datetime, duration: timedelta) -> datetime:
        remaining = _micros(duration)
        if remaining <= 0:
            return start
        day, used = self._position(start)
        if remaining <= self._length - used:
            return self._instant(day, used + remaining, start)
        remaining -= self._length - used
        whole_days, last = divmod(remaining - 1, self._length)
        return self._instant(self.nth_working_day_after(day, whole_days + 1), last + 1, start)

    def between(self, start: datetime, end: datetime) -> timedelta:
        if end <= start:
            return timedelta(0)
        first_day, first_used = self._position(start)
        last_day, last_used = self._position(end)
        worked = self.working_days_between(first_day, last_day) * self._length - first_used + last_used
        return timedelta(microseconds=max(worked, 0))

    def is_working(self, instant: datetime) -> bool:
        day, of_day = self._local(instant)
        if of_day == 0 and self._end == _MICROS_PER_DAY and self.is_working_day(day - 1):
            return True  # midnight closes a window that runs to 24:00
        return self.is_working_day(day) and self._start <= of_day <= self._end


WALL_TIME = WorkingTime()

_WORKING_TIMES: dict[Calendar, WorkingTime] = {}
_WORKING_TIMES_LIMIT = 64


def working_time(calendar: Calendar | None) -> WorkingTime:
    """One WorkingTime per distinct calendar in a process, built once and shared by every incident using it."""
    if calendar is None:
        return WALL_TIME
    found = _WORKING_TIMES.get(calendar)
    if found is None:
        if len(_WORKING_TIMES) >= _WORKING_TIMES_LIMIT:
            _WORKING_TIMES.pop(next(iter(_WORKING_TIMES)))
        _WORKING_TIMES[calendar] = found = CalendarTime(calendar)
    return found


def resolve_public_holidays(calendar: Calendar, today: date) -> Calendar:
    """`calendar` with its country's official days for the years around `today` written in as dates.

    Only loaders call this (a policy file, the shipped default, the worker's calendar check): it reads
    the python-holidays library, whose data grows as governments publish the next year's calendar, so
    it never runs in workflow code. Days already written stay; years already written are not redone.
    """
    if calendar.public_holidays is None:
        return calendar
    years = range(today.year - PUBLIC_HOLIDAY_YEARS_BEFORE, today.year + PUBLIC_HOLIDAY_YEARS_AFTER + 1)
    missing = [year for year in years if year not in calendar.public_holiday_years]
    if not missing:
        return calendar
    import holidays  # a loader's dependency only: the workflow sandbox never imports it

    try:
        official = holidays.country_holidays(calendar.public_holidays, years=missing)
    except NotImplementedError:
        raise ValueError(f"public_holidays: no official calendar known for {calendar.public_holidays!r}") from None
    # Only what changes a deadline is kept (a holiday on a rest day changes nothing), and the team's own
    # days win over the country's: a day the team takes off stays off, a day it works stays worked.
    working = {WEEKDAYS.index(day) for day in calendar.working_days}
    days_off = {day for day in official if day.weekday() in working and day not in calendar.working_rest_days}
    working_rest_days = {
        day for day in official.weekend_workdays if day.weekday() not in working and day not in calendar.days_off
    }
    return Calendar.model_validate(
        {
            **calendar.model_dump(),
            "public_holiday_years": {*calendar.public_holiday_years, *missing},
            "days_off": {*calendar.days_off, *days_off},
            "working_rest_days": {*calendar.working_rest_days, *working_rest_days},
        }
    )
