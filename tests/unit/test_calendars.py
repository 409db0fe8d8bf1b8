"""Working-time calendars, pure: the Russian production calendar, the closed-form arithmetic and its
invariants (hypothesis), and how the SLA clock counts, pauses and resumes in working time."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workflows.domain import policy as policy_module
from workflows.domain.calendars import (
    WALL_TIME,
    Calendar,
    CalendarTime,
    resolve_public_holidays,
    working_time,
)
from workflows.domain.models import Severity
from workflows.domain.policy import PolicyError, default_policy, load_policy_file
from workflows.domain.sla import Clock, SlaClock

MOSCOW = ZoneInfo("Europe/Moscow")
HOUR = timedelta(hours=1)
LOADED_ON = date(2026, 6, 1)
OFFICE = resolve_public_holidays(Calendar(time_zone="Europe/Moscow", public_holidays="RU"), LOADED_ON)
PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def moscow(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=MOSCOW)


def in_moscow(instant: datetime | None) -> datetime:
    assert instant is not None
    return instant.astimezone(MOSCOW)


# --- the Russian production calendar, as the loader writes it into the policy ---


@pytest.mark.parametrize(("year", "working_days"), [(2025, 247), (2026, 247), (2027, 247)])
def test_the_official_count_of_working_days_per_year(year: int, working_days: int):
    """The production calendars the government published (2025, 2026) and decreed (2027): 247 working days."""
    office = working_time(OFFICE)
    assert isinstance(office, CalendarTime)
    first, last = date(year, 1, 1).toordinal(), date(year + 1, 1, 1).toordinal()
    assert office.working_days_between(first, last) == working_days


def test_transferred_days_both_ways():
    office = working_time(OFFICE)
    assert isinstance(office, CalendarTime)
    # 2025: Saturday 1 November worked, Monday 3 November off in exchange; 2 May off for Saturday 4 January.
    assert office.is_working_day(date(2025, 11, 1).toordinal())
    assert not office.is_working_day(date(2025, 11, 3).toordinal())
    assert not office.is_working_day(date(2025, 5, 2).toordinal())
    # 2026: Friday 9 January off for Saturday 3 January; 2027: Saturday 20 February worked.
    assert not office.is_working_day(date(2026, 1, 9).toordinal())
    assert office.is_working_day(date(2027, 2, 20).toordinal())
    assert OFFICE.public_holiday_years == (2025, 2026, 2027, 2028)


def test_friday_evening_with_four_hours_is_due_monday_midday():
    assert in_moscow(working_time(OFFICE).after(moscow(2026, 11, 27, 17, 30), 4 * HOUR)) == moscow(2026, 11, 30, 12, 30)


def test_a_working_saturday_takes_the_friday_evening_incident():
    assert in_moscow(working_time(OFFICE).after(moscow(2025, 10, 31, 17, 30), 4 * HOUR)) == moscow(2025, 11, 1, 12, 30)


def test_the_new_year_holidays_move_a_deadline_by_twelve_days():
    # 31 December 2025 and 1-9 January 2026 are days off, 10-11 January a weekend.
    assert in_moscow(working_time(OFFICE).after(moscow(2025, 12, 30, 17, 30), 4 * HOUR)) == moscow(2026, 1, 12, 12, 30)


def test_a_duration_that_uses_a_day_up_ends_at_closing_time_not_the_next_morning():
    office = working_time(OFFICE)
    assert in_moscow(office.after(moscow(2026, 11, 23, 9, 0), 9 * HOUR)) == moscow(2026, 11, 23, 18, 0)
    assert in_moscow(office.after(moscow(2026, 11, 23, 7, 0), 18 * HOUR)) == moscow(2026, 11, 24, 18, 0)
    assert in_moscow(office.after(moscow(2026, 11, 23, 18, 0), HOUR)) == moscow(2026, 11, 24, 10, 0)


def test_a_year_of_holidays_costs_a_few_comparisons_not_a_slower_deadline():
    """Every weekday of 2026 off but the last: the deadline is found in a few dozen closed-form counts."""
    year = [date(2026, 1, 1) + timedelta(days=n) for n in range(364)]
    calendar = Calendar(time_zone="Europe/Moscow", days_off=[d for d in year if d.weekday() < 5])
    counted = CountingCalendarTime(calendar)
    due = counted.after(moscow(2026, 1, 1, 10, 0), 4 * HOUR)
    assert in_moscow(due) == moscow(2026, 12, 31, 13, 0)
    assert counted.counts < 40, counted.counts


class CountingCalendarTime(CalendarTime):
    counts = 0

    def working_days_between(self, first: int, last: int) -> int:
        self.counts += 1
        return super().working_days_between(first, last)


def test_the_loader_refuses_an_unknown_country_and_bad_hours():
    with pytest.raises(ValueError, match="no official calendar known for 'XX'"):
        resolve_public_holidays(Calendar(time_zone="UTC", public_holidays="XX"), LOADED_ON)
    with pytest.raises(ValueError, match="unknown time zone"):
        Calendar(time_zone="Mars/Olympus")
    with pytest.raises(ValueError, match="must end after it starts"):
        Calendar(time_zone="UTC", working_hours="18:00-09:00")
    with pytest.raises(ValueError, match="at least one working day"):
        Calendar(time_zone="UTC", working_days=[])


def test_the_teams_own_days_win_over_the_countrys():
    own = Calendar(
        time_zone="Europe/Moscow",
        public_holidays="RU",
        days_off=[date(2025, 11, 1)],  # the country works this Saturday; the team does not
        working_rest_days=[],
    )
    worked_holiday = Calendar(time_zone="Europe/Moscow", public_holidays="RU", working_rest_days=[date(2026, 1, 3)])
    assert date(2025, 11, 1) not in resolve_public_holidays(own, LOADED_ON).working_rest_days
    office = working_time(resolve_public_holidays(worked_holiday, LOADED_ON))
    assert isinstance(office, CalendarTime) and office.is_working_day(date(2026, 1, 3).toordinal())


def test_resolving_again_changes_nothing():
    assert resolve_public_holidays(OFFICE, LOADED_ON) is OFFICE


# --- invariants, for the production calendar and for random ones ---

ZONES = ["Europe/Moscow", "Asia/Yekaterinburg", "Asia/Vladivostok", "UTC"]
instants = st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC))
durations = st.one_of(
    st.integers(min_value=1, max_value=10 * 60 * 60 * 1_000_000).map(lambda us: timedelta(microseconds=us)),
    st.integers(min_value=1, max_value=90 * 24 * 60).map(lambda minutes: timedelta(minutes=minutes)),
)


@st.composite
def calendars(draw: st.DrawFn, min_window: int = 1) -> Calendar:
    if draw(st.booleans()):
        return OFFICE
    start = draw(st.integers(min_value=0, max_value=24 * 60 - min_window))
    end = draw(st.integers(min_value=start + min_window, max_value=24 * 60))
    days = draw(st.lists(st.sampled_from(["mon", "tue", "wed", "thu", "fri", "sat", "sun"]), min_size=1, unique=True))
    some_dates = st.dates(min_value=date(2025, 1, 1), max_value=date(2027, 12, 31))
    days_off = draw(st.lists(some_dates, max_size=40, unique=True))
    working_rest_days = [d for d in draw(st.lists(some_dates, max_size=10, unique=True)) if d not in days_off]
    return Calendar(
        time_zone=draw(st.sampled_from(ZONES)),
        working_days=days,
        working_hours=f"{start // 60:02d}:{start % 60:02d}-{end // 60:02d}:{end % 60:02d}",
        days_off=days_off,
        working_rest_days=working_rest_days,
    )


def works(calendar: Calendar, day: date) -> bool:
    weekday = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[day.weekday()]
    return day in calendar.working_rest_days or (weekday in calendar.working_days and day not in calendar.days_off)


def inside_a_window(calendar: Calendar, instant: datetime) -> bool:
    """After a working day's opening minute and no later than its closing one, read off the calendar's fields."""
    opening, closing = calendar.working_hours.split("-")
    local = instant.astimezone(ZoneInfo(calendar.time_zone)).replace(tzinfo=None)
    if closing == "24:00" and local.time() == time(0):
        return works(calendar, local.date() - timedelta(days=1))
    closes = time.max if closing == "24:00" else time.fromisoformat(closing)
    return works(calendar, local.date()) and time.fromisoformat(opening) < local.time() <= closes


@PROPERTY
@given(calendars(), instants, durations)
def test_a_deadline_falls_inside_working_hours_or_on_their_closing_minute(calendar, start, duration):
    """Never on the opening minute either: the working time just before the deadline was used."""
    due = working_time(calendar).after(start, duration)
    assert due > start
    assert inside_a_window(calendar, due)
    assert working_time(calendar).is_working(due)


@PROPERTY
@given(calendars(), instants, durations, durations)
def test_adding_durations_composes(calendar, start, first, second):
    hours = working_time(calendar)
    assert hours.after(hours.after(start, first), second) == hours.after(start, first + second)


@PROPERTY
@given(calendars(), instants, durations)
def test_the_working_time_to_a_deadline_is_its_duration(calendar, start, duration):
    hours = working_time(calendar)
    assert hours.between(start, hours.after(start, duration)) == duration


@PROPERTY
@given(calendars(), instants, durations, instants, instants)
def test_pause_then_resume_keeps_the_working_time_left_exactly(calendar, opened, sla, paused, resumed):
    opened, paused, resumed = sorted([opened, paused, resumed])
    hours = working_time(calendar)
    clock = SlaClock()
    clock.use(hours)
    due = clock.start(Clock.line, opened, sla, "line-1 SLA").due_at
    left = hours.between(paused, due)
    clock.pause(paused)
    assert clock.next() is None, "a paused SLA clock cannot fire"
    clock.resume(resumed)
    resumed_due = clock.due_at(Clock.line)
    assert resumed_due is not None
    assert hours.between(resumed, resumed_due) == left
    if left:
        assert resumed_due == hours.after(resumed, left)


@PROPERTY
@given(instants, durations)
def test_around_the_clock_is_wall_time(start, duration):
    assert WALL_TIME.after(start, duration) == start + duration
    every_hour = Calendar(
        time_zone="UTC", working_days=["mon", "tue", "wed", "thu", "fri", "sat", "sun"], working_hours="00:00-24:00"
    )
    assert working_time(every_hour).after(start, duration) == start + duration


def walk_day_by_day(calendar: Calendar, start: datetime, duration: timedelta) -> datetime:
    """The reference: take each working day's window in turn until the duration is used up."""
    zone = ZoneInfo(calendar.time_zone)
    opening, closing = (
        timedelta(hours=int(hhmm[:2]), minutes=int(hhmm[3:])) for hhmm in calendar.working_hours.split("-")
    )
    local = start.astimezone(zone).replace(tzinfo=None)
    day, left = local.date(), duration
    while True:
        if works(calendar, day):
            midnight = datetime.combine(day, time())
            begin, end = max(midnight + opening, local), midnight + closing
            if begin < end:
                if left <= end - begin:
                    return (begin + left).replace(tzinfo=zone).astimezone(UTC)
                left -= end - begin
        day += timedelta(days=1)


@PROPERTY
@given(calendars(min_window=60), instants, durations.filter(lambda d: d <= timedelta(days=20)))
def test_the_closed_form_agrees_with_walking_the_calendar_day_by_day(calendar, start, duration):
    assert working_time(calendar).after(start, duration) == walk_day_by_day(calendar, start, duration)


def test_clocks_that_are_not_the_teams_count_wall_time():
    clock = SlaClock()
    clock.use(working_time(OFFICE))
    friday_evening = moscow(2026, 11, 27, 17, 30)
    assert in_moscow(clock.start(Clock.line, friday_evening, 4 * HOUR, "line").due_at) == moscow(2026, 11, 30, 12, 30)
    assert clock.start(Clock.callback, friday_evening, 4 * HOUR, "callback").due_at == friday_evening + 4 * HOUR
    assert clock.start(Clock.feedback, friday_evening, 4 * HOUR, "answer").due_at == friday_evening + 4 * HOUR


def test_a_clock_started_during_a_pause_runs_whole_from_the_resume():
    clock = SlaClock()
    clock.use(working_time(OFFICE))
    clock.pause(moscow(2026, 11, 23, 10, 0))
    clock.start(Clock.line, moscow(2026, 11, 23, 11, 0), 4 * HOUR, "line-2 SLA")
    clock.resume(moscow(2026, 11, 24, 17, 0))
    assert in_moscow(clock.due_at(Clock.line)) == moscow(2026, 11, 25, 12, 0)


def test_the_working_time_left_at_the_pause_survives_a_new_holiday():
    """The pause measured what was left; a day off declared meanwhile shifts the rest, not the amount."""
    clock = SlaClock()
    clock.use(working_time(OFFICE))
    clock.start(Clock.line, moscow(2026, 11, 23, 10, 0), 12 * HOUR, "line-1 SLA")  # due Tuesday 13:00
    clock.pause(moscow(2026, 11, 23, 16, 0))  # 6 h left: 2 h on Monday, 4 h on Tuesday
    holiday = Calendar.model_validate({**OFFICE.model_dump(), "days_off": [*OFFICE.days_off, date(2026, 11, 24)]})
    clock.use(working_time(holiday))
    clock.resume(moscow(2026, 11, 23, 17, 0))
    # 1 h on Monday, Tuesday off, 5 h on Wednesday.
    assert in_moscow(clock.due_at(Clock.line)) == moscow(2026, 11, 25, 14, 0)


def test_paused_left_is_absent_from_the_stored_clock_when_empty():
    assert "paused_left" not in SlaClock().model_dump_json()


# --- calendars in a policy file ---


def policy_file_with(tmp_path: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    data = yaml.safe_load((Path(policy_module.__file__).parent / "default_policy.yml").read_text())
    change(data)
    path = tmp_path / "policy.yml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (
            lambda d: d["severities"]["routine"].update(calendar="night-shift"),
            "severities.routine.calendar names no calendar here: 'night-shift'",
        ),
        (lambda d: d["calendars"]["moscow-office"].update(time_zone="Moscow"), "calendars.moscow-office.time_zone"),
        (lambda d: d["calendars"]["moscow-office"].update(working_hours="9-18"), "working_hours"),
        (lambda d: d["calendars"]["moscow-office"].update(working_days=["monday"]), "working_days"),
        (lambda d: d["calendars"]["moscow-office"].update(public_holidays="XX"), "moscow-office.public_holidays"),
        (lambda d: d["calendars"]["moscow-office"].update(days_off=["someday"]), "days_off"),
        (lambda d: d["calendars"].update({"24/7": {"time_zone": "UTC"}}), "24/7"),
    ],
)
def test_a_bad_calendar_in_a_policy_file_names_the_field(tmp_path: Path, change, words):
    path = policy_file_with(tmp_path, change)
    with pytest.raises(PolicyError) as error:
        load_policy_file(path)
    assert str(path) in str(error.value) and words in str(error.value), str(error.value)


def test_the_shipped_policy_counts_routine_and_convenience_in_office_hours_and_critical_around_the_clock():
    policy = default_policy(today=LOADED_ON)
    assert policy.working_time(Severity.critical) is WALL_TIME
    for severity in (Severity.routine, Severity.convenience):
        assert working_time(policy.calendars["moscow-office"]) is policy.working_time(severity)
    assert policy.calendars["moscow-office"] == OFFICE, "the file's calendar is Russia's, loaded like OFFICE here"


def test_a_policy_without_calendars_counts_wall_time_as_before(tmp_path: Path):
    """Policies (and incidents' inputs) written before calendars existed: every clock counts wall time."""

    def no_calendars(data: dict[str, Any]) -> None:
        del data["calendars"]
        for rules in data["severities"].values():
            rules.pop("calendar", None)

    policy = load_policy_file(policy_file_with(tmp_path, no_calendars))
    assert all(policy.working_time(severity) is WALL_TIME for severity in Severity)
