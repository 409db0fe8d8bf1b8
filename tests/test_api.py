"""The HTTP API over a real socket, against the real dev server and a real worker."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from starter.api import create_app
from starter.auth import Role, TokenConfigError, load_tokens, write_dev_tokens
from starter.http_client import Forbidden, IncidentsHttpClient, InvalidRequest, NotFound, Rejected, Unauthorized
from starter.incidents import IncidentService
from tests.conftest import Sandboxes, running_worker
from tests.policies import fast_policy
from tests.sandbox_servers import serve
from workflows.domain.models import Acknowledge, OpenIncident, Resolve


@dataclass
class Api:
    url: str
    http: httpx.AsyncClient
    tokens: dict[Role, str]

    def auth(self, role: Role) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}


@pytest.fixture
async def api(dev_env: WorkflowEnvironment, sandboxes: Sandboxes, tmp_path: Path) -> AsyncIterator[Api]:
    issued = write_dev_tokens(tmp_path / "tokens.yml")
    tokens = load_tokens(tmp_path / "tokens.yml")
    async with running_worker(dev_env.client, sandboxes) as running:
        service = IncidentService(
            running.client, policy=fast_policy(line_timeouts={"1": "1h", "2": "1h"}), task_queue=running.task_queue
        )
        async with serve(create_app(service, tokens)) as server, httpx.AsyncClient(timeout=30) as http:
            yield Api(server.url, http, {role: token for role, token in issued.values()})


def body(**overrides: object) -> dict[str, object]:
    fields: dict[str, object] = {
        "customer_id": f"c-{uuid.uuid4().hex[:8]}",
        "category": "speed_drop",
        "description": "10 Mbit/s instead of 100",
        "channel": "app",
        "contact": "ann@example.com",
    }
    fields.update(overrides)
    return fields


async def test_open_show_act_and_list(api: Api):
    opened = await api.http.post(f"{api.url}/incidents", json=body(), headers=api.auth(Role.service))
    assert opened.status_code == 201 and opened.headers["Incident-Outcome"] == "created"
    ticket = opened.json()["ticket_id"]
    assert opened.headers["Location"] == f"/incidents/{ticket}" and opened.json()["severity"] == "critical"
    shown = await api.http.get(f"{api.url}/incidents/{ticket}", headers=api.auth(Role.viewer))
    assert shown.status_code == 200 and shown.json()["status"] == "open"
    acked = await api.http.post(
        f"{api.url}/incidents/{ticket}/acknowledge", json={"agent": "ann"}, headers=api.auth(Role.agent)
    )
    assert acked.status_code == 200 and acked.json()["state"]["assignee"] == "ann"
    note = await api.http.post(
        f"{api.url}/incidents/{ticket}/notes", json={"agent": "ann", "text": "rebooting"}, headers=api.auth(Role.agent)
    )
    assert note.status_code == 200 and note.json()["state"]["notes"] == 1
    history = await api.http.get(f"{api.url}/incidents/{ticket}/history", headers=api.auth(Role.viewer))
    assert history.json()[0]["type"] == "opened"
    customer = opened.json()["customer_id"]
    rows: list = []
    for _ in range(100):
        rows = (
            await api.http.get(
                f"{api.url}/incidents",
                params={"customer_id": customer, "severity": "critical"},
                headers=api.auth(Role.viewer),
            )
        ).json()
        if rows and rows[0]["assignee"] == "ann":
            break
        await asyncio.sleep(0.1)
    assert [r["ticket_id"] for r in rows] == [ticket] and rows[0]["assignee"] == "ann"


async def test_repeated_request_ids_and_recontacts_answer_200_with_the_existing_incident(api: Api):
    first = await api.http.post(f"{api.url}/incidents", json=body(request_id="ivr-1"), headers=api.auth(Role.service))
    again = await api.http.post(
        f"{api.url}/incidents",
        json=body(request_id="ivr-1", customer_id=first.json()["customer_id"]),
        headers=api.auth(Role.service),
    )
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.headers["Incident-Outcome"] == "existing" and again.json()["ticket_id"] == first.json()["ticket_id"]
    recontact = await api.http.post(
        f"{api.url}/incidents",
        json=body(customer_id=first.json()["customer_id"], description="still slow"),
        headers=api.auth(Role.service),
    )
    assert recontact.status_code == 200 and recontact.headers["Incident-Outcome"] == "joined"
    assert recontact.json()["ticket_id"] == first.json()["ticket_id"] and recontact.json()["recontacts"] == 1
    concurrent = await asyncio.gather(
        *(
            api.http.post(
                f"{api.url}/incidents",
                json=body(customer_id="same-customer-x", request_id=f"r{i}"),
                headers=api.auth(Role.service),
            )
            for i in range(4)
        )
    )
    assert len({r.json()["ticket_id"] for r in concurrent}) == 1
    assert sorted(r.status_code for r in concurrent) == [200, 200, 200, 201]


@pytest.mark.parametrize(
    ("role", "method", "path", "payload", "status"),
    [
        (None, "GET", "/incidents", None, 401),
        ("bogus", "GET", "/incidents", None, 401),
        (Role.viewer, "POST", "/incidents", body(), 403),
        (Role.agent, "POST", "/incidents", body(), 403),
        (Role.service, "POST", "/incidents/INC-XXXXXX/acknowledge", {"agent": "a"}, 403),
        (Role.viewer, "POST", "/incidents/INC-XXXXXX/resolve", {"agent": "a", "resolution": "r"}, 403),
    ],
)
async def test_roles(api: Api, role, method, path, payload, status):
    headers = {} if role is None else {"Authorization": "Bearer nope"} if role == "bogus" else api.auth(role)
    response = await api.http.request(method, f"{api.url}{path}", json=payload, headers=headers)
    assert response.status_code == status, response.text
    if status == 401:
        assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json()["detail"]


async def test_errors_name_the_problem(api: Api):
    bad = await api.http.post(
        f"{api.url}/incidents", json=body(channel="fax", description=""), headers=api.auth(Role.service)
    )
    assert bad.status_code == 422
    assert "channel" in bad.json()["detail"] and "description" in bad.json()["detail"]
    unknown = await api.http.get(f"{api.url}/incidents/INC-ZZZZZZ", headers=api.auth(Role.viewer))
    assert unknown.status_code == 404 and unknown.json()["detail"] == "no incident INC-ZZZZZZ"
    opened = await api.http.post(f"{api.url}/incidents", json=body(category="ui_typo"), headers=api.auth(Role.service))
    ticket = opened.json()["ticket_id"]
    early = await api.http.post(
        f"{api.url}/incidents/{ticket}/feedback", json={"score": 5}, headers=api.auth(Role.service)
    )
    assert early.status_code == 409 and "after resolution" in early.json()["detail"]
    empty_agent = await api.http.post(
        f"{api.url}/incidents/{ticket}/acknowledge", json={"agent": " "}, headers=api.auth(Role.agent)
    )
    assert empty_agent.status_code == 422 and empty_agent.json()["detail"].startswith("agent:")
    huge = await api.http.post(
        f"{api.url}/incidents",
        content=b"x" * 100_000,
        headers={**api.auth(Role.service), "Content-Type": "application/json"},
    )
    assert huge.status_code == 413
    not_json = await api.http.post(
        f"{api.url}/incidents", content=b"{", headers={**api.auth(Role.service), "Content-Type": "application/json"}
    )
    assert not_json.status_code == 422 and not_json.json()["detail"]
    resolved = await api.http.post(
        f"{api.url}/incidents/{ticket}/resolve",
        json={"agent": "a", "resolution": "fixed"},
        headers=api.auth(Role.agent),
    )
    assert resolved.status_code == 200 and resolved.json()["state"]["status"] == "closed"
    closed = await api.http.post(
        f"{api.url}/incidents/{ticket}/resolve",
        json={"agent": "a", "resolution": "again"},
        headers=api.auth(Role.agent),
    )
    assert closed.status_code == 409 and "closed" in closed.json()["detail"]


async def test_openapi_documents_the_contract(api: Api):
    spec = (await api.http.get(f"{api.url}/openapi.json")).json()
    assert {"/incidents", "/incidents/{ticket}", "/incidents/{ticket}/acknowledge"} <= set(spec["paths"])
    assert (await api.http.get(f"{api.url}/docs")).status_code == 200
    assert (await api.http.get(f"{api.url}/healthz")).json() == {"ok": True, "temporal": "reachable"}


async def test_the_typed_client_end_to_end(api: Api):
    async with (
        IncidentsHttpClient(api.url, api.tokens[Role.service]) as service,
        IncidentsHttpClient(api.url, api.tokens[Role.agent]) as agent,
    ):
        opened = await service.open(OpenIncident.model_validate(body(category="tariff_change")))
        assert opened.outcome == "created"
        ticket = opened.state.ticket_id
        assert (await agent.act(ticket, Acknowledge(agent="ann"))).assignee == "ann"
        with pytest.raises(Rejected, match="already acknowledged"):
            await agent.act(ticket, Acknowledge(agent="ann"))
        with pytest.raises(Forbidden):
            await service.act(ticket, Acknowledge(agent="bob"))
        with pytest.raises(NotFound):
            await agent.get("INC-ZZZZZZ")
        assert (await agent.act(ticket, Resolve(agent="ann", resolution="done"))).status == "closed"
        assert [e.type for e in await agent.history(ticket)][-1] == "closed"
    async with IncidentsHttpClient(api.url, "wrong") as stranger:
        with pytest.raises(Unauthorized):
            await stranger.get(ticket)
    async with IncidentsHttpClient(api.url, api.tokens[Role.service]) as service:
        with pytest.raises(InvalidRequest, match="category"):
            await service._call("POST", "/incidents", json=body(category="Not A Category!"))


def test_token_files_are_validated_naming_the_entry(tmp_path: Path):
    path = tmp_path / "tokens.yml"
    path.write_text("ops-bot: {role: service, sha256: abc}\n")
    with pytest.raises(TokenConfigError, match=r"ops-bot\.sha256"):
        load_tokens(path)
    path.write_text("ops-bot: {role: admin, sha256: " + "a" * 64 + "}\n")
    with pytest.raises(TokenConfigError, match=r"ops-bot\.role"):
        load_tokens(path)
    issued = write_dev_tokens(path)
    store = load_tokens(path)
    for name, (role, token) in issued.items():
        principal = store.authenticate(token)
        assert principal is not None and (principal.name, principal.role) == (name, role)
    assert store.authenticate("guess") is None and store.authenticate(None) is None
    assert all(token not in path.read_text() for _, token in issued.values()), "only digests are stored"
