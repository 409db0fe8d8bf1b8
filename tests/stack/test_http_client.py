"""The typed Python client end to end: the API on a real socket, the dev server, a real worker."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from starter.auth import Role
from starter.http_client import (
    Forbidden,
    IncidentsHttpClient,
    InvalidRequest,
    NotFound,
    Rejected,
    Unauthorized,
    Unavailable,
)
from starter.incidents import IncidentService
from tests.harness import Sandboxes, running_worker
from tests.policies import fast_policy
from tests.served_api import Api, served_api
from workflows.domain.actions import Acknowledge, AddNote, CustomerContact, Feedback, Reopen, Resolve
from workflows.domain.models import OpenIncident


@pytest.fixture
async def api(dev_env: WorkflowEnvironment, sandboxes: Sandboxes, tmp_path: Path) -> AsyncIterator[Api]:
    async with running_worker(dev_env.client, sandboxes) as running:
        service = IncidentService(running.client, policy=fast_policy(), task_queue=running.task_queue)
        async with served_api(service, tmp_path) as served:
            yield served


def request(**overrides: object) -> OpenIncident:
    fields: dict[str, object] = {
        "customer_id": f"c-{uuid.uuid4().hex[:8]}",
        "category": "tariff_change",
        "description": "cannot switch to the night tariff",
        "channel": "app",
    }
    fields.update(overrides)
    return OpenIncident.model_validate(fields)


async def test_a_service_and_an_agent_work_an_incident_through_the_client(api: Api):
    async with (
        IncidentsHttpClient(api.url, api.tokens[Role.service]) as service,
        IncidentsHttpClient(api.url, api.tokens[Role.agent]) as agent,
        IncidentsHttpClient(api.url, api.tokens[Role.viewer]) as viewer,
    ):
        opened = await service.open(request(request_id="app-7"))
        assert opened.outcome == "created" and opened.state.severity == "routine"
        ticket = opened.ticket_id
        repeated = await service.open(request(customer_id=opened.state.customer_id, request_id="app-7"))
        assert (repeated.outcome, repeated.ticket_id) == ("existing", ticket)
        joined = await service.open(request(customer_id=opened.state.customer_id, description="still cannot"))
        assert (joined.outcome, joined.ticket_id, joined.state.recontacts) == ("joined", ticket, 1)

        assert (await agent.act(ticket, Acknowledge(agent="ann"))).assignee == "ann"
        with pytest.raises(Rejected, match="already acknowledged") as refused:
            await agent.act(ticket, Acknowledge(agent="ann"))
        assert refused.value.status == 409
        assert (await agent.act(ticket, AddNote(agent="ann", text="night tariff enabled"))).notes == 1
        contacted = await service.act(ticket, CustomerContact(channel="phone", text="is it done?"))
        assert contacted.recontacts == 2
        with pytest.raises(Forbidden, match="role service may not"):
            await service.act(ticket, Resolve(agent="bob", resolution="done"))
        with pytest.raises(Forbidden):
            await viewer.act(ticket, AddNote(agent="eve", text="hi"))
        resolved = await agent.act(ticket, Resolve(agent="ann", resolution="switched the tariff"))
        assert resolved.status in ("resolved", "closed")

        shown = await viewer.get(ticket)
        assert shown.ticket_id == ticket and shown.resolution == "switched the tariff"
        events = [str(event.type) for event in await viewer.history(ticket)]
        assert events[0] == "opened" and "resolved" in events and events.count("customer_recontacted") == 2

        rows = []
        for _ in range(100):  # visibility catches up with the search attributes a moment later
            rows = await viewer.list(customer_id=opened.state.customer_id, category="tariff_change")
            if rows and rows[0].assignee == "ann":
                break
            await asyncio.sleep(0.1)
        assert [row.ticket_id for row in rows] == [ticket] and rows[0].severity == "routine"
        assert await viewer.list(customer_id=opened.state.customer_id, severity="critical") == []


async def test_errors_are_typed_and_carry_the_servers_message(api: Api):
    async with IncidentsHttpClient(api.url, api.tokens[Role.agent]) as agent:
        with pytest.raises(NotFound, match="no incident INC-000000"):
            await agent.get("INC-000000")
        with pytest.raises(NotFound, match="no incident INC-000000/history"):
            await agent.get("INC-000000/history")  # not a ticket: it does not turn into another endpoint
        with pytest.raises(NotFound):
            await agent.act("INC-000000", Reopen(by="ann", reason="customer unhappy"))
        with pytest.raises(InvalidRequest, match=r"query\.line: Input should be less than or equal to 3") as bad:
            await agent.list(line=9)
        assert bad.value.status == 422
        with pytest.raises(InvalidRequest, match=r"query\.customer_id: String should match pattern"):
            await agent.list(customer_id="no spaces allowed")
        with pytest.raises(Forbidden, match="needs service"):
            await agent.open(request())
    async with IncidentsHttpClient(api.url, api.tokens[Role.service]) as service:
        opened = await service.open(request(category="ui_typo"))
        with pytest.raises(Rejected, match="after resolution"):
            await service.act(opened.ticket_id, Feedback(score=2))
    async with IncidentsHttpClient(api.url, "not-a-token") as stranger:
        with pytest.raises(Unauthorized, match="a valid bearer token is required"):
            await stranger.get(opened.ticket_id)


async def test_no_worker_is_unavailable_not_a_hang(dev_env: WorkflowEnvironment, tmp_path: Path):
    queue = f"nobody-polls-{uuid.uuid4().hex[:8]}"
    service = IncidentService(dev_env.client, policy=fast_policy(), task_queue=queue)
    customer = f"c-{uuid.uuid4().hex[:8]}"
    async with (
        served_api(service, tmp_path, answer_within=1.0) as api,
        IncidentsHttpClient(api.url, api.tokens[Role.service]) as opener,
    ):
        try:
            with pytest.raises(Unavailable, match=f"is a worker polling task queue '{queue}'") as unavailable:
                await opener.open(request(customer_id=customer))
            assert unavailable.value.status == 504
            # What needs no worker still answers: visibility, and Temporal's word that a ticket is unknown.
            assert await opener.list(customer_id=customer) == []
            with pytest.raises(NotFound):
                await opener.get("INC-000000")
        finally:
            await dev_env.client.get_workflow_handle(f"intake:{customer}:tariff_change").terminate(reason="test done")
