from __future__ import annotations

from temporalio.testing import WorkflowEnvironment

from tests.harness import RunningWorker, Sandboxes
from tests.helpers import MINUTE, send, start_incident, state_of


async def test_critical_incident_escalates_after_an_hour_and_resolves(
    time_env: WorkflowEnvironment, skipping: RunningWorker, sandboxes: Sandboxes
):
    handle = await start_incident(skipping)
    state = await state_of(handle)
    assert (state.severity, state.line, state.status) == ("critical", 1, "open")
    await time_env.sleep(61 * MINUTE)
    assert (await state_of(handle)).line == 2
    await send(handle, "resolve", agent="ann", resolution="line repaired")
    await time_env.sleep(MINUTE)
    state = await state_of(handle)
    assert state.status == "resolved"
    kinds = [n["kind"] for n in await sandboxes.notifications(ticket_id=state.ticket_id, recipient="customer")]
    assert kinds[0] == "ticket_opened" and "resolved" in kinds
