"""The HTTP API app on a real socket inside the test's event loop, with fresh tokens, one per role."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from starter.api import create_app
from starter.auth import Role, load_tokens, write_dev_tokens
from starter.incidents import IncidentService
from tests.sandbox_servers import serve


@dataclass
class Api:
    url: str
    http: httpx.AsyncClient
    tokens: dict[Role, str]

    def auth(self, role: Role) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}


@asynccontextmanager
async def served_api(service: IncidentService, folder: Path, answer_within: float = 15.0) -> AsyncIterator[Api]:
    """The app on a free port with fresh tokens, one per role, and an HTTP client to call it."""
    issued = write_dev_tokens(folder / "tokens.yml")
    app = create_app(service, load_tokens(folder / "tokens.yml"), answer_within=answer_within)
    async with serve(app) as server, httpx.AsyncClient(timeout=60) as http:
        yield Api(server.url, http, {role: issued[f"dev-{role.value}"][1] for role in Role})


def body(**overrides: object) -> dict[str, object]:
    """A valid opening request's JSON body, for a customer of its own."""
    fields: dict[str, object] = {
        "customer_id": f"c-{uuid.uuid4().hex[:8]}",
        "category": "speed_drop",
        "description": "10 Mbit/s instead of 100",
        "channel": "app",
        "contact": "ann@example.com",
    }
    fields.update(overrides)
    return fields
