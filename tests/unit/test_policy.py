from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from workers.settings import WorkerSettings
from workflows.domain.durations import format_duration, parse_duration
from workflows.domain.models import Severity
from workflows.domain.policy import (
    DEFAULT_REMINDERS,
    PolicyError,
    default_policy,
    load_policy,
    load_policy_file,
    parse_policy,
)
from workflows.domain.policy_catalogue import reference_of
from workflows.domain.triage import triage


def policy_data() -> dict:
    return default_policy().model_dump(mode="json")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("15m", timedelta(minutes=15)),
        ("4h", timedelta(hours=4)),
        ("3d", timedelta(days=3)),
        ("3s", timedelta(seconds=3)),
        ("1h30m", timedelta(minutes=90)),
        (" 2H ", timedelta(hours=2)),
        (90, timedelta(seconds=90)),
    ],
)
def test_durations_parse_as_operators_write_them(text, expected):
    assert parse_duration(text) == expected
    assert parse_duration(format_duration(expected)) == expected


@pytest.mark.parametrize("bad", ["", "15", "m15", "1.5h", "-3d", "15 minutes", True, None, [1]])
def test_bad_durations_are_refused(bad):
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_default_policy_matches_the_documented_defaults():
    policy = default_policy()
    critical = policy.for_severity(Severity.critical)
    assert critical.acknowledge_within == timedelta(minutes=15)
    assert critical.line_timeouts == {1: timedelta(hours=1), 2: timedelta(hours=4)}
    assert critical.customer_updates_every == timedelta(hours=2)
    assert critical.callback_after == timedelta(hours=24)
    assert critical.compensation is not None and critical.compensation.amount == Decimal("10.00")
    assert policy.for_severity(Severity.routine).line_timeouts == {1: timedelta(hours=8), 2: timedelta(hours=24)}
    assert policy.for_severity(Severity.convenience).line_timeouts == {1: timedelta(days=3), 2: timedelta(days=7)}
    for severity in (Severity.routine, Severity.convenience):
        rules = policy.for_severity(severity)
        assert rules.callback_after is None and rules.customer_updates_every is None and rules.compensation is None
    assert policy.approval_limit(1) == Decimal("5000.00") and policy.approval_limit(2) is None


@pytest.mark.parametrize(
    ("category", "severity"),
    [
        ("connection_lost", "critical"),
        ("speed_drop", "critical"),
        ("payment_not_refunded", "critical"),
        ("tariff_change", "routine"),
        ("deferred_payment", "routine"),
        ("other", "routine"),
        ("social_login", "convenience"),
        ("ui_typo", "convenience"),
    ],
)
def test_triage_by_category(category, severity):
    verdict = triage(category, default_policy())
    assert verdict.severity == severity and verdict.note is None


def test_unknown_category_is_routine_with_a_note():
    verdict = triage("spaceship_landed", default_policy())
    assert verdict.severity == "routine"
    assert verdict.note is not None and "spaceship_landed" in verdict.note


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        (
            lambda d: d["severities"]["critical"].update(acknowledge_within="soon"),
            "severities.critical.acknowledge_within",
            "not a duration",
        ),
        (
            lambda d: d["severities"]["routine"].update(line_timeouts={"1": "8h"}),
            "severities.routine.line_timeouts",
            "lines [1, 2]",
        ),
        (lambda d: d["severities"].pop("convenience"), "severities", "convenience"),
        (lambda d: d["categories"].update(x="urgent"), "categories.x", "critical"),
        (lambda d: d["severities"]["critical"].pop("feedback_window"), "severities.critical", "feedback_window"),
        (
            lambda d: d["severities"]["critical"].update(renotify_every="0s"),
            "severities.critical.renotify_every",
            "longer than 0s",
        ),
        (lambda d: d.update(refund_approval_limits={"1": "-5"}), "refund_approval_limits.1", "greater than 0"),
        (lambda d: d.update(surprise=1), "surprise", "Extra inputs"),
        (
            lambda d: d["severities"]["critical"]["compensation"].update(currency="RUX"),
            "severities.critical.compensation.currency",
            "ISO 4217",
        ),
        (
            lambda d: d["severities"]["routine"]["reminders"].update(owned=[]),
            "severities.routine.reminders.owned",
            "at least one interval",
        ),
        (
            lambda d: d["severities"]["critical"]["reminders"].update(refund=["1h", "0s"]),
            "severities.critical.reminders.refund",
            "interval 2: must be longer than 0s",
        ),
        (
            lambda d: d["severities"]["critical"]["reminders"].update(compensation=["1h"] * 11),
            "severities.critical.reminders.compensation",
            "at most 10",
        ),
        (
            lambda d: d["severities"]["convenience"]["reminders"].update(owned=["daily"]),
            "severities.convenience.reminders.owned.0",
            "not a duration",
        ),
        (
            lambda d: d["severities"]["routine"]["reminders"].update(idle=["1h"]),
            "severities.routine.reminders.idle",
            "Extra inputs",
        ),
        (
            lambda d: d["severities"]["routine"].update(compensate_again_after_reopen=True),
            "severities.routine",
            "compensate_again_after_reopen needs compensation",
        ),
    ],
)
def test_a_bad_policy_file_names_the_field(tmp_path: Path, change, field, words):
    data = policy_data()
    change(data)
    path = tmp_path / "policy.yml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(PolicyError) as error:
        load_policy_file(path)
    message = str(error.value)
    assert str(path) in message and field in message and words in message


def test_policy_file_problems_before_validation(tmp_path: Path):
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy_file(tmp_path / "missing.yml")
    broken = tmp_path / "broken.yml"
    broken.write_text("categories: [unclosed")
    with pytest.raises(PolicyError, match="not valid YAML"):
        load_policy_file(broken)
    with pytest.raises(PolicyError, match="mapping at the top level"):
        parse_policy(["a", "list"])


def test_incident_policy_variable_names_the_file(tmp_path: Path):
    data = policy_data()
    data["name"] = "night-shift"
    data["severities"]["critical"]["line_timeouts"] = {"1": "3s", "2": "6s"}
    path = tmp_path / "night.yml"
    path.write_text(yaml.safe_dump(data))
    policy = load_policy({"INCIDENT_POLICY": str(path)})
    assert policy.name == "night-shift"
    assert policy.for_severity(Severity.critical).line_timeouts[1] == timedelta(seconds=3)
    assert load_policy({}).name == "default"


def test_policy_round_trips_through_json_as_the_workflow_input_carries_it():
    policy = default_policy()
    assert parse_policy(policy.model_dump(mode="json")) == policy


def test_reminder_ladders_default_per_severity_when_a_policy_file_has_none():
    """Policy files written before reminders existed keep working, with the shipped defaults."""
    data = policy_data()
    for rules in data["severities"].values():
        rules.pop("reminders")
    older = parse_policy(data)
    shipped = default_policy()
    for severity in Severity:
        assert older.for_severity(severity).reminders is None
        assert older.reminders_for(severity) == DEFAULT_REMINDERS[severity] == shipped.reminders_for(severity)
    critical = shipped.reminders_for(Severity.critical)
    assert [critical.wait("owned", sent) for sent in range(4)] == [timedelta(hours=h) for h in (1, 2, 2, 2)]
    assert shipped.reminders_for(Severity.convenience).refund == [timedelta(days=1)]
    assert shipped.for_severity(Severity.critical).compensate_again_after_reopen is False


# --- the policy is the worker's, named by the client (issue 15) ---


def test_a_policy_version_is_its_rules_hashed_whatever_the_files_key_order():
    data = policy_data()
    reordered = dict(reversed(list(data.items())))
    assert reference_of(parse_policy(reordered)) == reference_of(default_policy())
    data["refund_four_eyes_above"] = "1.00"
    changed = reference_of(parse_policy(data))
    assert changed.name == "default" and changed.version != reference_of(default_policy()).version
    assert str(changed) == f"default@{changed.version}"


def test_a_worker_knows_the_shipped_policy_and_those_its_settings_name(tmp_path: Path):
    files = []
    for name in ("ours", "older"):
        data = policy_data()
        data["name"] = name
        path = tmp_path / f"{name}.yml"
        path.write_text(yaml.safe_dump(data))
        files.append(path)
    settings = WorkerSettings(INCIDENT_POLICY=files[0], INCIDENT_POLICIES=str(files[1]))
    assert {r.name for r in settings.policy_catalogue().known()} == {"default", "ours", "older"}
    files[1].write_text("categories: [")
    with pytest.raises(PolicyError, match=r"older\.yml"):
        settings.policy_catalogue()


def test_a_policy_read_on_another_day_names_the_same_version_but_not_a_policy_with_other_hours():
    """The calendars' dated days are the worker's current data (written in for the years around the day a
    process read the file): an API and a worker that started years apart still name the same version."""
    early, late = default_policy(date(2026, 1, 10)), default_policy(date(2031, 6, 1))
    assert early.calendars != late.calendars
    assert reference_of(early) == reference_of(late)
    data = early.model_dump(mode="json")
    name = next(iter(data["calendars"]))
    data["calendars"][name]["working_hours"] = "10:00-19:00"
    assert reference_of(parse_policy(data)) != reference_of(early)
