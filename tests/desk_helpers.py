"""The desk on a real socket: the API app with the desk mounted, a worker, the dev server, fresh tokens."""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from temporalio.service import RPCError

from activities.outages import board_notices
from starter.api import create_app
from starter.auth import load_tokens, write_dev_tokens
from starter.desk.app import Desk, mount_desk
from starter.desk.observed import ObservedIncidentService
from starter.outages import OutageService
from tests.harness import RunningWorker
from tests.sandbox_servers import serve
from workflows.domain.outage import DeclareOutage, outage_board_id
from workflows.domain.policy import Policy

SECRET = b"desk-test-secret-desk-test-secret-0123456789"


@dataclass
class DeskStack:
    url: str
    tokens: dict[str, str]  # by token name: dev-agent (ann, line 1), dev-agent-line2 (boris), dev-service, ...
    desk: Desk
    service: ObservedIncidentService
    opened: list[str] = field(default_factory=list)

    def bearer(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[name]}"}

    async def open(self, http: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "customer_id": f"c-{uuid.uuid4().hex[:8]}",
            "category": "connection_lost",
            "description": "No internet since the storm",
            "channel": "phone",
            "contact": "+7 900 000-00-00",
        }
        body.update(fields)
        opened = await http.post(f"{self.url}/incidents", json=body, headers=self.bearer("dev-service"))
        assert opened.status_code == 201, opened.text
        self.opened.append(opened.json()["ticket_id"])
        return {**opened.json(), "customer_page": opened.headers["Customer-Page"]}


@asynccontextmanager
async def desk_stack(running: RunningWorker, policy: Policy, folder: Path, **options: Any) -> AsyncIterator[DeskStack]:
    issued = write_dev_tokens(folder / "tokens.yml")
    tokens = load_tokens(folder / "tokens.yml")
    service = ObservedIncidentService(running.client, policy=policy, task_queue=running.task_queue)
    app = create_app(service, tokens)
    desk = mount_desk(app, service, tokens, SECRET, **options)
    async with serve(app) as server:
        stack = DeskStack(server.url, {name: token for name, (_, token) in issued.items()}, desk, service)
        try:
            yield stack
        finally:
            await desk.feed.stop()
            # No worker serves them after this test: the next test's desk would wait on them in vain.
            for ticket in stack.opened:
                with contextlib.suppress(RPCError):
                    await running.client.get_workflow_handle(ticket).terminate(reason="test finished")


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF token on the page"
    return found.group(1)


async def signed_in(http: httpx.AsyncClient, stack: DeskStack, token_name: str = "dev-agent", tz: str = "UTC") -> None:
    form = await http.get(f"{stack.url}/desk/signin")
    answer = await http.post(
        f"{stack.url}/desk/signin",
        data={"csrf": csrf_of(form.text), "token": stack.tokens[token_name], "tz": tz},
    )
    assert answer.status_code == 303, answer.text


async def cable_cut_in(running: RunningWorker, area: dict[str, str]) -> str:
    """A major incident declared for connection_lost in `area`, once its notice is on the board the intake reads
    (so incidents opened there from now on open linked); its id."""
    outages = OutageService(running.client, task_queue=running.task_queue)
    declared = await outages.declare(
        DeclareOutage.model_validate(
            {
                "area": area,
                "categories": ["connection_lost"],
                "summary": "A cable was cut in Khimki.",
                "owner": "boris",
                "declared_by": "boris",
                "expected_fix_by": datetime.now(UTC) + timedelta(hours=6),
            }
        )
    )
    board = running.client.get_workflow_handle(outage_board_id(running.task_queue))
    running.started += [running.client.get_workflow_handle(declared.outage_id), board]
    for _ in range(100):  # the declaration posts its notice to the board, which the intake reads
        if await board_notices(running.client, running.task_queue):
            break
        await asyncio.sleep(0.1)
    return declared.outage_id
