"""The HTTP API for services and agents: a thin layer over IncidentService.

Opening is idempotent (201 for a new incident, 200 with the existing one for a
repeated request id or a recontact, told apart by the `Incident-Outcome`
header), actions go through the incident's `act` Update so the verdict is
synchronous (409 with the incident's reason when it refuses), and every error
says what was wrong in `detail`.
"""

# No `from __future__ import annotations` here: the role dependencies are aliases local to create_app,
# and FastAPI must see their annotations as objects, not as names to look up in the module.
import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from temporalio.service import RPCError, RPCStatusCode

from starter.auth import Principal, Role, TokenStore
from starter.incidents import ActionRejected, IncidentNotFound, IncidentService, IncidentSummary
from workers.telemetry import configure_tracing, instrument_fastapi
from workflows.domain.errors import field_path
from workflows.domain.models import (
    Acknowledge,
    Action,
    AddNote,
    AddRefund,
    ApproveRefund,
    CustomerContact,
    Escalate,
    Feedback,
    IncidentEvent,
    IncidentState,
    OpenIncident,
    Reclassify,
    Reopen,
    Resolve,
    RetryRefund,
    SettleRefund,
    Severity,
    Status,
)

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
OUTCOME_HEADER = "Incident-Outcome"
READERS = frozenset(Role)
TicketPath = Annotated[str, Path(description="the ticket number, e.g. INC-7F3K2Q", max_length=64)]
_bearer = HTTPBearer(auto_error=False, description="a token from INCIDENTS_API_TOKENS_FILE")


class ActionResponse(BaseModel):
    accepted: bool
    event_seq: int
    state: IncidentState


def _detail_of(error: RequestValidationError) -> str:
    problems = []
    for item in error.errors():
        location = tuple(part for part in item["loc"] if part != "body") or ("body",)
        message = str(item["msg"]).removeprefix("Value error, ")
        problems.append(f"{field_path(location)}: {message}")
    return "; ".join(problems)


def create_app(service: IncidentService, tokens: TokenStore, tracer_provider: Any = None) -> FastAPI:
    app = FastAPI(
        title="Incidents API",
        version="1",
        description=__doc__,
        responses={401: {"description": "no valid bearer token"}, 403: {"description": "the token's role may not"}},
    )
    app.state.service = service

    def caller(*roles: Role) -> Callable[..., Awaitable[Principal]]:
        async def check(
            credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
        ) -> Principal:
            principal = tokens.authenticate(credentials.credentials if credentials else None)
            if principal is None:
                raise HTTPException(401, "a valid bearer token is required", headers={"WWW-Authenticate": "Bearer"})
            if principal.role not in roles:
                allowed = ", ".join(sorted(r.value for r in roles))
                raise HTTPException(403, f"role {principal.role.value} may not do this (needs {allowed})")
            return principal

        return check

    Reader = Annotated[Principal, Depends(caller(*READERS))]
    Opener = Annotated[Principal, Depends(caller(Role.service))]
    Agent = Annotated[Principal, Depends(caller(Role.agent))]
    CustomerVoice = Annotated[Principal, Depends(caller(Role.service, Role.agent))]

    @app.middleware("http")
    async def limit_body(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
            return JSONResponse({"detail": f"body: larger than {MAX_BODY_BYTES} bytes"}, status_code=413)
        return await call_next(request)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _detail_of(error), "errors": _plain(error.errors())}, status_code=422)

    @app.exception_handler(IncidentNotFound)
    async def missing(_: Request, error: IncidentNotFound) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=404)

    @app.exception_handler(ActionRejected)
    async def rejected(_: Request, error: ActionRejected) -> JSONResponse:
        body = {"detail": error.reason, "action": error.action, "event_seq": error.event_seq}
        return JSONResponse(body, status_code=409)

    @app.exception_handler(RPCError)
    async def temporal_trouble(_: Request, error: RPCError) -> JSONResponse:
        if error.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
            return JSONResponse({"detail": "Temporal is unreachable; try again shortly"}, status_code=503)
        log.warning("temporal call failed: %s", error.status)
        return JSONResponse({"detail": f"Temporal refused the call ({error.status.name})"}, status_code=502)

    @app.get("/healthz", summary="Is the API up, and can it reach Temporal?")
    async def healthz() -> JSONResponse:
        try:
            await asyncio.wait_for(service.client.service_client.check_health(), 2)
        except Exception:
            return JSONResponse({"ok": False, "temporal": "unreachable"}, status_code=503)
        return JSONResponse({"ok": True, "temporal": "reachable"})

    @app.post(
        "/incidents",
        status_code=201,
        summary="Open an incident (or get the one this request already opened or joins)",
        responses={200: {"description": "a repeated request id, or a recontact joined to the open incident"}},
    )
    async def open_incident(request: OpenIncident, response: Response, _: Opener) -> IncidentState:
        opened = await service.open(request)
        response.headers[OUTCOME_HEADER] = opened.outcome
        response.headers["Location"] = f"/incidents/{opened.ticket_id}"
        if not opened.created:
            response.status_code = 200
        return opened.state

    @app.get("/incidents", summary="Find incidents by status, severity, line, customer or category")
    async def list_incidents(
        _: Reader,
        status: Status | None = None,
        severity: Severity | None = None,
        line: Annotated[int | None, Query(ge=1, le=3)] = None,
        customer_id: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9._:@-]{1,128}$")] = None,
        category: Annotated[str | None, Query(pattern=r"^[a-z][a-z0-9_]{0,63}$")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[IncidentSummary]:
        return await service.search(status, severity, line, customer_id, category, limit)

    @app.get("/incidents/{ticket}", summary="The whole incident, as the workflow's `state` query returns it")
    async def get_incident(ticket: TicketPath, _: Reader) -> IncidentState:
        return await service.state(ticket)

    @app.get("/incidents/{ticket}/history", summary="The incident's domain event log")
    async def get_history(ticket: TicketPath, _: Reader) -> list[IncidentEvent]:
        return await service.history(ticket)

    async def act(ticket: str, action: Action) -> ActionResponse:
        result = await service.act(ticket, action)
        return ActionResponse(accepted=result.accepted, event_seq=result.event_seq, state=await service.state(ticket))

    @app.post("/incidents/{ticket}/acknowledge", summary="An agent takes ownership")
    async def acknowledge(ticket: TicketPath, body: Acknowledge, _: Agent) -> ActionResponse:
        return await act(ticket, body)

    @app.post("/incidents/{ticket}/notes", summary="Add a note to the incident's history")
    async def add_note(ticket: TicketPath, body: AddNote, _: Agent) -> ActionResponse:
        return await act(ticket, body)

    @app.post("/incidents/{ticket}/escalate", summary="Hand the incident to the next line")
    async def escalate(ticket: TicketPath, body: Escalate, _: Agent) -> ActionResponse:
        return await act(ticket, body)

    @app.post("/incidents/{ticket}/resolve", summary="Record the fix; the customer is told")
    async def resolve(ticket: TicketPath, body: Resolve, _: Agent) -> ActionResponse:
        return await act(ticket, body)

    @app.post("/incidents/{ticket}/reopen", summary="Reopen a resolved incident on line 2")
    async def reopen(ticket: TicketPath, body: Reopen, _: Agent) -> ActionResponse:
        return await act(ticket, body)

    @app.post("/incidents/{ticket}/reclassify", summary="Change the severity (the SLA clocks follow)")
    async def reclassify(ticket: TicketPath, body: Reclassify, _: Agent) -> ActionResponse:
        return await act(ticket, body)

    @app.post("/incidents/{ticket}/feedback", summary="The customer's satisfaction score (1-2 reopens)")
    async def feedback(ticket: TicketPath, body: Feedback, _: CustomerVoice) -> ActionResponse:
        return await act(ticket, body)

    @app.post("/incidents/{ticket}/customer-contacts", summary="The customer got in touch again about it")
    async def customer_contact(ticket: TicketPath, body: CustomerContact, _: CustomerVoice) -> ActionResponse:
        return await act(ticket, body)

    @app.post("/incidents/{ticket}/refund", summary="Line 2 adds a refund owed to the customer")
    async def add_refund(ticket: TicketPath, body: AddRefund, _: Agent) -> ActionResponse:
        return await act(ticket, body)

    @app.post("/incidents/{ticket}/refund/approve", summary="Approve a refund above the line-1 limit")
    async def approve_refund(ticket: TicketPath, body: ApproveRefund, _: Agent) -> ActionResponse:
        return await act(ticket, body)

    @app.post("/incidents/{ticket}/refund/retry", summary="Retry a failed refund (same idempotency key)")
    async def retry_refund(ticket: TicketPath, body: RetryRefund, _: Agent) -> ActionResponse:
        return await act(ticket, body)

    @app.post("/incidents/{ticket}/refund/settle", summary="Record a refund paid outside the provider")
    async def settle_refund(ticket: TicketPath, body: SettleRefund, _: Agent) -> ActionResponse:
        return await act(ticket, body)

    instrument_fastapi(app, tracer_provider)
    return app


def _plain(errors: Any) -> list[dict[str, Any]]:
    """Validation errors as plain JSON (pydantic may put exceptions in `ctx`)."""
    return [{"loc": list(e["loc"]), "msg": str(e["msg"]), "type": e["type"]} for e in errors]


async def build_from_env() -> FastAPI:
    """The API as `incidents api` serves it: Temporal, policy and tokens all from the environment."""
    from starter.auth import load_tokens_from_env
    from starter.connection import connect
    from workflows.domain.policy import load_policy

    configure_tracing("incidents-api")
    tokens = load_tokens_from_env()
    policy = load_policy()
    client = await _connect_with_retry(connect)
    return create_app(IncidentService(client, policy), tokens)


async def _connect_with_retry(connect: Callable[[], Awaitable[Any]], within: float = 30.0) -> Any:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        try:
            return await connect()
        except RuntimeError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.5)


async def serve(host: str, port: int) -> None:
    import uvicorn

    app = await build_from_env()
    server = uvicorn.Server(
        uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off", log_config=None)
    )
    await server.serve()


def run(host: str = "127.0.0.1", port: int = 8080) -> None:
    asyncio.run(serve(host, port))
