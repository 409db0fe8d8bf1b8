"""The HTTP API's major incidents (issue 18): declare, update, escalate, hand over, resolve, read, list.

Declaring and acting on a major incident takes an agent of line 2 or above, or an operator (`sre`); the
token names who acts (`declared_by`, `by`), and a body naming someone else is refused, 403. Everyone reads.
A major incident's incidents are `GET /outages/{outage}/incidents`; an incident is linked or unlinked by
its own actions (`POST /incidents/{ticket}/outage-link`, `.../outage-unlink`).
"""

# No `from __future__ import annotations`: FastAPI must see the dependency aliases as objects.
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, Field

from starter.auth import Principal, Role
from starter.incidents import IncidentService, IncidentSummary
from starter.outages import OutageNotFound, OutageRefused, OutageService, OutageSummary
from workflows.domain.models import AgentName, Contract, ShortText, Text
from workflows.domain.outage import (
    DECLARING_LINE,
    DeclareOutage,
    EscalateOutage,
    HandOver,
    OutageAction,
    OutageState,
    PostUpdate,
    ResolveOutage,
)

OutagePath = Annotated[str, Path(description="the major incident, e.g. OUT-7F3K2Q", max_length=64)]
OUTCOME_HEADER = "Incident-Outcome"
Caller = Callable[..., Awaitable[Principal]]
Answered = Callable[[Awaitable[Any], str], Awaitable[Any]]


class OutageAnswer(BaseModel):
    accepted: bool
    event_seq: int = Field(description="sequence number of the event the action produced")
    state: OutageState


# What a client sends: the acting person is the token's (optional here; another name is refused).
class UpdateBody(Contract):
    by: AgentName | None = Field(default=None, description="who acts: taken from your token")
    news: ShortText | None = Field(default=None, description="what the linked customers are told")
    expected_fix_by: AwareDatetime | None = Field(default=None, description="a new expected fix time (with a zone)")


class EscalateBody(Contract):
    by: AgentName | None = Field(default=None, description="who acts: taken from your token")
    reason: ShortText


class ResolveBody(Contract):
    by: AgentName | None = Field(default=None, description="who acts: taken from your token")
    resolution: Text = Field(description="what was done: every linked customer is told")


class HandOverBody(Contract):
    by: AgentName | None = Field(default=None, description="who acts: taken from your token")
    owner: AgentName
    owner_line: int = Field(default=DECLARING_LINE, ge=DECLARING_LINE, le=3)


def acting_person(caller: Principal, claimed: str | None) -> str:
    """Who acts: the token's person (an operator's token: its name); another name is refused."""
    person = caller.person or caller.name
    if claimed is not None and claimed != person:
        raise HTTPException(403, f"by: this token belongs to {caller.describe()}; it cannot act as {claimed!r}")
    return person


def require_authority(caller: Principal) -> int:
    """The line the caller acts from: line 2 or above, or an operator (who acts for line 2)."""
    if caller.role is Role.sre:
        return DECLARING_LINE
    if caller.line is None or caller.line < DECLARING_LINE:
        raise HTTPException(
            403,
            f"{caller.describe()} may not: a major incident is declared and run by line {DECLARING_LINE} or above, "
            "or an operator (line 1 escalates a suspected outage instead)",
        )
    return caller.line


def install(app: FastAPI, caller: Callable[..., Caller], answered: Answered, responses: dict[str, Any]) -> None:
    """Add the /outages routes to `app` (whose state holds the IncidentService)."""
    readers = Annotated[Principal, Depends(caller(*Role))]
    runners = Annotated[Principal, Depends(caller(Role.agent, Role.sre))]

    def outages() -> OutageService:
        incidents: IncidentService = app.state.service
        return OutageService(incidents.client, task_queue=incidents.task_queue)

    @app.exception_handler(OutageNotFound)
    async def missing(_: Request, error: OutageNotFound) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=404)

    @app.exception_handler(OutageRefused)
    async def refused(_: Request, error: OutageRefused) -> JSONResponse:
        body = {"detail": error.reason, "action": error.action, "event_seq": error.event_seq}
        return JSONResponse(body, status_code=409)

    @app.post(
        "/outages",
        status_code=201,
        summary="Declare a major incident (or planned works): line 2 or above, or an operator",
        responses=responses["declare"],
    )
    async def declare(request: DeclareOutage, response: Response, who: runners) -> OutageState:
        line = require_authority(who)
        request = request.model_copy(update={"declared_by": acting_person(who, request.declared_by)})
        declared = await answered(outages().declare(request, owner_line=line), "the major incident")
        response.headers[OUTCOME_HEADER] = declared.outcome
        response.headers["Location"] = f"/outages/{declared.outage_id}"
        if declared.outcome != "created":
            response.status_code = 200
        state: OutageState = declared.state
        return state

    @app.get("/outages", summary="The major incidents, newest first", responses=responses["read"])
    async def listing(
        _: readers,
        running: bool = Query(default=False, description="only those still running"),
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[OutageSummary]:
        rows: list[OutageSummary] = await answered(outages().list(running, limit), "the search")
        return rows

    @app.get("/outages/{outage}", summary="The major incident as its workflow sees it", responses=responses["one"])
    async def show(outage: OutagePath, _: readers) -> OutageState:
        state: OutageState = await answered(outages().state(outage), f"major incident {outage}")
        return state

    @app.get(
        "/outages/{outage}/incidents",
        summary="The incidents linked to the major incident (resolved together ones too)",
        responses=responses["one"],
    )
    async def incidents(
        outage: OutagePath, _: readers, limit: Annotated[int, Query(ge=1, le=1000)] = 100
    ) -> list[IncidentSummary]:
        await answered(outages().state(outage), f"major incident {outage}")  # 404 for one that never was
        service: IncidentService = app.state.service
        rows: list[IncidentSummary] = await answered(service.search(limit=limit, outage_id=outage), "the search")
        return rows

    async def act(outage: str, action: OutageAction) -> OutageAnswer:
        result = await answered(outages().act(outage, action), f"major incident {outage}")
        return OutageAnswer(accepted=result.accepted, event_seq=result.event_seq, state=result.state)

    @app.post(
        "/outages/{outage}/updates",
        summary="Post a status update or a new expected fix time",
        responses=responses["act"],
    )
    async def update(outage: OutagePath, body: UpdateBody, who: runners) -> OutageAnswer:
        if body.news is None and body.expected_fix_by is None:
            await answered(outages().state(outage), f"major incident {outage}")  # an unknown one is a 404 first
            raise RequestValidationError(
                [{"loc": ("body", "news"), "msg": "give news, a new expected_fix_by, or both", "type": "missing"}]
            )
        require_authority(who)
        by = acting_person(who, body.by)
        return await act(outage, PostUpdate(by=by, news=body.news, expected_fix_by=body.expected_fix_by))

    @app.post(
        "/outages/{outage}/escalate", summary="Hand the major incident to the next line", responses=responses["act"]
    )
    async def escalate(outage: OutagePath, body: EscalateBody, who: runners) -> OutageAnswer:
        require_authority(who)
        return await act(outage, EscalateOutage(by=acting_person(who, body.by), reason=body.reason))

    @app.post("/outages/{outage}/hand-over", summary="Give the major incident a new owner", responses=responses["act"])
    async def hand_over(outage: OutagePath, body: HandOverBody, who: runners) -> OutageAnswer:
        require_authority(who)
        action = HandOver(by=acting_person(who, body.by), owner=body.owner, owner_line=body.owner_line)
        return await act(outage, action)

    @app.post(
        "/outages/{outage}/resolve",
        summary="Resolve it: every linked incident is resolved with it, each customer told",
        responses=responses["act"],
    )
    async def resolve(outage: OutagePath, body: ResolveBody, who: runners) -> OutageAnswer:
        require_authority(who)
        return await act(outage, ResolveOutage(by=acting_person(who, body.by), resolution=body.resolution))
