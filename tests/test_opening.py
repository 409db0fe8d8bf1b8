"""Opening through the intake on the real dev server: idempotent, race-free, joins recontacts."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from starter.incidents import ActionRejected, IncidentNotFound, IncidentService, IncidentSummary
from tests.conftest import RunningWorker, Sandboxes, running_worker
from tests.helpers import open_request
from tests.policies import fast_policy
from workflows.domain.models import Acknowledge, Resolve


@pytest.fixture
async def live(dev_env: WorkflowEnvironment, sandboxes: Sandboxes) -> AsyncIterator[RunningWorker]:
    async with running_worker(dev_env.client, sandboxes) as running:
        yield running


@pytest.fixture
def service(live: RunningWorker) -> IncidentService:
    return IncidentService(live.client, policy=fast_policy(), task_queue=live.task_queue)


def customer() -> str:
    return f"cust-{uuid.uuid4().hex[:8]}"


async def searched(service: IncidentService, attempts: int = 100, **filters: Any) -> list[IncidentSummary]:
    """The search's rows, asked again every 0.1 s until there are some: visibility follows a start by a moment."""
    rows: list[IncidentSummary] = []
    for _ in range(attempts):
        rows = await service.search(**filters)
        if rows:
            break
        await asyncio.sleep(0.1)
    return rows


async def test_the_same_request_id_opened_concurrently_gives_one_ticket(service: IncidentService):
    request = open_request(customer_id=customer(), request_id="billing-42")
    results = await asyncio.gather(*(service.open(request) for _ in range(5)))
    assert len({r.ticket_id for r in results}) == 1
    assert sorted(r.outcome for r in results) == ["created", "existing", "existing", "existing", "existing"]


async def test_concurrent_opens_for_one_problem_make_one_incident_and_join_the_rest(service: IncidentService):
    who = customer()
    results = await asyncio.gather(
        *(service.open(open_request(customer_id=who, description=f"call {i}")) for i in range(4))
    )
    assert len({r.ticket_id for r in results}) == 1
    assert sorted(r.outcome for r in results) == ["created", "joined", "joined", "joined"]
    state = await service.state(results[0].ticket_id)
    assert state.recontacts == 3
    texts = sorted(e.data["text"] for e in state.events if e.type == "customer_recontacted")
    assert len(texts) == 3 and all(t.startswith("call ") for t in texts)


async def test_the_intake_answers_with_the_incident_as_the_incident_itself_opened_it(service: IncidentService):
    opened = await service.open(open_request(customer_id=customer(), category="connection_lost"))
    assert opened.created
    own = await service.state(opened.ticket_id)
    assert own.opened_at == opened.state.opened_at
    assert own.expected_fix_by == opened.state.expected_fix_by
    assert own.severity == opened.state.severity and own.line == opened.state.line == 1
    assert own.events[0] == opened.state.events[0]


async def test_an_incident_opened_by_the_intake_starts_with_every_search_attribute_set(service: IncidentService):
    who = customer()
    opened = await service.open(open_request(customer_id=who, category="connection_lost"))
    await service.state(opened.ticket_id)  # its first task has run
    history = await service.handle(opened.ticket_id).fetch_history()
    assert not [e for e in history.events if e.HasField("upsert_workflow_search_attributes_event_attributes")]
    (row,) = await searched(service, attempts=50, customer_id=who)
    assert row.sla_deadline == opened.state.sla_deadline is not None
    assert (row.status, row.line, row.severity) == ("open", 1, "critical")


async def test_a_different_category_or_an_explicit_request_opens_a_new_incident(service: IncidentService):
    who = customer()
    first = await service.open(open_request(customer_id=who))
    other_problem = await service.open(open_request(customer_id=who, category="tariff_change"))
    explicit = await service.open(open_request(customer_id=who, new_incident=True))
    assert first.created and other_problem.created and explicit.created
    assert len({first.ticket_id, other_problem.ticket_id, explicit.ticket_id}) == 3


async def test_after_the_incident_closes_the_same_problem_opens_a_new_one(service: IncidentService):
    who = customer()
    first = await service.open(open_request(customer_id=who, category="tariff_change"))
    await service.act(first.ticket_id, Resolve(agent="ann", resolution="done"))
    await service.client.get_workflow_handle(first.ticket_id).result()
    for _ in range(100):
        second = await service.open(open_request(customer_id=who, category="tariff_change"))
        if second.ticket_id != first.ticket_id:
            break
        await asyncio.sleep(0.05)
    assert second.created and second.ticket_id != first.ticket_id
    assert (await service.state(first.ticket_id)).status == "closed"


async def test_actions_report_rejections_and_unknown_tickets(service: IncidentService):
    opened = await service.open(open_request(customer_id=customer(), category="tariff_change"))
    result = await service.act(opened.ticket_id, Acknowledge(agent="ann"))
    assert result.accepted
    with pytest.raises(ActionRejected, match="already acknowledged by ann"):
        await service.act(opened.ticket_id, Acknowledge(agent="ann"))
    with pytest.raises(IncidentNotFound):
        await service.state("INC-000000")
    with pytest.raises(IncidentNotFound):
        await service.act("INC-000000", Acknowledge(agent="ann"))
    await service.act(opened.ticket_id, Resolve(agent="ann", resolution="done"))
    await service.client.get_workflow_handle(opened.ticket_id).result()
    with pytest.raises(ActionRejected, match="closed"):
        await service.act(opened.ticket_id, Resolve(agent="ann", resolution="again"))


async def test_search_by_customer_severity_and_line(service: IncidentService):
    who = customer()
    opened = await service.open(open_request(customer_id=who))
    rows = await searched(service, customer_id=who, severity="critical", line=1)
    assert [r.ticket_id for r in rows] == [opened.ticket_id]
    assert rows[0].status == "open" and rows[0].category == "connection_lost"
