"""Histories of typical lifecycles, recorded once, replayed against the current workflow code.

A failure here means a change would make running incidents replay differently: guard the change
with `workflow.patched` (README, "Changing workflow logic safely") instead of re-recording.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

from starter.connection import data_converter
from workflows.domain.inputs import WORKFLOW_TYPE, IncidentInput
from workflows.incident_workflow import IncidentWorkflow

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def load(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(path.stem, path.read_text())


def test_the_typical_lifecycles_are_stored():
    assert {p.stem for p in HISTORIES} >= {"full_critical", "routine_quick_fix", "rejected_actions_and_reopen"}


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
async def test_stored_history_replays_on_the_current_code(path: Path):
    replayer = Replayer(workflows=[IncidentWorkflow], data_converter=data_converter())
    result = await replayer.replay_workflow(load(path), raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure


@workflow.defn(name=WORKFLOW_TYPE)
class ForgetfulIncidentWorkflow:
    """A 'new version' that no longer notifies or sets timers: replay must refuse it."""

    @workflow.run
    async def run(self, input: IncidentInput) -> None:
        await workflow.wait_condition(lambda: False)


async def test_replay_catches_a_change_in_workflow_logic():
    replayer = Replayer(workflows=[ForgetfulIncidentWorkflow], data_converter=data_converter())
    result = await replayer.replay_workflow(load(HISTORIES[0]), raise_on_replay_failure=False)
    assert isinstance(result.replay_failure, NondeterminismError)
