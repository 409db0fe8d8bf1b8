"""The OpenAPI document lists, for each operation, exactly the statuses the API answers there.

Each status is provoked for real, over a socket, on every route where it can happen: against the dev
server with a worker, a task queue nobody polls, a namespace the server does not know, and a server
that has gone away. Every status seen must be documented for its route, and every documented one seen
(or named below with the reason this test cannot provoke it); success statuses are checked the
first way only, as FastAPI documents them itself.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from infra.binaries import temporal_cli
from infra.connection import data_converter
from starter.api import MAX_BODY_BYTES, create_app
from starter.auth import Role, load_tokens, write_dev_tokens
from starter.incidents import IncidentService
from tests.harness import Sandboxes, running_worker
from tests.policies import fast_policy
from tests.sandbox_servers import serve
from workflows import search_attributes
from workflows.domain.inputs import intake_workflow_id
from workflows.domain.tickets import ticket_for_request

ROLES = ("service", "agent", "viewer", "sre")
UNKNOWN = "INC-000000"
# Statuses a route may answer that a dev server cannot be made to produce here, each with its reason.
NOT_PROVOKED: dict[str, dict[int, str]] = {
    "GET /incidents": {504: "a search needs no worker: only a server too slow to answer times it out"},
    "ticket": {502: "Temporal refusing a call about one workflow (PERMISSION_DENIED, RESOURCE_EXHAUSTED...)"},
}
# A value for each required body field, by name: the bodies follow the contract as the spec states it.
SAMPLES: dict[str, Any] = {
    "agent": "ann",
    "by": "ann",
    "assignee": "boris",
    "text": "a word",
    "question": "which tariff?",
    "reason": "a reason",
    "resolution": "fixed",
    "severity": "routine",
    "score": 5,
    "channel": "app",
    "refund": {"amount": "10.00", "currency": "RUB"},
    "line": 2,
    "reference": "bank-transfer-1",
    "category": "speed_drop",
    "description": "slow since Monday",
}


@dataclass
class Api:
    url: str
    http: httpx.AsyncClient
    tokens: dict[str, str]

    async def call(
        self, method: str, path: str, role: str | None, *, json: Any = None, content: bytes | None = None
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[role]}"} if role else {}
        if content is not None:
            headers["Content-Type"] = "application/json"
        return await self.http.request(method, f"{self.url}{path}", json=json, content=content, headers=headers)


@asynccontextmanager
async def served(service: IncidentService, folder: Path, answer_within: float = 15.0) -> AsyncIterator[Api]:
    tokens = folder / f"tokens-{uuid.uuid4().hex[:6]}.yml"
    issued = write_dev_tokens(tokens)
    app = create_app(service, load_tokens(tokens), answer_within=answer_within)
    async with serve(app) as server, httpx.AsyncClient(timeout=60) as http:
        yield Api(server.url, http, {role.value: issued[f"dev-{role.value}"][1] for role in Role})


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    operation: dict[str, Any]

    @property
    def name(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def has_body(self) -> bool:
        return "requestBody" in self.operation

    @property
    def per_ticket(self) -> bool:
        return "{ticket}" in self.path

    def at(self, ticket: str) -> str:
        return self.path.replace("{ticket}", ticket)

    def documented(self) -> set[int]:
        return {int(status) for status in self.operation["responses"]}

    def not_provoked(self) -> dict[int, str]:
        return {**NOT_PROVOKED.get(self.name, {}), **(NOT_PROVOKED["ticket"] if self.per_ticket else {})}


def valid_body(spec: dict[str, Any], route: Route) -> Any:
    if not route.has_body:
        return None
    reference = route.operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = spec["components"]["schemas"][reference.rsplit("/", 1)[-1]]
    body = {}
    for name in schema.get("required", []):
        assert name in SAMPLES or name == "customer_id", f"{route.name}: no sample for the required field {name}"
        body[name] = f"st-{uuid.uuid4().hex[:8]}" if name == "customer_id" else SAMPLES[name]
    return body


def opening(**fields: Any) -> dict[str, Any]:
    return {
        "customer_id": f"st-{uuid.uuid4().hex[:8]}",
        "category": "speed_drop",
        "description": "slow",
        "channel": "app",
        **fields,
    }


async def test_every_status_the_api_answers_is_documented_for_its_route(
    dev_env: WorkflowEnvironment, sandboxes: Sandboxes, tmp_path: Path
):
    policy = fast_policy(line_timeouts={"1": "1h", "2": "1h"})
    target = dev_env.client.service_client.config.target_host
    seen: dict[str, set[int]] = defaultdict(set)
    leftovers: list[str] = []

    async def expect(api: Api, route: Route, status: int, path: str, role: str | None, **request: Any) -> None:
        response = await api.call(route.method, path, role, **request)
        assert response.status_code == status, f"{route.name} ({path}): {response.status_code} {response.text[:200]}"
        seen[route.name].add(response.status_code)

    async with AsyncExitStack() as stack:
        running = await stack.enter_async_context(running_worker(dev_env.client, sandboxes))
        live = await stack.enter_async_context(
            served(IncidentService(running.client, policy=policy, task_queue=running.task_queue), tmp_path)
        )
        unpolled = IncidentService(dev_env.client, policy=policy, task_queue=f"nobody-polls-{uuid.uuid4().hex[:8]}")
        slow = await stack.enter_async_context(served(unpolled, tmp_path, answer_within=1.0))
        elsewhere = await Client.connect(
            target, namespace=f"no-such-namespace-{uuid.uuid4().hex[:6]}", data_converter=data_converter()
        )
        stranger = await stack.enter_async_context(served(IncidentService(elsewhere, policy=policy), tmp_path))
        down_env = await WorkflowEnvironment.start_local(
            data_converter=data_converter(),
            dev_server_existing_path=temporal_cli(),
            search_attributes=list(search_attributes.ALL_KEYS),
        )
        gone = await stack.enter_async_context(
            served(IncidentService(down_env.client, policy=policy), tmp_path, answer_within=1.0)
        )
        await down_env.shutdown()

        spec = (await live.http.get(f"{live.url}/openapi.json")).json()
        routes = [Route(m.upper(), path, op) for path, item in spec["paths"].items() for m, op in item.items()]
        assert len(routes) >= 17, [r.name for r in routes]
        open_route = next(r for r in routes if r.name == "POST /incidents")

        async def opened(**fields: Any) -> str:
            response = await live.call("POST", "/incidents", "service", json=opening(**fields))
            assert response.status_code == 201, response.text
            leftovers.append(response.json()["ticket_id"])
            return str(response.json()["ticket_id"])

        try:
            # Every role, with a valid request, on an open incident: what each may do, and its outcome.
            open_ticket = await opened(new_incident=True)
            allowed: dict[str, str] = {}
            for route in routes:
                for role in ROLES:
                    path = route.at(open_ticket)
                    response = await live.call(route.method, path, role, json=valid_body(spec, route))
                    seen[route.name].add(response.status_code)
                    if response.status_code not in (401, 403):
                        allowed.setdefault(route.name, role)
            unguarded = {r.name for r in routes} - set(allowed)
            assert not unguarded, f"some route admits no role: {unguarded}"
            guarded = [r for r in routes if r.path != "/healthz"]

            # 401: no token. 413: too large a body, on every route. 422: a body that is no object, a limit
            # out of range, a ticket number too long to be one.
            await asyncio.gather(
                *(expect(live, r, 401, r.at(open_ticket), None, json=valid_body(spec, r)) for r in guarded)
            )
            oversized = b'{"text": "' + b"x" * MAX_BODY_BYTES + b'"}'
            await asyncio.gather(
                *(expect(live, r, 413, r.at(open_ticket), allowed[r.name], content=oversized) for r in routes)
            )
            for route in guarded:
                role = allowed[route.name]
                if route.has_body:
                    await expect(live, route, 422, route.at(open_ticket), role, json=["not", "an", "object"])
                elif route.per_ticket:
                    await expect(live, route, 422, route.at("INC-" + "X" * 70), role)
                else:
                    await expect(live, route, 422, f"{route.path}?limit=0", role)
            # 400: a body that is not even text.
            for route in (r for r in routes if r.has_body):
                await expect(live, route, 400, route.at(open_ticket), allowed[route.name], content=b'{"text": "\xff"}')

            # 404: no such incident. 409: a closed incident refuses every action; an open one refuses to be
            # joined by a request carrying a refund other than the one it owes.
            closed_ticket = await opened(new_incident=True)
            await dev_env.client.get_workflow_handle(closed_ticket).terminate(reason="closed for the test")
            for route in (r for r in routes if r.per_ticket):
                body = valid_body(spec, route)
                await expect(live, route, 404, route.at(UNKNOWN), allowed[route.name], json=body)
                if route.has_body:
                    await expect(live, route, 409, route.at(closed_ticket), allowed[route.name], json=body)
            owed = opening(category="card_charged_not_bound", refund={"amount": "700.00", "currency": "RUB"})
            leftovers.append(intake_workflow_id(owed["customer_id"], owed["category"]))
            await opened(**{k: v for k, v in owed.items() if k != "customer_id"}, customer_id=owed["customer_id"])
            other = {**owed, "refund": {"amount": "800.00", "currency": "RUB"}}
            await expect(live, open_route, 409, "/incidents", "service", json=other)

            # 502: Temporal refuses the call (here: the API's namespace does not exist).
            for route in (r for r in routes if not r.per_ticket and r.path != "/healthz"):
                await expect(stranger, route, 502, route.path, allowed[route.name], json=valid_body(spec, route))

            # 503: Temporal has gone away; every route, health included, says so.
            await asyncio.gather(
                *(expect(gone, r, 503, r.at(UNKNOWN), allowed[r.name], json=valid_body(spec, r)) for r in routes)
            )

            # 504: nobody polls the task queue: opening there, and every call about the incident it started.
            lost = opening(request_id="r1", new_incident=True)
            orphan = ticket_for_request(lost["customer_id"], "r1")
            leftovers.append(orphan)
            await expect(slow, open_route, 504, "/incidents", "service", json=lost)
            await asyncio.gather(
                *(
                    expect(slow, r, 504, r.at(orphan), allowed[r.name], json=valid_body(spec, r))
                    for r in routes
                    if r.per_ticket
                )
            )
        finally:
            for workflow_id in leftovers:
                with suppress(RPCError):
                    await dev_env.client.get_workflow_handle(workflow_id).terminate(reason="test finished")

    problems = []
    for route in routes:
        documented, unexplained = route.documented(), route.not_provoked()
        undocumented = seen[route.name] - documented
        if undocumented:
            problems.append(f"{route.name} answers {sorted(undocumented)}, which its document does not list")
        # Success statuses are FastAPI's own (and depend on the incident's verdict); every error must be real.
        never_seen = {status for status in documented if status >= 400} - seen[route.name] - set(unexplained)
        if never_seen:
            problems.append(f"{route.name} documents {sorted(never_seen)}, which it never answered here")
        stale = set(unexplained) - documented
        if stale:
            problems.append(f"{route.name} can answer {sorted(stale)} ({unexplained}), undocumented")
    assert not problems, "\n".join(problems)
