"""A small typed client of the HTTP API, for services that prefer a library to raw HTTP.

async with IncidentsHttpClient("http://localhost:8080", token) as incidents:
    opened = await incidents.open(OpenIncident(customer_id="42", category="speed_drop", ...))
    print(opened.state.ticket_id, opened.outcome)
"""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal

import httpx
from pydantic import TypeAdapter

from workflows.domain.models import Action, IncidentEvent, IncidentState, OpenIncident

_ACTION_PATHS = {
    "acknowledge": "acknowledge",
    "add_note": "notes",
    "escalate": "escalate",
    "resolve": "resolve",
    "reopen": "reopen",
    "reclassify": "reclassify",
    "feedback": "feedback",
    "customer_contact": "customer-contacts",
    "add_refund": "refund",
    "approve_refund": "refund/approve",
    "retry_refund": "refund/retry",
    "settle_refund": "refund/settle",
}
_EVENTS = TypeAdapter(list[IncidentEvent])


class ApiError(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail


class Unauthorized(ApiError): ...


class Forbidden(ApiError): ...


class NotFound(ApiError): ...


class Rejected(ApiError): ...


class InvalidRequest(ApiError): ...


_ERRORS: dict[int, type[ApiError]] = {
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Rejected,
    422: InvalidRequest,
}


@dataclass(frozen=True)
class OpenedIncident:
    outcome: Literal["created", "joined", "existing"]
    state: IncidentState


class IncidentsHttpClient:
    def __init__(self, base_url: str, token: str, *, timeout: float = 30.0, http: httpx.AsyncClient | None = None):
        self._http = http or httpx.AsyncClient(timeout=timeout)
        self._owns_http = http is None
        self._base = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"}

    async def __aenter__(self) -> IncidentsHttpClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = await self._http.request(method, f"{self._base}{path}", headers=self._headers, **kwargs)
        if response.status_code >= 400:
            try:
                detail = str(response.json().get("detail", response.text))
            except ValueError:
                detail = response.text
            raise _ERRORS.get(response.status_code, ApiError)(response.status_code, detail)
        return response

    async def open(self, request: OpenIncident) -> OpenedIncident:
        response = await self._call("POST", "/incidents", json=request.model_dump(mode="json"))
        outcome = response.headers.get("Incident-Outcome", "created")
        return OpenedIncident(outcome, IncidentState.model_validate_json(response.content))

    async def get(self, ticket_id: str) -> IncidentState:
        return IncidentState.model_validate_json((await self._call("GET", f"/incidents/{ticket_id}")).content)

    async def history(self, ticket_id: str) -> list[IncidentEvent]:
        return _EVENTS.validate_json((await self._call("GET", f"/incidents/{ticket_id}/history")).content)

    async def list(self, **filters: str | int | None) -> list[dict[str, Any]]:
        params = {k: v for k, v in filters.items() if v is not None}
        result: list[dict[str, Any]] = (await self._call("GET", "/incidents", params=params)).json()
        return result

    async def act(self, ticket_id: str, action: Action) -> IncidentState:
        body = action.model_dump(mode="json", exclude={"type"})
        response = await self._call("POST", f"/incidents/{ticket_id}/{_ACTION_PATHS[action.type]}", json=body)
        return IncidentState.model_validate(response.json()["state"])
