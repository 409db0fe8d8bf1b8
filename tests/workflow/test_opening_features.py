"""A new incident opens with every feature its code has: its history holds no patch markers.

Each `workflow.patched` a new incident asked cost a marker and a TemporalChangeVersion upsert (a visibility
write); four of them made a critical lifecycle 64 events. Incidents opened before the list asked them and
replay so (tests/unit/test_replay.py); these are the lifecycles as the service and the intake start them now.
"""

from __future__ import annotations

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

from starter.incidents import IncidentService
from tests.harness import RunningWorker, Sandboxes
from tests.helpers import open_request
from tests.lifecycles import LIFECYCLES, critical_after_opening
from workflows.domain.policy import default_policy

# The lifecycles started as the service starts one (the customer's locale, the opening features): escalation,
# refunds, messages in the customer's language, four eyes, money after a final no. (rejected_actions_and_reopen's
# late signals meet the time-skipping server's 'invalid history builder state' now and then under load; its
# opening-features history replays in tests/unit/test_replay.py.)
AS_STARTED_NOW = [
    "full_critical",
    "line_one_refund_within_limit",
    "customer_messaged",
    "four_eyes_refund",
    "charge_retried_under_a_new_key",
]


@pytest.mark.parametrize("name", AS_STARTED_NOW)
async def test_a_new_incident_asks_no_patch(
    name: str, time_env: WorkflowEnvironment, skipping: RunningWorker, sandboxes: Sandboxes
) -> None:
    handle = await LIFECYCLES[name](time_env, skipping, sandboxes)
    history = await handle.fetch_history()
    markers = [
        e.marker_recorded_event_attributes.marker_name
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
    ]
    assert "core_patch" not in markers
    upserted = [
        name
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES
        for name in e.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields
    ]
    assert "TemporalChangeVersion" not in upserted


async def test_a_critical_lifecycle_through_the_service_fits_its_event_budget(
    time_env: WorkflowEnvironment, skipping: RunningWorker
) -> None:
    """The bench's (6) row on the time-skipping server: opened through the intake (as `IncidentService.open`
    does), escalated by timeout, refunded, resolved late and compensated, called back, closed."""
    service = IncidentService(skipping.client, policy=default_policy(), task_queue=skipping.task_queue)
    opened = await service.open(
        open_request(category="payment_not_refunded", refund={"amount": "1500.00", "currency": "RUB"})
    )
    handle = await critical_after_opening(time_env, time_env.client.get_workflow_handle(opened.ticket_id))
    events = (await handle.fetch_history()).events
    kinds = {e.event_type for e in events}
    assert EventType.EVENT_TYPE_TIMER_FIRED in kinds  # it escalated on its own
    assert len(events) <= 60
