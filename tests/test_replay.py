"""Histories of typical lifecycles, recorded once, replayed against the current workflow code.

A failure here means a change would make running incidents replay differently: guard the change
with `workflow.patched` (docs/operating.md, "Changing workflow logic safely") instead of re-recording.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner
from temporalio.workflow import NondeterminismError

from infra.connection import data_converter
from tests.helpers import patch_ids
from workers.worker import workflow_runner
from workflows.domain.incident import ANNOUNCE_ACKNOWLEDGEMENT
from workflows.domain.inputs import WORKFLOW_TYPE, IncidentInput
from workflows.domain.models import IncidentState
from workflows.incident_workflow import IncidentWorkflow
from workflows.intake_workflow import IncidentIntakeWorkflow

HISTORIES_DIR = Path(__file__).parent / "histories"
HISTORIES = sorted(HISTORIES_DIR.glob("*.json"))
INTAKE_HISTORIES = sorted((HISTORIES_DIR / "intake").glob("*.json"))


def load(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(path.stem, path.read_text())


def test_the_typical_lifecycles_are_stored():
    assert {p.stem for p in HISTORIES} >= {
        "full_critical",
        "routine_quick_fix",
        "rejected_actions_and_reopen",
        # Issue 15: the acting agent's authority and four eyes, one refund per charge, a new key after a lookup.
        "line_one_refund_within_limit",
        "four_eyes_refund",
        "charge_retried_under_a_new_key",
        "charge_refunded_elsewhere",
        "refused_for_its_own_policy.issue15",
    }
    assert {p.stem for p in INTAKE_HISTORIES} >= {"open_join_close"}


def production_replayer(workflow_class: type) -> Replayer:
    """The worker's own runner: the sandbox as production sets it up (passthrough modules, lean runner)."""
    return Replayer(workflows=[workflow_class], data_converter=data_converter(), workflow_runner=workflow_runner())


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
    scheduled = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in named.events
        if e.HasField("activity_task_scheduled_event_attributes")
    ]
    assert scheduled[:1] == ["resolve_policy"]
    refused = load(HISTORIES_DIR / "refused_for_its_own_policy.issue15.json")
    assert "policy-by-reference" in patch_ids(refused)
    failed = refused.events[-1].workflow_execution_failed_event_attributes
    assert failed.failure.application_failure_info.type == "PolicyRefused"
    assert not any(e.HasField("activity_task_scheduled_event_attributes") for e in refused.events)
