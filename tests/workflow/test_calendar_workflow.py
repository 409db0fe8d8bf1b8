"""Working-time SLAs on the real time-skipping server: the server's clock is moved to a Friday evening in
Moscow before the incident opens (`env.sleep` skips time there), then the weekend passes in milliseconds."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta
from pathlib import Path

import httpx
import yaml
from temporalio.client import WorkflowHistory
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from infra.connection import data_converter
from tests.harness import RunningWorker, Sandboxes, worker_settings
from tests.helpers import HOUR, MINUTE, events_of, patch_ids, settled, start_incident
from tests.office_hours import MOSCOW, next_friday_evening, sleep_until
from workers.worker import build_worker, workflow_runner
from workflows.domain.policy import Policy, default_policy, parse_policy
from workflows.features import CHECK_CALENDARS
from workflows.incident_workflow import IncidentWorkflow

OFFICE = "moscow-office"
SECOND = timedelta(seconds=1)


def four_hour_routine(days_off: tuple[date, ...] = ()) -> Policy:
    """The shipped policy with the issue's example: routine line 1 holds an incident 4 h of working time."""
    data = default_policy().model_dump(mode="json")
    data["severities"]["routine"]["line_timeouts"] = {"1": "4h", "2": "8h"}
    calendar = data["calendars"][OFFICE]
    calendar["days_off"] = [*calendar["days_off"], *(day.isoformat() for day in days_off)]
    return parse_policy(data, "four-hour routine")


def close_to(actual: datetime | None, expected: datetime) -> bool:
    return actual is not None and abs(actual - expected) <= 2 * SECOND


def escalated_at(state) -> list[datetime]:
    return [e.at for e in events_of(state, "escalated")]


async def test_a_friday_evening_routine_incident_escalates_monday_at_the_due_minute(
    time_env: WorkflowEnvironment, skipping: RunningWorker
):
    policy = four_hour_routine()
    friday = await next_friday_evening(time_env, policy)
    monday_due = friday + timedelta(days=3, hours=-5)  # Monday 12:30: 30 min on Friday, 3 h 30 min on Monday
    await sleep_until(time_env, friday)
    handle = await start_incident(skipping, policy=policy, category="tariff_change")
    opened = await settled(handle)
    assert close_to(opened.opened_at, friday)
    assert close_to(opened.sla_deadline, monday_due) and close_to(opened.expected_fix_by, monday_due)
    for during_the_weekend in (friday + 6 * HOUR, friday + timedelta(days=1), friday + timedelta(days=2, hours=12)):
        await sleep_until(time_env, during_the_weekend)
        state = await settled(handle)
        assert (state.line, state.sla_breaches) == (1, []), f"escalated at {during_the_weekend}"
    await sleep_until(time_env, monday_due - MINUTE)
    assert (await settled(handle)).line == 1
    await sleep_until(time_env, monday_due + MINUTE)
    state = await settled(handle)
    assert state.line == 2 and state.sla_breaches == ["line_1"]
    (escalation,) = escalated_at(state)
    assert close_to(escalation, monday_due), escalation.astimezone(MOSCOW)


async def test_a_day_off_moves_the_deadline_to_the_next_working_day(
    time_env: WorkflowEnvironment, skipping: RunningWorker
):
    friday = await next_friday_evening(time_env, four_hour_routine())
    monday = (friday + timedelta(days=3)).date()
    policy = four_hour_routine(days_off=(monday,))
    tuesday_due = friday + timedelta(days=4, hours=-5)
    await sleep_until(time_env, friday)
    handle = await start_incident(skipping, policy=policy, category="tariff_change")
    assert close_to((await settled(handle)).sla_deadline, tuesday_due)
    await sleep_until(time_env, friday + timedelta(days=3, hours=-5) + MINUTE)  # Monday 12:31, a day off
    assert (await settled(handle)).line == 1
    await sleep_until(time_env, tuesday_due + MINUTE)
    state = await settled(handle)
    assert state.line == 2 and close_to(escalated_at(state)[0], tuesday_due)


@contextlib.asynccontextmanager
async def worker_with_policy_file(client, boxes: Sandboxes, policy_file: Path) -> AsyncIterator[RunningWorker]:
    """A worker whose calendars come from `policy_file`, as INCIDENT_POLICY gives them in production."""
    settings = worker_settings(boxes).model_copy(update={"policy_file": policy_file})
    task_queue = f"incidents-test-{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(timeout=10) as http:
        worker = build_worker(client, http, settings, task_queue=task_queue)
        running = RunningWorker(client, task_queue, worker)
        async with worker:
            try:
                yield running
            finally:
                await running.terminate_running()


def write_policy(path: Path, policy: Policy) -> None:
    path.write_text(yaml.safe_dump(policy.model_dump(mode="json"), allow_unicode=True))


def calendar_checks(history: WorkflowHistory) -> int:
    markers = [
        e.marker_recorded_event_attributes for e in history.events if e.HasField("marker_recorded_event_attributes")
    ]
    return sum(1 for m in markers if m.marker_name == "core_local_activity" and b"current_calendars" in str(m).encode())


async def test_a_new_holiday_reaches_an_open_incident_from_its_next_clock_start_and_replays(
    time_env: WorkflowEnvironment, sandboxes: Sandboxes, tmp_path: Path
):
    """Monday is declared a day off after a Friday-evening incident opened: the line-1 deadline it already
    had (Monday 12:30) stands, the line-2 clock that starts then counts Monday as a day off."""
    policy = four_hour_routine()
    policy_file = tmp_path / "policy.yml"
    write_policy(policy_file, policy)
    friday = await next_friday_evening(time_env, policy)
    monday = friday + timedelta(days=3)
    monday_due = monday - 5 * HOUR
    async with worker_with_policy_file(time_env.client, sandboxes, policy_file) as running:
        await sleep_until(time_env, friday)
        handle = await start_incident(running, policy=policy, category="tariff_change")
        await settled(handle)
        write_policy(policy_file, four_hour_routine(days_off=(monday.date(),)))
        await sleep_until(time_env, monday_due + MINUTE)
        state = await settled(handle)
        assert state.line == 2 and close_to(escalated_at(state)[0], monday_due), "the deadline it had stands"
        # Line 2's 8 h start Monday 12:30, now a day off: Tuesday 09:00-17:00.
        tuesday_five_pm = monday + timedelta(days=1, hours=-0.5)
        assert close_to(state.sla_deadline, tuesday_five_pm), state.sla_deadline
        history = await handle.fetch_history()
    assert calendar_checks(history) == 1, "asked once, when it woke on Monday"
    assert CHECK_CALENDARS in patch_ids(history)
    write_policy(policy_file, policy)  # the worker forgets the holiday again: the replay does not care
    replayer = Replayer(
        workflows=[IncidentWorkflow], data_converter=data_converter(), workflow_runner=workflow_runner()
    )
    assert (await replayer.replay_workflow(history, raise_on_replay_failure=False)).replay_failure is None


def patch_ids_of(history: WorkflowHistory) -> set[str]:
    from tests.helpers import patch_ids

    return set(patch_ids(history))


def test_a_worker_refuses_a_policy_file_with_a_bad_calendar_naming_the_field(tmp_path: Path):
    data = default_policy().model_dump(mode="json")
    data["calendars"][OFFICE]["time_zone"] = "Moscow"
    bad = tmp_path / "policy.yml"
    bad.write_text(yaml.safe_dump(data))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("WEBHOOK_", "TEMPORAL_", "INCIDENTS_DEV"))},
        "INCIDENT_POLICY": str(bad),
        "WEBHOOK_SECRET": "a-real-secret-" + "x" * 20,
        "TEMPORAL_ADDRESS": "127.0.0.1:1",  # never reached: the policy is read before connecting
    }
    done = subprocess.run(
        [sys.executable, "-m", "workers.main"], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert f"{bad}: calendars.{OFFICE}.time_zone: unknown time zone 'Moscow'" in done.stderr
