"""A small typed client of the HTTP API, for services that prefer a library to raw HTTP.

    async with IncidentsHttpClient("http://localhost:8080", token) as incidents:
        opened = await incidents.open(OpenIncident(customer_id="42", category="speed_drop", ...))
        print(opened.state.ticket_id, opened.outcome)  # outcome: created | existing | joined
        state = await incidents.act(opened.state.ticket_id, Acknowledge(agent="ann"))  # an agent's token

Every method returns the API's pydantic models; every error status raises an ApiError subclass
carrying the server's `detail` (Rejected holds the incident's reason).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, cast, get_args
from urllib.parse import quote

import httpx
from pydantic import TypeAdapter

from starter.incidents import IncidentSummary, Outcome
from workflows.domain.actions import ACTOR_LINE, ActionModel
from workflows.domain.models import IncidentEvent, IncidentState, OpenIncident, Severity, Status
from workflows.domain.tickets import is_ticket_id

OUTCOME_HEADER = "Incident-Outcome"
_EVENTS = TypeAdapter(list[IncidentEvent])
_SUMMARIES = TypeAdapter(list[IncidentSummary])


class ApiError(Exception):
    """The API answered with an error status; `detail` is its explanation."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail


class Unauthorized(ApiError):
    """401: no token, or one the API does not know."""


class Forbidden(ApiError):
    """403: the token's role may not do this, or the action names someone other than the token's person."""


class NotFound(ApiError):
    """404: no incident with that ticket number."""


class Rejected(ApiError):
    """409: the incident refused the action; `detail` is its reason."""


class InvalidRequest(ApiError):
    """413 or 422: the request itself is wrong; `detail` names the field."""


class Unavailable(ApiError):
    """503 or 504: Temporal is unreachable or nothing answered in time; safe to retry reads and idempotent opens."""


_ERRORS: dict[int, type[ApiError]] = {
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Rejected,
    413: InvalidRequest,
    422: InvalidRequest,
    503: Unavailable,
    504: Unavailable,
}


@dataclass(frozen=True)
class OpenedIncident:
    outcome: Outcome
    state: IncidentState

    @property
    def ticket_id(self) -> str:
        return self.state.ticket_id


@dataclass(frozen=True)
class Acted:
    """The API's answer to an action: the event it recorded, the new state, and the answer as sent."""

    event_seq: int
    state: IncidentState
    answer: dict[str, Any]


class IncidentsHttpClient:
    def __init__(
        self, base_url: str, token: str, *, timeout: float = 30.0, http: httpx.AsyncClient | None = None
    ) -> None:
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

    async def open(self, request: OpenIncident) -> OpenedIncident:
        """Open an incident; `outcome` says whether it is new, the one this request_id opened, or joined."""
        response = await self._call("POST", "/incidents", json=request.model_dump(mode="json"))
        outcome = response.headers.get(OUTCOME_HEADER)
        if outcome not in get_args(Outcome):
            raise ApiError(response.status_code, f"the API sent no valid {OUTCOME_HEADER} header: {outcome!r}")
        return OpenedIncident(cast(Outcome, outcome), IncidentState.model_validate_json(response.content))

    async def get(self, ticket_id: str) -> IncidentState:
        return IncidentState.model_validate_json((await self._call("GET", _incident(ticket_id))).content)

    async def history(self, ticket_id: str) -> list[IncidentEvent]:
        return _EVENTS.validate_json((await self._call("GET", f"{_incident(ticket_id)}/history")).content)

    async def list(
        self,
        *,
        status: Status | Literal["open", "waiting_on_customer", "resolved", "closed"] | None = None,
        severity: Severity | Literal["critical", "routine", "convenience"] | None = None,
        line: int | None = None,
        customer_id: str | None = None,
        category: str | None = None,
        limit: int | None = None,
    ) -> list[IncidentSummary]:
        """Incidents matching every filter given, from Temporal visibility (updated a moment after a change)."""
        filters: dict[str, Any] = {
            "status": status,
            "severity": severity,
            "line": line,
            "customer_id": customer_id,
            "category": category,
            "limit": limit,
        }
        params = {name: str(value) for name, value in filters.items() if value is not None}
        return _SUMMARIES.validate_json((await self._call("GET", "/incidents", params=params)).content)

    async def act(self, ticket_id: str, action: ActionModel) -> IncidentState:
        """Apply an action; returns the incident's new state, or raises Rejected with its reason."""
        # The actor's authority is the token's: the API fills it in and refuses it from a client.
        body = action.model_dump(mode="json", exclude={"type", ACTOR_LINE})
        return (await self.send(ticket_id, type(action), body)).state

    async def send(self, ticket_id: str, model: type[ActionModel], body: dict[str, Any]) -> Acted:
        """Send `model`'s action as the body the API takes (the actor may be left out: the token names it)."""
        response = await self._call("POST", f"{_incident(ticket_id)}/{model.meta.path}", json=body)
        answer = response.json()
        return Acted(int(answer["event_seq"]), IncidentState.model_validate(answer["state"]), answer)

    async def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = await self._http.request(method, f"{self._base}{path}", headers=self._headers, **kwargs)
        if response.status_code >= 400:
            raise _ERRORS.get(response.status_code, ApiError)(response.status_code, _detail(response))
        return response


def _incident(ticket_id: str) -> str:
    # Servers decode %2F before routing, so quoting alone would let "INC-1/history" reach another endpoint.
    if not is_ticket_id(ticket_id):
        raise NotFound(404, f"no incident {ticket_id}")
    return f"/incidents/{quote(ticket_id, safe='')}"


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text or response.reason_phrase
    detail = body.get("detail") if isinstance(body, dict) else None
    return detail if isinstance(detail, str) else response.text
