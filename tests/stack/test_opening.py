"""Opening through the intake on the real dev server: idempotent, race-free, joins recontacts."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from temporalio.client import WithStartWorkflowOperation
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.testing import WorkflowEnvironment

from starter.incidents import ActionRejected, IncidentNotFound, IncidentService, IncidentSummary
from tests.harness import RunningWorker, Sandboxes, running_worker
from tests.helpers import open_request
from tests.policies import fast_policy, known
from workflows.domain.actions import Acknowledge, Resolve
from workflows.domain.inputs import IntakeKey, IntakeRequest, IntakeResult, intake_workflow_id
from workflows.domain.models import OpenIncident
from workflows.domain.policy import parse_policy
from workflows.domain.tickets import ticket_for_request


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
    # The answer carries the incident as the action left it: callers need no second query.
    assert result.state is not None and result.state.assignee == "ann"
    assert result.state.events[-1].seq >= result.event_seq
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


# --- what a joined request carries, and who it joins (issue 14, items 2-5) ---


async def test_a_joined_request_brings_its_refund_and_contact_and_is_answered_after_the_incident_took_them(
    service: IncidentService, sandboxes: Sandboxes
):
    who = customer()
    first = await service.open(open_request(customer_id=who, contact="+7 900 000-00-01"))
    joined = await service.open(
        open_request(
            customer_id=who,
            description="and I was charged 700 for nothing",
            contact="ann@example.com",
            refund={"amount": "700.00", "currency": "RUB"},
        )
    )
    assert joined.outcome == "joined" and joined.ticket_id == first.ticket_id
    # "joined" came back only after the incident recorded it: the state already holds all of it.
    assert joined.state.refund is not None and joined.state.refund.amount == Decimal("700.00")
    assert joined.state.contact == "ann@example.com"
    recontact = next(e for e in joined.state.events if e.type == "customer_recontacted")
    assert recontact.data["text"] == "and I was charged 700 for nothing" and recontact.data["contact_updated"]
    for _ in range(100):
        paid = await sandboxes.ledger(reference=first.ticket_id)
        if paid:
            break
        await asyncio.sleep(0.1)
    assert [(row["kind"], row["amount"]) for row in paid] == [("refund", "700.00")]
    # The same refund again is no second one; a different amount is refused in words, never "joined".
    again = await service.open(open_request(customer_id=who, refund={"amount": "700.00", "currency": "RUB"}))
    assert again.outcome == "joined" and again.state.refund is not None
    with pytest.raises(ActionRejected, match="already owed"):
        await service.open(open_request(customer_id=who, refund={"amount": "800.00", "currency": "RUB"}))


async def test_a_new_problem_after_the_incident_closed_but_still_runs_opens_a_new_incident_naming_it(
    service: IncidentService, sandboxes: Sandboxes
):
    who = customer()
    first = await service.open(open_request(customer_id=who, category="tariff_change"))
    # The notification endpoint is down: the closed incident's workflow keeps running to retry them.
    await sandboxes.set_notify_faults(down_for_seconds=60)
    try:
        await service.act(first.ticket_id, Resolve(agent="ann", resolution="done"))
        assert (await service.state(first.ticket_id)).status == "closed"
        second = await service.open(open_request(customer_id=who, category="tariff_change", description="again"))
        assert second.created and second.ticket_id != first.ticket_id
        assert second.state.previous_ticket == first.ticket_id
        assert second.state.events[0].data["previous_ticket"] == first.ticket_id
    finally:
        await sandboxes.set_notify_faults(down_for_seconds=0)


async def test_a_customer_back_after_resolution_reopens_it_with_the_line_that_resolved_it(
    live: RunningWorker,
):
    policy = fast_policy(line_timeouts={"1": "1h", "2": "1h"}, callback_after="1h")
    service = IncidentService(live.client, policy=policy, task_queue=live.task_queue)
    who = customer()
    first = await service.open(open_request(customer_id=who))
    await service.act(first.ticket_id, Acknowledge(agent="ann"))
    await service.act(first.ticket_id, Resolve(agent="ann", resolution="rebooted the port"))
    back = await service.open(open_request(customer_id=who, description="it is down again"))
    assert back.outcome == "joined" and back.ticket_id == first.ticket_id
    assert back.state.status == "open" and back.state.reopen_count == 1 and back.state.line == 1
    assert back.state.sla_deadline is not None and back.state.next_deadline is not None


async def test_a_customer_back_long_after_resolution_gets_a_new_incident_that_names_the_old(live: RunningWorker):
    data = fast_policy(line_timeouts={"1": "1h", "2": "1h"}, callback_after="1h").model_dump(mode="json")
    data["recontact_reopens_within"] = "1s"
    service = IncidentService(live.client, policy=known(parse_policy(data, "test")), task_queue=live.task_queue)
    who = customer()
    first = await service.open(open_request(customer_id=who))
    await service.act(first.ticket_id, Resolve(agent="ann", resolution="rebooted the port"))
    await asyncio.sleep(1.5)  # past the policy's reopening window (a wall-clock second on the dev server)
    later = await service.open(open_request(customer_id=who, description="a new problem"))
    assert later.created and later.state.previous_ticket == first.ticket_id
    assert (await service.state(first.ticket_id)).status == "resolved", "the old incident is left as it was"


def colliding_request_pair(request_id: str = "r1") -> tuple[str, str]:
    """Two customers whose equal request ids map to the same first-choice ticket (30 bits: a birthday search)."""
    seen: dict[str, str] = {}
    for n in range(1_000_000):
        who = f"cust-{n}"
        ticket = ticket_for_request(who, request_id)
        if ticket in seen:
            return seen[ticket], who
        seen[ticket] = who
    raise AssertionError("no collision found")


@pytest.mark.parametrize("new_incident", [False, True], ids=["through the intake", "started directly"])
async def test_a_colliding_request_id_never_answers_with_another_customers_incident(
    service: IncidentService, new_incident: bool
):
    request_id = f"r-{uuid.uuid4().hex[:6]}"
    first_customer, second_customer = colliding_request_pair(request_id)
    mine = await service.open(
        open_request(customer_id=first_customer, request_id=request_id, new_incident=new_incident)
    )
    theirs = await service.open(
        open_request(customer_id=second_customer, request_id=request_id, new_incident=new_incident)
    )
    assert mine.created and theirs.created, "the second customer's request was opened, not answered with the first's"
    assert theirs.ticket_id != mine.ticket_id and theirs.state.customer_id == second_customer
    # The mapping stays exact: each retry gets its own customer's ticket back.
    mine_again = await service.open(
        open_request(customer_id=first_customer, request_id=request_id, new_incident=new_incident)
    )
    theirs_again = await service.open(
        open_request(customer_id=second_customer, request_id=request_id, new_incident=new_incident)
    )
    assert (mine_again.outcome, mine_again.ticket_id) == ("existing", mine.ticket_id)
    assert (theirs_again.outcome, theirs_again.ticket_id) == ("existing", theirs.ticket_id)
    assert theirs_again.state.customer_id == second_customer


async def test_a_long_lived_intake_continues_as_new_and_keeps_what_it_knows(service: IncidentService):
    who = customer()
    key = IntakeKey(customer_id=who, category="connection_lost", history_limit=60)

    async def open_through(request: OpenIncident) -> IntakeResult:
        operation: WithStartWorkflowOperation[Any, Any] = WithStartWorkflowOperation(
            "IncidentIntake",
            key,
            id=intake_workflow_id(who, "connection_lost"),
            task_queue=service.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )
        result: IntakeResult = await service.client.execute_update_with_start_workflow(
            "open",
            IntakeRequest(request=request, policy_ref=service.policy_ref),
            start_workflow_operation=operation,
            result_type=IntakeResult,
        )
        return result

    first = await open_through(open_request(customer_id=who, request_id="crm-1"))
    for call in range(15):
        joined = await open_through(open_request(customer_id=who, description=f"call {call}"))
        assert (joined.outcome, joined.ticket_id) == ("joined", first.ticket_id)
    repeat = await open_through(open_request(customer_id=who, request_id="crm-1"))
    assert (repeat.outcome, repeat.ticket_id) == ("existing", first.ticket_id)
    runs = [
        execution
        async for execution in service.client.list_workflows(
            f"WorkflowId = '{intake_workflow_id(who, 'connection_lost')}'"
        )
    ]
    history = await service.client.get_workflow_handle(intake_workflow_id(who, "connection_lost")).fetch_history()
    assert len(history.events) < 200, "the current run's history stays bounded"
    assert len(runs) >= 2 or any(
        e.HasField("workflow_execution_continued_as_new_event_attributes") for e in history.events
    ), "the intake continued as new"
    assert (await service.state(first.ticket_id)).recontacts == 15
