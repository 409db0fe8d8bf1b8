"""The HTTP API for services and agents: a thin layer over IncidentService.

- **Opening** (`POST /incidents`, role `service`) is idempotent: 201 with the
  incident's state when this request created it; 200 with the existing
  incident for a repeated `request_id`, or when the customer already has an
  open incident in that category (the contact is joined to it, unless
  `new_incident` is true). The `Incident-Outcome` response header says which:
  `created`, `existing` or `joined`; `Location` names the incident.
- **Actions** (`POST /incidents/{ticket}/...`, role `agent`; `feedback` and
  `customer-contacts` also `service`) go through the incident's `act` Update,
  so the verdict is synchronous: 200 with the new state, or 409 with the
  incident's reason when it refuses (also for a closed incident).
- **Reading** (`GET`, every role): the state, the domain event log, and a
  search over Temporal visibility (status, severity, line, customer, category).

Every error body has a readable `detail`: 400 (a body that cannot be read at
all, e.g. not UTF-8), 401 (no valid bearer token), 403 (the token's role may
not), 404 (`no incident INC-...`), 409 (the incident's reason), 413 (body too
large), 422 (names the field, e.g. `description: String should have at least
1 character`), 502 (Temporal refused the call), 503 (Temporal unreachable),
504 (no worker answered in time). Each operation lists the ones it answers.
"""

# No `from __future__ import annotations` here: the role dependencies are aliases local to create_app,
# and FastAPI must see their annotations as objects, not as names to look up in the module.
import asyncio
import inspect
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field, create_model
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from temporalio.client import RPCTimeoutOrCancelledError, WorkflowUpdateFailedError
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from infra.errors import field_path
from infra.settings import Settings
from infra.telemetry import configure_tracing, instrument_fastapi
from starter import outage_api
from starter.auth import Principal, Role, TokenStore
from starter.incidents import ActionRejected, IncidentNotFound, IncidentService, IncidentSummary, PolicyRefused
from workflows.domain.actions import ACTOR_FIELDS, ACTOR_LINE, CATALOGUE, ActionModel
from workflows.domain.inputs import TASK_QUEUE
from workflows.domain.models import Contract, IncidentEvent, IncidentState, OpenIncident, Severity, Status
from workflows.domain.notice import OUTAGE_ID_PATTERN
from workflows.domain.outage import OutageState
from workflows.domain.tickets import is_ticket_id

log = logging.getLogger(__name__)

T = TypeVar("T")
MAX_BODY_BYTES = 64 * 1024
DEFAULT_ANSWER_SECONDS = 15.0
ANSWER_TIMEOUT_ENV = "INCIDENTS_API_ANSWER_TIMEOUT"
DESK_RECONCILE_ENV = "INCIDENTS_DESK_RECONCILE_SECONDS"
DEFAULT_DESK_RECONCILE_SECONDS = 15.0
OUTCOME_HEADER = "Incident-Outcome"
# The customer's ticket page (an unguessable link to send with the ticket number), when the desk is mounted.
CUSTOMER_PAGE_HEADER = "Customer-Page"
READERS = frozenset(Role)
TicketPath = Annotated[str, Path(description="the ticket number, e.g. INC-7F3K2Q", max_length=64)]
_bearer = HTTPBearer(auto_error=False, description="a token from INCIDENTS_API_TOKENS_FILE")


class ActionResponse(BaseModel):
    accepted: bool
    event_seq: int = Field(description="sequence number of the event the action produced")
    state: IncidentState


def body_model(model: type[ActionModel]) -> type[BaseModel]:
    """What a client may send for `model`: the actor (`agent`/`by`) and the actor's own line are optional, since
    the token says them; the actor's authority (`actor_line`) is not the client's to send at all."""
    fields: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        if name == ACTOR_LINE or name in model.meta.filled:
            continue
        if name in ACTOR_FIELDS or name == model.meta.own_line:
            what = "your line" if name == model.meta.own_line else "who acts"
            description = f"{what}: taken from your token (optional; any other value is refused with 403)"
            # pydantic keeps a field's constraints (e.g. a name's length) beside its annotation: keep them too.
            constrained: Any = Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
            fields[name] = (constrained | None, Field(default=None, description=description))
        else:
            fields[name] = (info.annotation, info)
    body: type[BaseModel] = create_model(model.__name__, __base__=Contract, __doc__=model.__doc__, **fields)
    return body


def acting_as(model: type[ActionModel], body: BaseModel, caller: Principal) -> ActionModel:
    """The action `caller` sends: its actor is the token's person, its line the token's line.

    A body naming someone else (or another line) is refused, 403, saying whose the token is. Service tokens
    send only customer-voice actions, which name no agent."""
    data = body.model_dump()
    actor_fields = [name for name in ACTOR_FIELDS if name in model.model_fields]
    if caller.role is not Role.agent or caller.person is None or caller.line is None:
        if actor_fields:
            raise HTTPException(403, f"{model.action_name()} is an agent's action; {caller.describe()} is no agent")
        return model.model_validate(data)
    for name in actor_fields:
        claimed = data.get(name)
        if claimed is not None and claimed != caller.person:
            raise HTTPException(403, f"{name}: this token belongs to {caller.describe()}; it cannot act as {claimed!r}")
        data[name] = caller.person
    own = model.meta.own_line
    if own is not None:
        claimed = data.get(own)
        if claimed is not None and claimed != caller.line:
            raise HTTPException(
                403, f"{own}: this token belongs to {caller.describe()}; it cannot act as line {claimed}"
            )
        data[own] = caller.line
    if ACTOR_LINE in model.model_fields:
        data[ACTOR_LINE] = caller.line
    return model.model_validate(data)


def action_endpoint(
    model: type[ActionModel], role: Any, act: Callable[[str, ActionModel], Awaitable[ActionResponse]]
) -> Callable[..., Awaitable[ActionResponse]]:
    """One action's route, from its catalogue entry: the body is what the client may send of the action, the
    caller its role; the actor and their authority come from the caller's token (acting_as)."""

    async def endpoint(ticket: str, body: BaseModel, caller: Principal) -> ActionResponse:
        return await act(ticket, acting_as(model, body, caller))

    # FastAPI reads the body model and the role dependency from the signature, so give it the real ones.
    endpoint.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter("ticket", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=TicketPath),
            inspect.Parameter("body", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=body_model(model)),
            inspect.Parameter("caller", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=role),
        ],
        return_annotation=ActionResponse,
    )
    return endpoint


def redacted_for(caller: Principal, state: IncidentState) -> IncidentState:
    """The incident as `caller` may see it: a viewer never sees how to reach the customer."""
    if caller.role is Role.viewer and state.contact is not None:
        return state.model_copy(update={"contact": None})
    return state


class Problem(BaseModel):
    detail: str = Field(description="what was wrong, in words: the field, the ticket, or the incident's reason")


class FieldProblem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class InvalidInput(Problem):
    errors: list[FieldProblem] = Field(description="each problem with its location, as pydantic reports it")


class Refusal(Problem):
    action: str
    event_seq: int | None = Field(default=None, description="the `action_rejected` event, when one was recorded")


def _documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    known: dict[int, dict[str, Any]] = {
        400: {"model": Problem, "description": "the body cannot be read at all (e.g. JSON that is not UTF-8)"},
        401: {"model": Problem, "description": "no valid bearer token"},
        403: {
            "model": Problem,
            "description": "the token's role may not do this, or the body names another actor (or line) than the "
            "token's person",
        },
        404: {"model": Problem, "description": "no incident with this ticket number"},
        409: {"model": Refusal, "description": "the incident refused the action (the reason is in `detail`)"},
        413: {"model": Problem, "description": f"the body is larger than {MAX_BODY_BYTES} bytes"},
        422: {"model": InvalidInput, "description": "invalid input; `detail` names each field"},
        502: {"model": Problem, "description": "Temporal refused the call (e.g. an unknown namespace, a permission)"},
        503: {"model": Problem, "description": "Temporal is unreachable; try again shortly"},
        504: {"model": Problem, "description": "no worker answered in time"},
    }
    return {status: known[status] for status in statuses}


# Every status each kind of route answers besides its success (tests/stack/test_api_statuses.py provokes them).
# The body limit (413) guards every route, with or without a body; 400 and 403 only come with a body or
# a role some token lacks; 502-504 wherever Temporal is called.
_CUSTOMER_PAGE = "/t/{ticket}?k=...: the customer's ticket page, to send with the ticket number"
_HEALTH = {
    **_documented(413),
    503: {"description": 'Temporal is unreachable: `{"ok": false, "temporal": "unreachable"}`'},
}
_READ = _documented(401, 413, 422, 502, 503, 504)
_READ_ONE = _documented(401, 404, 413, 422, 502, 503, 504)
_ACT = _documented(400, 401, 403, 404, 409, 413, 422, 502, 503, 504)
_OPEN = {
    **_documented(400, 401, 403, 409, 413, 422, 502, 503, 504),
    409: {
        "model": Refusal,
        "description": "the customer's open incident in this category cannot take what this request carries",
    },
    503: {
        "model": Problem,
        "description": "Temporal is unreachable, or opening lost every race it retried: repeat the request; or "
        "the workers do not know the policy this API opens incidents under (the detail names it)",
    },
    200: {
        "model": IncidentState,
        "description": "a repeated request id (`Incident-Outcome: existing`), or a recontact joined to the "
        "customer's open incident in this category (`Incident-Outcome: joined`)",
        "headers": {
            OUTCOME_HEADER: {"description": "existing | joined", "schema": {"type": "string"}},
            CUSTOMER_PAGE_HEADER: {
                "description": "/t/{ticket}?k=...: the customer's page",
                "schema": {"type": "string"},
            },
        },
    },
    201: {
        "description": "a new incident (`Incident-Outcome: created`)",
        "headers": {
            OUTCOME_HEADER: {"description": "created", "schema": {"type": "string"}},
            "Location": {"description": "/incidents/{ticket}", "schema": {"type": "string"}},
            CUSTOMER_PAGE_HEADER: {
                "description": "/t/{ticket}?k=...: the customer's page",
                "schema": {"type": "string"},
            },
        },
    },
}


class NoAnswer(Exception):
    """Temporal took the call but nothing answered in time: usually no worker polls the task queue."""

    def __init__(self, what: str, hint: str = "") -> None:
        super().__init__(what)
        self.what = what
        self.hint = hint


class BodyLimit:
    """Refuse large bodies before anything parses them, also when they come chunked without a Content-Length."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None:
            if not declared.isdigit() or int(declared) > self.limit:
                await self._refuse(scope, receive, send)
                return
            await self.app(scope, receive, send)  # the server holds the client to its declared length
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await self._refuse(scope, receive, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = JSONResponse({"detail": f"body: larger than {self.limit} bytes"}, status_code=413)
        await response(scope, receive, send)


def _detail_of(error: RequestValidationError) -> str:
    problems = []
    for item in error.errors():
        location = tuple(part for part in item["loc"] if part != "body") or ("body",)
        message = str(item["msg"]).removeprefix("Value error, ")
        if item["type"] == "json_invalid":
            # FastAPI puts the character position where a field name would be.
            position = f" at character {location[0]}" if isinstance(location[0], int) else ""
            reason = item.get("ctx", {}).get("error")
            location, message = ("body",), f"{message}{position}{f' ({reason})' if reason else ''}"
        problems.append(f"{field_path(location)}: {message}")
    return "; ".join(problems)


def _plain(errors: Any) -> list[dict[str, Any]]:
    """Validation errors as plain JSON (pydantic may put exceptions in `ctx`)."""
    return [{"loc": list(e["loc"]), "msg": str(e["msg"]), "type": e["type"]} for e in errors]


def create_app(
    service: IncidentService,
    tokens: TokenStore,
    tracer_provider: Any = None,
    answer_within: float = DEFAULT_ANSWER_SECONDS,
) -> FastAPI:
    """The API over `service`. A call that gets no answer within `answer_within` seconds is a 503 or 504."""
    app = FastAPI(title="Incidents API", version="1", description=__doc__)
    app.state.service = service
    app.add_middleware(BodyLimit, limit=MAX_BODY_BYTES)

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

    async def answered(call: Awaitable[T], what: str, hint: str = "") -> T:
        # Without a worker on the task queue an Update or a query waits (up to the server's own 30 s and
        # more); the caller deserves a bounded answer that says so.
        try:
            return await asyncio.wait_for(call, answer_within)
        except (TimeoutError, RPCTimeoutOrCancelledError):
            # An Update cancelled by the timeout surfaces as the SDK's own error, not as a TimeoutError.
            raise NoAnswer(what, hint) from None

    def known(ticket: str) -> str:
        # Nothing that is not a ticket number reaches Temporal as a workflow id.
        if not is_ticket_id(ticket):
            raise IncidentNotFound(ticket)
        return ticket

    async def temporal_reachable() -> bool:
        try:
            await asyncio.wait_for(service.client.service_client.check_health(), 2)
        except Exception:
            return False
        return True

    async def unreachable_or_slow(what: str, hint: str = "") -> JSONResponse:
        if not await temporal_reachable():
            return JSONResponse({"detail": "Temporal is unreachable; try again shortly"}, status_code=503)
        detail = (
            f"{what} did not answer within {answer_within:g}s: is a worker polling task queue "
            f"'{service.task_queue}'?{' ' + hint if hint else ''}"
        )
        return JSONResponse({"detail": detail}, status_code=504)

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

    @app.exception_handler(PolicyRefused)
    async def policy_unknown(_: Request, error: PolicyRefused) -> JSONResponse:
        # The API's policy file and the workers' differ: a deployment fault, not the caller's.
        log.error("opening refused for its policy: %s", error.reason)
        return JSONResponse({"detail": f"cannot open incidents now: {error.reason}"}, status_code=503)

    @app.exception_handler(NoAnswer)
    async def no_answer(_: Request, error: NoAnswer) -> JSONResponse:
        return await unreachable_or_slow(error.what, error.hint)

    @app.exception_handler(RPCTimeoutOrCancelledError)
    async def update_unanswered(_: Request, error: RPCTimeoutOrCancelledError) -> JSONResponse:
        return await unreachable_or_slow("the incident")

    @app.exception_handler(RPCError)
    async def temporal_trouble(_: Request, error: RPCError) -> JSONResponse:
        if error.status == RPCStatusCode.UNAVAILABLE:
            return JSONResponse({"detail": "Temporal is unreachable; try again shortly"}, status_code=503)
        if error.status in (RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED):
            return await unreachable_or_slow("the incident")
        log.warning("temporal call failed: %s", error.status.name)
        return JSONResponse({"detail": f"Temporal refused the call ({error.status.name})"}, status_code=502)

    @app.exception_handler(WorkflowUpdateFailedError)
    @app.exception_handler(WorkflowAlreadyStartedError)
    async def open_raced(_: Request, error: Exception) -> JSONResponse:
        # Opening lost every race it retries (an intake closing under it, a ticket number drawn twice).
        log.warning("opening failed: %s", type(error).__name__)
        detail = "could not open the incident just now; repeat the request (with the same request_id)"
        return JSONResponse({"detail": detail}, status_code=503)

    @app.get("/healthz", summary="Is the API up, and can it reach Temporal? (no token needed)", responses=_HEALTH)
    async def healthz() -> JSONResponse:
        if not await temporal_reachable():
            return JSONResponse({"ok": False, "temporal": "unreachable"}, status_code=503)
        return JSONResponse({"ok": True, "temporal": "reachable"})

    @app.post(
        "/incidents",
        status_code=201,
        summary="Open an incident (or get the one this request already opened or joins)",
        responses=_OPEN,
    )
    async def open_incident(request: OpenIncident, response: Response, _: Opener) -> IncidentState:
        opened = await answered(
            service.open(request),
            "the intake",
            "The incident may still open: repeat the request with the same request_id to get its ticket.",
        )
        response.headers[OUTCOME_HEADER] = opened.outcome
        response.headers["Location"] = f"/incidents/{opened.ticket_id}"
        customer_page = getattr(app.state, "customer_page", None)  # the desk's, when it is mounted
        if customer_page is not None:
            response.headers[CUSTOMER_PAGE_HEADER] = customer_page(opened.ticket_id)
        if not opened.created:
            response.status_code = 200
        return opened.state

    @app.get(
        "/incidents",
        summary="Find incidents by status, severity, line, customer, category or major incident",
        responses=_READ,
    )
    async def list_incidents(
        _: Reader,
        status: Status | None = None,
        severity: Severity | None = None,
        line: Annotated[int | None, Query(ge=1, le=3)] = None,
        customer_id: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9._:@-]{1,128}$")] = None,
        category: Annotated[str | None, Query(pattern=r"^[a-z][a-z0-9_]{0,63}$")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        outage_id: Annotated[str | None, Query(pattern=OUTAGE_ID_PATTERN, description="linked to this OUT-...")] = None,
    ) -> list[IncidentSummary]:
        search = service.search(status, severity, line, customer_id, category, limit, outage_id=outage_id)
        return await answered(search, "the search")

    @app.get(
        "/incidents/{ticket}",
        summary="The whole incident, as the workflow's `state` query returns it",
        responses=_READ_ONE,
    )
    async def get_incident(ticket: TicketPath, reader: Reader) -> IncidentState:
        return redacted_for(reader, await answered(service.state(known(ticket)), f"incident {ticket}"))

    @app.get("/incidents/{ticket}/history", summary="The incident's domain event log", responses=_READ_ONE)
    async def get_history(ticket: TicketPath, _: Reader) -> list[IncidentEvent]:
        return await answered(service.history(known(ticket)), f"incident {ticket}")

    async def act(ticket: str, action: ActionModel) -> ActionResponse:
        result = await answered(
            service.act(known(ticket), action),
            f"incident {ticket}",
            "The action may still be applied when a worker picks it up: read the incident before repeating it.",
        )
        state = result.state or await answered(service.state(ticket), f"incident {ticket}")
        return ActionResponse(accepted=result.accepted, event_seq=result.event_seq, state=state)

    roles = {"agent": Agent, "customer_voice": CustomerVoice}
    for model in CATALOGUE.values():
        if model.meta.role == "outage":
            continue  # a major incident's word to its incidents (a batch signal), not a client's
        app.add_api_route(
            f"/incidents/{{ticket}}/{model.meta.path}",
            action_endpoint(model, roles[model.meta.role], act),
            methods=["POST"],
            summary=model.summary(),
            responses=_ACT,
            response_model=ActionResponse,
            name=model.action_name(),
        )

    outage_api.install(
        app,
        caller,
        answered,
        {
            "declare": {
                **_documented(400, 401, 403, 413, 422, 502, 503, 504),
                200: {
                    "model": OutageState,
                    "description": "a repeated request id: what it declared (`Incident-Outcome: existing`)",
                },
            },
            "read": _READ,
            "one": {**_READ_ONE, 404: {"model": Problem, "description": "no major incident with this id"}},
            "act": {
                **_ACT,
                404: {"model": Problem, "description": "no major incident with this id"},
                409: {
                    "model": Refusal,
                    "description": "the major incident refused the action (the reason is in `detail`)",
                },
            },
        },
    )
    instrument_fastapi(app, tracer_provider)
    return app


class ApiConfigError(ValueError):
    """A setting of the API process that cannot be used; the message names it."""


class TemporalUnreachable(RuntimeError):
    """The API process could not connect to Temporal at start."""


async def build_from_settings(settings: Settings) -> FastAPI:
    """The API as `incidents api` serves it: tokens, policy, task queue and Temporal from the process's settings."""
    from infra.connection import connect, connect_config
    from starter.auth import load_tokens_file
    from workflows.domain.policy import policy_from

    # Configuration mistakes first, each naming its file and entry, before anything connects.
    tokens = load_tokens_file(settings.api_tokens_file)
    policy = policy_from(settings.policy_file)
    answer_within = _seconds(ANSWER_TIMEOUT_ENV, settings.api_answer_timeout, DEFAULT_ANSWER_SECONDS)
    reconcile_every = _seconds(DESK_RECONCILE_ENV, settings.desk_reconcile_seconds, DEFAULT_DESK_RECONCILE_SECONDS)
    task_queue = settings.task_queue or TASK_QUEUE
    desk_secret = _desk_secret(settings)
    configure_tracing("incidents-api", settings)
    try:
        client = await _connect_with_retry(lambda: connect(settings=settings))
    except RuntimeError as error:
        target = connect_config(settings.temporal_address).get("target_host")
        raise TemporalUnreachable(f"cannot reach Temporal at {target} ({error})") from None
    # The agent desk and the customer's ticket page ride along (starter/desk/); the service tells its read model
    # every state it obtains.
    from starter.desk.app import mount_desk
    from starter.desk.observed import ObservedIncidentService

    service = ObservedIncidentService(client, policy, task_queue=task_queue)
    app = create_app(service, tokens, answer_within=answer_within)
    mount_desk(app, service, tokens, desk_secret, answer_within=answer_within, reconcile_every=reconcile_every)
    return app


def _desk_secret(settings: Settings) -> bytes:
    """INCIDENTS_DESK_SECRET_FILE; else the dev stack's data/desk-secret, made once (see starter/desk/secrets.py)."""
    from starter.desk.secrets import DEV_SECRET_NAME, DeskSecretError, load_secret

    named = settings.desk_secret_file
    path = named or (settings.dev.data_path / DEV_SECRET_NAME if settings.dev is not None else None)
    try:
        return load_secret(path, create=named is None)
    except DeskSecretError as error:
        raise ApiConfigError(str(error)) from None


def _seconds(name: str, given: str | None, default: float) -> float:
    text = (given or "").strip()
    if not text:
        return default
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds < 3600:
        raise ApiConfigError(f"{name}: expected a number of seconds between 0 and 3600, got {text!r}")
    return seconds


async def _connect_with_retry(connect: Callable[[], Awaitable[Any]], within: float = 30.0) -> Any:
    # The dev stack starts the API next to the server; give the server a moment to listen.
    deadline = asyncio.get_running_loop().time() + within
    while True:
        try:
            return await connect()
        except RuntimeError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.5)


async def serve(host: str, port: int, settings: Settings) -> None:
    import uvicorn

    app = await build_from_settings(settings)
    server = uvicorn.Server(
        uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off", log_config=None)
    )
    await server.serve()


def run(host: str = "127.0.0.1", port: int = 8080, settings: Settings | None = None) -> None:
    """Serve the API until interrupted (`incidents api --host --port`), with the settings the CLI read.

    A bad setting exits with code 2 and one line naming it; Temporal out of reach at start, code 1.
    """
    from starter.auth import TokenConfigError
    from workflows.domain.policy import PolicyError

    try:
        asyncio.run(serve(host, port, settings or Settings.load()))
    except (TokenConfigError, PolicyError, ApiConfigError) as error:
        print(f"incidents api: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    except TemporalUnreachable as error:
        print(f"incidents api: {error}", file=sys.stderr, flush=True)
        # After failed connects the Temporal runtime's threads can race interpreter shutdown and abort
        # the process (PyGILState_Release); nothing is left to clean up, so leave with the promised code.
        os._exit(1)
