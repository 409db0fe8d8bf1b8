from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from temporalio.client import WithStartWorkflowOperation, WorkflowFailureError, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from infra.connection import data_converter
from starter.incidents import IncidentService, PolicyRefused
from tests.conftest import RunningWorker, Sandboxes
from tests.helpers import open_request, send, until
from tests.policies import fast_policy
from workers.settings import WorkerSettings
from workers.worker import workflow_runner
from workflows.contracts import POLICY_REFUSED
from workflows.domain.durations import format_duration, parse_duration
from workflows.domain.inputs import IncidentInput, IntakeKey, IntakeRequest, IntakeResult, intake_workflow_id
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
from workflows.domain.tickets import new_ticket_id
from workflows.domain.triage import triage
from workflows.incident_start import start_options
from workflows.incident_workflow import IncidentWorkflow


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


async def test_a_client_cannot_open_an_incident_under_a_policy_of_its_own(
    time_env: WorkflowEnvironment, skipping: RunningWorker, sandboxes: Sandboxes
):
    """Started directly with its own policy, or naming one the worker does not know: the run fails at once,
    cleanly (no workflow task fails), naming why; nothing is opened and nobody is told anything."""
    own = default_policy().model_copy(update={"refund_approval_limits": {1: Decimal("99999999.00")}})
    unknown = reference_of(own)
    request = open_request()
    attempts = {
        "of its own": IncidentInput(ticket_id=new_ticket_id(), request=request, policy=own),
        str(unknown): IncidentInput(ticket_id=new_ticket_id(), request=request, policy_ref=unknown),
        "names no policy": IncidentInput(ticket_id=new_ticket_id(), request=request),
    }
    for what, input in attempts.items():
        handle = await skipping.client.start_workflow(
            IncidentWorkflow.run, input, task_queue=skipping.task_queue, **start_options(input, policy=own)
        )
        with pytest.raises(WorkflowFailureError) as failed:
            await asyncio.wait_for(handle.result(), timeout=30)  # an incident that opened would never end here
        cause = failed.value.cause
        assert isinstance(cause, ApplicationError) and cause.type == POLICY_REFUSED and what in cause.message
        history = await handle.fetch_history()
        assert not any(e.HasField("workflow_task_failed_event_attributes") for e in history.events), what
        assert await sandboxes.notifications(ticket_id=input.ticket_id) == [], what
    # Through the project's client, the intake refuses the unknown policy too, naming it and what the worker knows.
    service = IncidentService(skipping.client, policy=own, task_queue=skipping.task_queue)
    for new_incident in (False, True):
        with pytest.raises(PolicyRefused) as refused:
            await service.open(open_request(customer_id=f"own-{new_incident}", new_incident=new_incident))
        assert str(unknown) in refused.value.reason and str(reference_of(default_policy())) in refused.value.reason
    # A client that hands the intake a policy of its own (as clients did before they named one) is refused.
    operation: WithStartWorkflowOperation[Any, Any] = WithStartWorkflowOperation(
        "IncidentIntake",
        IntakeKey(customer_id="own-intake", category="connection_lost"),
        id=intake_workflow_id("own-intake", "connection_lost"),
        task_queue=skipping.task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )
    with pytest.raises(WorkflowUpdateFailedError) as update_failed:
        await skipping.client.execute_update_with_start_workflow(
            "open",
            IntakeRequest(request=open_request(customer_id="own-intake"), policy=own),
            start_workflow_operation=operation,
            result_type=IntakeResult,
        )
    cause = update_failed.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == POLICY_REFUSED and "of its own" in cause.message


async def test_an_incident_opens_under_the_policy_it_names_and_replays_without_the_worker_knowing_it(
    time_env: WorkflowEnvironment, skipping: RunningWorker
):
    """The worker's answer is recorded in the history (a local activity): the incident replays under it on a
    worker that no longer knows that policy. An action sent with the start waits for the opening, not lost."""
    policy = fast_policy(line_timeouts={"1": "1h", "2": "1h"}, acknowledge_within="7m")
    input = IncidentInput(ticket_id=new_ticket_id(), request=open_request(), policy_ref=reference_of(policy))
    handle = await skipping.client.start_workflow(
        IncidentWorkflow.run,
        input,
        task_queue=skipping.task_queue,
        start_signal="add_note",
        start_signal_args=[{"agent": "ann", "text": "called at once"}],
        **start_options(input, policy=policy),
    )
    skipping.started.append(handle)
    state = await until(handle, lambda s: s.notes == 1)
    assert [e.type.value for e in state.events[:1]] == ["opened"] and state.policy_name == "fast"
    assert state.acknowledge_deadline == state.opened_at + timedelta(minutes=7), "the named policy's rules"
    await send(handle, "resolve", agent="ann", resolution="done")
    await until(handle, lambda s: s.status != "open")
    history = await handle.fetch_history()
    replayer = Replayer(
        workflows=[IncidentWorkflow], data_converter=data_converter(), workflow_runner=workflow_runner()
    )
    assert (await replayer.replay_workflow(history, raise_on_replay_failure=False)).replay_failure is None
