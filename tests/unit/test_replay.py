"""Histories of typical lifecycles, recorded once, replayed against the current workflow code.

A failure here means a change would make running incidents replay differently: guard the change
with `workflow.patched` (docs/operating.md, "Changing workflow logic safely") instead of re-recording.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, NoReturn
from zoneinfo import ZoneInfo

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.worker import (
    ContinueAsNewInput,
    Interceptor,
    Replayer,
    StartLocalActivityInput,
    UnsandboxedWorkflowRunner,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
    WorkflowOutboundInterceptor,
)
from temporalio.workflow import ActivityHandle, NondeterminismError

from infra.connection import data_converter
from tests.helpers import events_of, patch_ids, production_replayer
from workflows.contracts import Notification, NotificationBatch
from workflows.domain.incident import ANNOUNCE_ACKNOWLEDGEMENT, CUSTOMER_TIME
from workflows.domain.inputs import WORKFLOW_TYPE, IncidentInput
from workflows.domain.messages import ENGLISH, TEMPLATES
from workflows.domain.models import IncidentState
from workflows.features import CHECK_CALENDARS, PUBLISH_CLOSED_AS, RESOLVE_POLICY_LOCALLY
from workflows.incident_workflow import IncidentWorkflow
from workflows.intake_workflow import IncidentIntakeWorkflow
from workflows.outage_workflow import MajorIncidentWorkflow

HISTORIES_DIR = Path(__file__).resolve().parents[1] / "histories"
HISTORIES = sorted(HISTORIES_DIR.glob("*.json"))
INTAKE_HISTORIES = sorted((HISTORIES_DIR / "intake").glob("*.json"))
OUTAGE_HISTORIES = sorted((HISTORIES_DIR / "outage").glob("*.json"))


def load(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(path.stem, path.read_text())


def test_the_typical_lifecycles_are_stored():
    assert {p.stem for p in HISTORIES} >= {"full_critical", "routine_quick_fix", "rejected_actions_and_reopen"}
    assert {p.stem for p in HISTORIES} >= {"waiting_on_the_customer.customer-time", "self_help_first.customer-time"}
    # Issue 15: the acting agent's authority and four eyes, one refund per charge, a new key after a lookup, and
    # an incident whose client brought a policy of its own.
    assert {p.stem for p in HISTORIES} >= {
        "line_one_refund_within_limit",
        "four_eyes_refund",
        "charge_retried_under_a_new_key",
        "charge_refunded_elsewhere",
        "refused_for_its_own_policy.issue15",
    }
    assert {p.stem for p in INTAKE_HISTORIES} >= {"open_join_close"}
    assert OUTAGE_HISTORIES, "a major incident's history (issue 18)"


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
async def test_stored_history_replays_on_the_current_code(path: Path):
    result = await production_replayer(IncidentWorkflow).replay_workflow(load(path), raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure


@pytest.mark.parametrize("path", INTAKE_HISTORIES, ids=lambda p: p.stem)
async def test_stored_intake_history_replays_on_the_current_code(path: Path):
    """An intake lives as long as its incident: one opened by an older intake replays on today's code."""
    replayer = production_replayer(IncidentIntakeWorkflow)
    result = await replayer.replay_workflow(load(path), raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure


@pytest.mark.parametrize("path", OUTAGE_HISTORIES, ids=lambda p: p.stem)
async def test_stored_major_incident_history_replays_on_the_current_code(path: Path):
    replayer = production_replayer(MajorIncidentWorkflow)
    result = await replayer.replay_workflow(load(path), raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure


@workflow.defn(name=WORKFLOW_TYPE)
class ForgetfulIncidentWorkflow:
    """A 'new version' that no longer notifies or sets timers: replay must refuse it."""

    @workflow.run
    async def run(self, input: IncidentInput) -> None:
        await workflow.wait_condition(lambda: False)


async def test_replay_catches_a_change_in_workflow_logic():
    # Unsandboxed: the sandbox would re-import this whole test module just to validate the fake.
    replayer = Replayer(
        workflows=[ForgetfulIncidentWorkflow],
        data_converter=data_converter(),
        workflow_runner=UnsandboxedWorkflowRunner(),
    )
    result = await replayer.replay_workflow(load(HISTORIES[0]), raise_on_replay_failure=False)
    assert isinstance(result.replay_failure, NondeterminismError)


def final_state(history: WorkflowHistory) -> IncidentState:
    completed = history.events[-1].workflow_execution_completed_event_attributes
    return data_converter().payload_converter.from_payload(completed.result.payloads[0], IncidentState)


def first_input(history: WorkflowHistory) -> IncidentInput:
    started = history.events[0].workflow_execution_started_event_attributes
    return data_converter().payload_converter.from_payload(started.input.payloads[0], IncidentInput)


def scheduled_activities(history: WorkflowHistory) -> list[str]:
    """The activity types the history scheduled (regular activities: a local one is a marker), in order."""
    return [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
    ]


def customer_kinds(state: IncidentState) -> list[str]:
    return [e.data["kind"] for e in state.events if e.type == "customer_notified"]


async def test_the_acknowledgement_patch_keeps_old_incidents_as_they_were_and_changes_new_ones():
    """The procedure of docs/operating.md, "Changing workflow logic safely", shown on one real patch."""
    before = load(HISTORIES_DIR / "full_critical.json")
    after = load(HISTORIES_DIR / "full_critical.announce-ack.json")
    assert "acknowledged" not in customer_kinds(final_state(before))
    assert "acknowledged" in customer_kinds(final_state(after))
    assert ANNOUNCE_ACKNOWLEDGEMENT not in patch_ids(before)
    assert ANNOUNCE_ACKNOWLEDGEMENT in patch_ids(after)
    replayer = Replayer(workflows=[IncidentWorkflow], data_converter=data_converter())
    for history in (before, after):
        assert (await replayer.replay_workflow(history, raise_on_replay_failure=False)).replay_failure is None


class Overheard(Interceptor):
    """What a replayed incident would send (its notification batches) and carry on with (continue-as-new)."""

    def __init__(self) -> None:
        self.sent: list[Notification] = []
        self.continued: list[IncidentInput] = []

    def workflow_interceptor_class(self, input: WorkflowInterceptorClassInput) -> type[WorkflowInboundInterceptor]:
        heard = self

        class Outbound(WorkflowOutboundInterceptor):
            def start_local_activity(self, input: StartLocalActivityInput) -> ActivityHandle[Any]:
                if isinstance(input.args[0], NotificationBatch):
                    heard.sent.extend(input.args[0].notifications)
                return super().start_local_activity(input)

            def continue_as_new(self, input: ContinueAsNewInput) -> NoReturn:
                heard.continued.append(input.args[0])
                super().continue_as_new(input)

        class Inbound(WorkflowInboundInterceptor):
            def init(self, outbound: WorkflowOutboundInterceptor) -> None:
                super().init(Outbound(outbound))

        return Inbound


async def overhear(history: WorkflowHistory) -> Overheard:
    heard = Overheard()
    replayer = Replayer(
        workflows=[IncidentWorkflow],
        data_converter=data_converter(),
        interceptors=[heard],
        workflow_runner=UnsandboxedWorkflowRunner(),
    )
    assert (await replayer.replay_workflow(history, raise_on_replay_failure=False)).replay_failure is None
    return heard


def started_input(history: WorkflowHistory) -> IncidentInput:
    started = history.events[0].workflow_execution_started_event_attributes
    return data_converter().payload_converter.from_payload(started.input.payloads[0], IncidentInput)


def patterns(language: str) -> list[re.Pattern[str]]:
    """Each template of `language` as a pattern its texts match, whatever the fields."""
    return [
        re.compile("(?s)" + ".*".join(re.escape(part) for part in re.split(r"\$\{\w+\}", template.template)))
        for template in TEMPLATES[language].values()
    ]


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
async def test_a_replayed_incident_writes_to_its_customer_as_it_did_when_it_ran(path: Path):
    """Incidents started before languages replay with the English texts and UTC times their customers read;
    those started with the customer's locale, in the customer's language. The lines read English either way."""
    history = load(path)
    heard = await overhear(history)
    to_customer = [n for n in heard.sent if n.recipient == "customer"]
    if history.events[-1].HasField("workflow_execution_failed_event_attributes"):
        assert heard.sent == [], "an incident refused before it opened tells nobody anything"
        return
    assert to_customer, "every lifecycle tells its customer something"
    localized = started_input(history).customer_locale
    if path.stem.endswith(".customer-locale"):
        assert localized, "recorded to show the customer's locale"
    if "." not in path.stem:
        assert not localized, "recorded before languages"
    customer_language = "ru" if localized else ENGLISH
    for notification in to_customer:
        assert any(p.fullmatch(notification.message) for p in patterns(customer_language)), notification.message
        times = re.findall(r"\d:\d\d", notification.message)
        if localized:
            assert "UTC" not in notification.message
        else:  # each time the way it always read: 2026-11-23 10:00 UTC
            assert len(times) == len(re.findall(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", notification.message))
    for notification in heard.sent:
        if notification.recipient != "customer":
            assert any(p.fullmatch(notification.message) for p in patterns(ENGLISH)), notification.message


async def test_an_incident_continued_before_languages_replays_to_the_very_state_it_carried_on():
    """The carried state holds the words of the notifications still undelivered: they come out the same."""
    history = load(HISTORIES_DIR / "continued_with_a_notification_to_send.carry-notifications.json")
    continued = history.events[-1].workflow_execution_continued_as_new_event_attributes
    recorded = data_converter().payload_converter.from_payload(continued.input.payloads[0], IncidentInput)
    assert recorded.carried is not None and recorded.carried.undelivered
    (replayed,) = (await overhear(history)).continued
    assert replayed.carried is not None and replayed.carried.language is None
    assert replayed.carried.model_dump() == recorded.carried.model_dump()


async def test_the_customer_locale_is_in_the_new_histories_and_not_in_the_old():
    before, after = (
        load(HISTORIES_DIR / "full_critical.json"),
        load(HISTORIES_DIR / "full_critical.customer-locale.json"),
    )
    assert (final_state(before).language, final_state(before).time_zone) == (None, None)
    assert (final_state(after).language, final_state(after).time_zone) == ("ru", "Europe/Moscow")
    messaged = final_state(load(HISTORIES_DIR / "customer_messaged.customer-locale.json"))
    assert (messaged.language, messaged.time_zone) == ("ru", "Asia/Yekaterinburg")
    assert "customer_messaged" in [e.type for e in messaged.events]


async def test_the_weekend_history_counted_working_time_and_checked_its_calendars():
    """The stored history that exercises calendars: escalated Monday 16:30 in Moscow after a Friday-evening
    open, having asked for its calendars as it woke (under its patch), and it replays (above)."""
    history = load(HISTORIES_DIR / "routine_over_a_weekend.calendars.json")
    state = final_state(history)
    moscow = ZoneInfo("Europe/Moscow")
    opened, escalated = state.opened_at.astimezone(moscow), events_of(state, "escalated")[0].at.astimezone(moscow)
    assert (opened.strftime("%a %H:%M"), escalated.strftime("%a %H:%M")) == ("Fri 17:30", "Mon 16:30")
    assert CHECK_CALENDARS in patch_ids(history)
    markers = [
        e.marker_recorded_event_attributes for e in history.events if e.HasField("marker_recorded_event_attributes")
    ]
    assert any(m.marker_name == "core_local_activity" and "current_calendars" in str(m) for m in markers)


def test_customer_time_is_switched_on_by_its_own_markers_and_old_closes_publish_nothing_new():
    """Issue 17: the new actions are taken under `customer-time`, the close's IncidentClosedAs under its patch;
    histories recorded before either replay without them (test_stored_history_replays_on_the_current_code)."""
    waiting = load(HISTORIES_DIR / "waiting_on_the_customer.customer-time.json")
    assert {CUSTOMER_TIME, PUBLISH_CLOSED_AS} <= set(patch_ids(waiting))
    state = final_state(waiting)
    assert {"customer_asked", "customer_replied", "reopened"} <= {e.type.value for e in state.events}
    assert (state.status, state.closed_as, state.reopen_count) == ("closed", "resolved", 1)
    helped = final_state(load(HISTORIES_DIR / "self_help_first.customer-time.json"))
    assert (helped.status, helped.closed_as, helped.acknowledged_at) == ("closed", "self_resolved", None)
    for old in ("full_critical.json", "rejected_actions_and_reopen.issue14.json"):
        assert not {CUSTOMER_TIME, PUBLISH_CLOSED_AS} & set(patch_ids(load(HISTORIES_DIR / old)))


def test_the_money_histories_hold_what_they_stand_for():
    """Each stored money lifecycle went the way its name says, under the patch that names the behaviour."""
    expected = {
        "line_one_refund_within_limit": ("agent-authority", "paid"),
        "four_eyes_refund": ("agent-authority", "paid"),
        "charge_retried_under_a_new_key": ("new-key-after-lookup", "paid"),
        "charge_refunded_elsewhere": ("claim-charges", "refused"),
    }
    for name, (patch, refund_status) in expected.items():
        history = load(HISTORIES_DIR / f"{name}.json")
        state = final_state(history)
        assert patch in patch_ids(history), name
        assert state.refund is not None and state.refund.status == refund_status, name
    four_eyes = final_state(load(HISTORIES_DIR / "four_eyes_refund.json"))
    approvals = [e.by for e in four_eyes.events if e.type == "refund_approved"]
    assert approvals == ["boris", "vera"]


def test_the_policy_histories_hold_what_they_stand_for():
    """Issue 15: an incident started by a client names its policy and the worker's answer is in the history;
    one started with a client's own policy failed at once, under the patch that refuses it."""
    named = load(HISTORIES_DIR / "full_critical.issue15.json")
    scheduled = scheduled_activities(named)
    assert scheduled[:1] == ["resolve_policy"]
    refused = load(HISTORIES_DIR / "refused_for_its_own_policy.issue15.json")
    assert "policy-by-reference" in patch_ids(refused)
    failed = refused.events[-1].workflow_execution_failed_event_attributes
    assert failed.failure.application_failure_info.type == "PolicyRefused"
    assert not any(e.HasField("activity_task_scheduled_event_attributes") for e in refused.events)


RESOLVED_LOCALLY = sorted(HISTORIES_DIR.glob("*.resolve-policy-locally.json"))


@pytest.mark.parametrize("path", RESOLVED_LOCALLY, ids=lambda p: p.stem)
def test_an_incident_opened_with_every_feature_resolves_its_policy_in_its_first_workflow_task(path: Path):
    """The opening features now hold RESOLVE_POLICY_LOCALLY: the policy's answer is a local activity's marker in
    the first workflow task, not an activity and a second task; the same lifecycle recorded before took both,
    and replays so (test_stored_history_replays_on_the_current_code)."""
    name = path.name.split(".")[0]
    now, before = load(path), load(HISTORIES_DIR / f"{name}.opening-features.json")
    assert RESOLVE_POLICY_LOCALLY in first_input(now).features
    assert RESOLVE_POLICY_LOCALLY not in first_input(before).features

    assert "resolve_policy" in scheduled_activities(before) and "resolve_policy" not in scheduled_activities(now)
    answer = next(n for n, e in enumerate(now.events) if e.HasField("marker_recorded_event_attributes"))
    assert "resolve_policy" in str(now.events[answer].marker_recorded_event_attributes)
    tasks_before_it = [e for e in now.events[:answer] if e.HasField("workflow_task_completed_event_attributes")]
    assert len(tasks_before_it) == 1, "recorded by the first workflow task"
    assert len(now.events) < len(before.events)
