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
from workflows.outage_workflow import MajorIncidentWorkflow

HISTORIES_DIR = Path(__file__).parent / "histories"
HISTORIES = sorted(HISTORIES_DIR.glob("*.json"))
INTAKE_HISTORIES = sorted((HISTORIES_DIR / "intake").glob("*.json"))
OUTAGE_HISTORIES = sorted((HISTORIES_DIR / "outage").glob("*.json"))


def load(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(path.stem, path.read_text())


def test_the_typical_lifecycles_are_stored():
    assert {p.stem for p in HISTORIES} >= {"full_critical", "routine_quick_fix", "rejected_actions_and_reopen"}
    assert {p.stem for p in INTAKE_HISTORIES} >= {"open_join_close"}
    assert OUTAGE_HISTORIES, "a major incident's history (issue 18)"


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
