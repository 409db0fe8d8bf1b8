"""The agent desk (`/desk`) and the customer's ticket page (`/t/{ticket}`), served by the API process.

Server-rendered HTML (Jinja2); a few lines of our own JavaScript (static/desk.js) listen to the desk's
server-sent events and fetch the changed part of the page, so a change shows without a reload. Every
action goes through the same path as the HTTP API: the catalogue's model, the API's body contract and its
rule for who acts (starter.api.acting_as: the signed-in agent), then IncidentService.act (the incident's
`act` update). A refusal is shown in words next to the action.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import html
import json
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, PackageLoader, select_autoescape
from pydantic import BaseModel, ValidationError
from temporalio.service import RPCError

from starter.api import acting_as, body_model
from starter.auth import Principal, Role, TokenStore, digest
from starter.desk import words
from starter.desk.forms import ActionForm, Group, Input, Submitted, body_of, errors_by_field, form_of, form_values
from starter.desk.observed import ObservedIncidentService
from starter.desk.readmodel import ANY_OUTAGE, DeskFeed, Listed, ReadModel
from starter.desk.secrets import CustomerLinks
from starter.desk.sessions import COOKIE, Session, SessionCookies
from starter.incidents import ActionRejected, IncidentNotFound, IncidentService, IncidentSummary
from workflows import search_attributes as sa
from workflows.domain.actions import CATALOGUE, ActionModel
from workflows.domain.inputs import WORKFLOW_TYPE
from workflows.domain.models import IncidentState, Severity, Status
from workflows.domain.notice import is_outage_id
from workflows.domain.tickets import is_ticket_id

STATIC = Path(__file__).parent / "static"
# An event stream ends after this long and the browser opens the next one: no stream outlives a shutdown
# by more than this, and a lost connection is noticed.
STREAM_SECONDS = 10.0
QUEUE_ROWS = 200
# What the ticket page offers the customer, by action: when the incident would take it.
CUSTOMER_OFFERS = {"feedback": (Status.resolved,)}
CUSTOMER_CHANNEL = "app"  # what the customer writes on the ticket page comes through the app
CUSTOMER_LABELS = {
    "text": ("Your message", ""),
    "contact": ("A new e-mail or phone to reach you", ""),
    "refund": ("Money you ask back", "Only if you were charged and want it back."),
    "score": ("Score", "1 (bad) to 5 (good)"),
    "comment": ("Comment", ""),
}
# How the ticket page names an action to the customer (the catalogue's summary is written for agents).
CUSTOMER_WORDS = {
    "feedback": ("Rate our help", "How well did we help? 1 is bad, 5 is good; 1 or 2 reopens your ticket."),
    "customer_contact": ("Write to us", "Tell us more, or tell us it is not fixed yet."),
}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    # The ticket page's link is its key: never hand it to another site.
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@dataclass
class Desk:
    service: IncidentService
    tokens: TokenStore
    links: CustomerLinks
    cookies: SessionCookies
    model: ReadModel
    feed: DeskFeed
    answer_within: float
    env: Environment
    forms: dict[str, ActionForm] = field(default_factory=dict)
    customer_forms: dict[str, ActionForm] = field(default_factory=dict)
    bodies: dict[str, type[BaseModel]] = field(default_factory=dict)


class NotSignedIn(Exception):
    pass


def _signed_in(request: Request) -> tuple[Session, Principal]:
    """The session and the agent it names, or NotSignedIn (a sign-in page for a browser, 401 otherwise)."""
    desk: Desk = request.app.state.desk
    session = desk.cookies.read(request.cookies.get(COOKIE))
    agent = desk.tokens.by_digest(session.digest) if session.digest else None
    if agent is None or agent.role is not Role.agent:
        raise NotSignedIn
    desk.feed.start()
    return session, agent


# At module level: FastAPI reads the (postponed) annotations of the routes below by name, here.
Agent = Annotated[tuple[Session, Principal], Depends(_signed_in)]
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(HTTPBearer(auto_error=False))]


def _environment() -> Environment:
    env = Environment(loader=PackageLoader("starter.desk", "templates"), autoescape=select_autoescape(default=True))
    env.filters["shown"] = words.shown
    env.filters["relative"] = words.relative
    env.globals["urgency"] = words.urgency
    env.globals["event_words"] = words.event_words
    return env


def build_forms(desk: Desk) -> None:
    for name, model in CATALOGUE.items():
        body = body_model(model)
        desk.bodies[name] = body
        desk.forms[name] = form_of(model, body)
        if model.meta.role == "customer_voice":
            form = form_of(model, body, fixed={"channel": CUSTOMER_CHANNEL})
            title, summary = CUSTOMER_WORDS.get(name, (form.title, form.summary))
            items = tuple(_for_the_customer(item) for item in form.items)
            desk.customer_forms[name] = dataclasses.replace(form, title=title, summary=summary, items=items)


def _for_the_customer(item: Input | Group) -> Input | Group:
    """An input as the customer reads it: the catalogue's descriptions speak of the customer, not to them."""
    label, help_text = CUSTOMER_LABELS.get(item.name, (item.label, ""))
    if isinstance(item, Group):
        inputs = tuple(dataclasses.replace(spec, help="") for spec in item.inputs)
        return dataclasses.replace(item, label=label, help=help_text, inputs=inputs)
    return dataclasses.replace(item, label=label, help=help_text)


def _listing(service: IncidentService) -> Any:
    async def list_incidents(extra: str) -> list[Listed]:
        query = f"WorkflowType = '{WORKFLOW_TYPE}' AND {extra}"
        rows: list[Listed] = []
        async for execution in service.client.list_workflows(query):
            found = execution.typed_search_attributes
            rows.append(
                Listed(
                    execution.id,
                    found.get(sa.STATUS),
                    found.get(sa.LINE),
                    found.get(sa.SEVERITY),
                    found.get(sa.ASSIGNEE),
                    execution.start_time,
                )
            )
        return rows

    return list_incidents


def mount_desk(
    app: FastAPI,
    service: IncidentService,
    tokens: TokenStore,
    secret: bytes,
    answer_within: float = 15.0,
    secure_cookies: bool = False,
    new_every: float = 1.0,
    reconcile_every: float = 15.0,
) -> Desk:
    """Add the desk, the ticket page and `GET /incidents/{ticket}/customer-link` to the API `app`."""
    model = ReadModel()

    async def read_state(ticket: str) -> IncidentState:
        return await IncidentService.state(service, ticket)

    feed = DeskFeed(model, read_state, _listing(service), new_every=new_every, reconcile_every=reconcile_every)
    if isinstance(service, ObservedIncidentService):
        service.feed = feed
    desk = Desk(
        service,
        tokens,
        CustomerLinks(secret),
        SessionCookies(secret, secure=secure_cookies),
        model,
        feed,
        answer_within,
        _environment(),
    )
    build_forms(desk)
    app.state.desk = desk
    app.state.customer_page = desk.links.path
    app.mount("/desk/static", StaticFiles(directory=STATIC), name="desk-static")
    app.include_router(_desk_routes(desk))
    app.include_router(_customer_routes(desk))
    app.include_router(_link_route(desk))

    @app.exception_handler(NotSignedIn)
    async def sign_in_first(request: Request, _: NotSignedIn) -> Response:
        # A page sends the browser to the sign-in; what the desk's script fetches hears 401.
        fetched = request.url.path.endswith(("/events", "/queue", "/live"))
        if request.method == "GET" and not fetched:
            return RedirectResponse("/desk/signin", status_code=303)
        return JSONResponse({"detail": "sign in at /desk/signin first"}, status_code=401)

    return desk


# --- rendering ---


def page(desk: Desk, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    rendered = desk.env.get_template(template).render(now=words.now_utc(), **context)
    return HTMLResponse(rendered, status_code=status, headers=SECURITY_HEADERS)


def _with_session(response: Response, desk: Desk, session: Session) -> Response:
    response.set_cookie(value=desk.cookies.write(session), **desk.cookies.cookie_options())
    return response


def _agent_context(desk: Desk, session: Session, agent: Principal) -> dict[str, Any]:
    tz = words.zone(session.tz)
    return {
        "agent": agent,
        "tz": tz,
        "local": lambda moment: words.local(moment, tz),
        "csrf": session.csrf,
        "counts": desk.model.counts(),
    }


async def _answered(desk: Desk, call: Any) -> Any:
    return await asyncio.wait_for(call, desk.answer_within)


def _trouble(error: BaseException) -> str:
    """What went wrong on the way to the incident, in words (never a stack trace)."""
    if isinstance(error, TimeoutError):
        return "No answer from the incident in time (is a worker running?). It may still be applied: look again."
    if isinstance(error, RPCError):
        return f"Temporal did not take the call ({error.status.name}); try again shortly."
    return "The incident could not be reached; try again shortly."


# --- the desk ---


def _desk_routes(desk: Desk) -> APIRouter:
    router = APIRouter(prefix="/desk", include_in_schema=False)

    def session_of(request: Request) -> Session:
        return desk.cookies.read(request.cookies.get(COOKIE))

    @router.get("/signin")
    async def signin_form(request: Request) -> Response:
        session = session_of(request)
        if session.fresh or not session.csrf:
            session = Session()
        return _with_session(page(desk, "signin.html", csrf=session.csrf, error=None, tz=session.tz), desk, session)

    @router.post("/signin")
    async def signin(request: Request) -> Response:
        form = await request.form()
        session = session_of(request)
        if not session.csrf_ok(_text(form, "csrf")):
            fresh = Session()
            expired = "The sign-in form had expired; please sign in again."
            return _with_session(page(desk, "signin.html", 403, csrf=fresh.csrf, error=expired, tz="UTC"), desk, fresh)
        token = _text(form, "token").strip()
        tz = _text(form, "tz").strip() or "UTC"
        principal = desk.tokens.authenticate(token)
        error: str | None = None
        if principal is None:
            error = "token: not a token this desk knows; paste your agent token."
        elif principal.role is not Role.agent:
            error = f"token: the desk is for agents; this token is {principal.describe()}."
        elif not words.known_zone(tz):
            error = f"time zone: {tz!r} is no time zone name (e.g. Europe/Moscow, UTC)."
        if error is not None:
            return _with_session(page(desk, "signin.html", 401, csrf=session.csrf, error=error, tz=tz), desk, session)
        # A new session (and CSRF token) at sign-in: nothing from before the sign-in carries over.
        signed = Session(digest=digest(token), tz=tz, fresh=False)
        desk.feed.start()
        return _with_session(RedirectResponse("/desk", status_code=303), desk, signed)

    @router.post("/signout")
    async def signout(request: Request, who: Agent) -> Response:
        session, _ = who
        form = await request.form()
        if not session.csrf_ok(_text(form, "csrf")):
            return page(desk, "message.html", 403, title="Not signed out", text="The form had expired; try again.")
        response = RedirectResponse("/desk/signin", status_code=303)
        response.delete_cookie(COOKIE, path="/desk")
        return response

    @router.post("/timezone")
    async def timezone(request: Request, who: Agent) -> Response:
        session, _ = who
        form = await request.form()
        tz = _text(form, "tz").strip()
        if not session.csrf_ok(_text(form, "csrf")) or not words.known_zone(tz):
            return page(desk, "message.html", 400, title="Time zone unchanged", text=f"{tz!r} is no time zone name.")
        session.tz = tz
        return _with_session(RedirectResponse("/desk", status_code=303), desk, session)

    def queue_context(request: Request, agent: Principal) -> dict[str, Any]:
        q = request.query_params
        line = _int_in(q.get("line"), (1, 2, 3), agent.line or 1)
        severity = q.get("severity") if q.get("severity") in {s.value for s in Severity} else None
        status = str(q.get("status")) if q.get("status") in {"open", "resolved", "closed", "all"} else "active"
        statuses: tuple[str, ...] = {"active": ("open", "resolved"), "all": ()}.get(status, (status,))
        categories = desk.model.categories()
        category = q.get("category") if q.get("category") in categories else None
        mine = q.get("mine") == "on"
        linked = _linked_filter(q.get("linked"))
        rows, total = desk.model.queue(
            line, statuses, severity, category, agent.person if mine else None, limit=QUEUE_ROWS, outage=linked
        )
        filters = {
            "line": line,
            "severity": severity,
            "status": status,
            "category": category,
            "mine": mine,
            "linked": linked,
        }
        query = "&".join(f"{k}={v if not isinstance(v, bool) else 'on'}" for k, v in filters.items() if v)
        return {
            "rows": rows,
            "total": total,
            "filters": filters,
            "query": query,
            "categories": categories,
            "outages": sorted({*desk.model.outages(), *([linked] if linked and linked != ANY_OUTAGE else [])}),
            "severities": [s.value for s in Severity],
            "version": desk.model.version,
        }

    @router.get("")
    async def queue(request: Request, who: Agent) -> Response:
        started = time.perf_counter()
        session, agent = who
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(desk.feed.rebuilt.wait(), 5)  # the first look after a start
        try:
            context = {**_agent_context(desk, session, agent), **queue_context(request, agent)}
        except BadFilter as refused:
            return page(
                desk,
                "message.html",
                400,
                title="Filter not applied",
                text=str(refused),
                **_agent_context(desk, session, agent),
            )
        response = page(desk, "queue.html", **context)
        response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.1f}"
        return response

    @router.get("/queue")
    async def queue_fragment(request: Request, who: Agent) -> Response:
        started = time.perf_counter()
        session, agent = who
        try:
            context = {**_agent_context(desk, session, agent), **queue_context(request, agent)}
        except BadFilter as refused:
            return HTMLResponse(f"<p>{html.escape(str(refused))}</p>", status_code=400, headers=SECURITY_HEADERS)
        response = page(desk, "_queue.html", **context)
        response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.1f}"
        return response

    @router.get("/events")
    async def events(request: Request, who: Agent) -> Response:
        after = _int_in(request.headers.get("last-event-id") or request.query_params.get("after"), None, 0)

        async def stream() -> AsyncIterator[str]:
            yield "retry: 300\n\n"
            seen = after
            ends = time.monotonic() + STREAM_SECONDS
            while (left := ends - time.monotonic()) > 0:
                version = await desk.model.wait_change(seen, min(left, 5.0))
                if version > seen:
                    tickets = desk.model.changed_since(seen)
                    seen = version
                    yield f"id: {seen}\nevent: changed\ndata: {json.dumps({'v': seen, 'tickets': tickets})}\n\n"
                else:
                    yield ": still here\n\n"

        headers = {**SECURITY_HEADERS, "X-Accel-Buffering": "no"}
        return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)

    async def incident_context(
        ticket: str, session: Session, agent: Principal, request: Request
    ) -> dict[str, Any] | Response:
        if not is_ticket_id(ticket):
            return page(desk, "message.html", 404, title="No such incident", text=f"no incident {ticket}")
        try:
            state: IncidentState = await _answered(desk, desk.service.state(ticket))
        except IncidentNotFound:
            return page(desk, "message.html", 404, title="No such incident", text=f"no incident {ticket}")
        except (TimeoutError, RPCError) as error:
            return page(desk, "message.html", 503, title=f"{ticket} cannot be read now", text=_trouble(error))
        previous: list[IncidentSummary] | None
        try:
            found = await _answered(desk, desk.service.search(customer_id=state.customer_id, limit=20))
            previous = [row for row in found if row.ticket_id != ticket]
        except (TimeoutError, RPCError):
            previous = None
        base = str(request.base_url).rstrip("/")
        return {
            **_agent_context(desk, session, agent),
            "state": state,
            "previous": previous,
            "clocks": sorted(state.clock.deadlines.values(), key=lambda d: d.due_at),
            "customer_link": base + desk.links.path(ticket),
            "agent_forms": [f for f in desk.forms.values() if f.role == "agent"],
            "voice_forms": [f for f in desk.forms.values() if f.role != "agent"],
            "submitted": {},
            "done": request.query_params.get("done"),
            "version": desk.model.version,
        }

    @router.get("/incidents/{ticket}")
    async def incident(ticket: str, request: Request, who: Agent) -> Response:
        session, agent = who
        context = await incident_context(ticket, session, agent, request)
        if isinstance(context, Response):
            return context
        return page(desk, "incident.html", **context)

    @router.get("/incidents/{ticket}/live")
    async def incident_live(ticket: str, request: Request, who: Agent) -> Response:
        session, agent = who
        context = await incident_context(ticket, session, agent, request)
        if isinstance(context, Response):
            return context
        return page(desk, "_incident_live.html", **context)

    @router.post("/incidents/{ticket}/actions/{action}")
    async def act(ticket: str, action: str, request: Request, who: Agent) -> Response:
        session, agent = who
        model = CATALOGUE.get(action)
        if model is None or not is_ticket_id(ticket):
            return page(desk, "message.html", 404, title="No such action", text=f"no action {action} on {ticket}")
        form = await request.form()
        posted = _posted(form)
        submitted = Submitted(values=form_values(posted, desk.forms[action]))
        status = 200
        if not session.csrf_ok(posted.get("csrf")):
            submitted.refusal, status = "The form had expired (or came from another site); send it again.", 403
        else:
            status = await _act_for(desk, ticket, model, posted, agent, submitted)
        if status == 200:
            return RedirectResponse(f"/desk/incidents/{ticket}?done={action}#done", status_code=303)
        context = await incident_context(ticket, session, agent, request)
        if isinstance(context, Response):
            return context
        context["submitted"] = {action: submitted}
        return page(desk, "incident.html", status, **context)

    return router


async def _act_for(
    desk: Desk,
    ticket: str,
    model: type[ActionModel],
    posted: Mapping[str, str],
    caller: Principal | None,
    out: Submitted,
) -> int:
    """Send the action as `caller` (None: the customer, on the ticket page); the HTTP status the verdict is."""
    name = model.action_name()
    forms = desk.forms if caller is not None else desk.customer_forms
    try:
        body = desk.bodies[name].model_validate(body_of(forms[name], posted))
    except ValidationError as error:
        out.errors = errors_by_field(error)
        out.refusal = "Some fields need another look."
        return 422
    try:
        # The customer's voice names no agent: the action is the body as it came.
        action = acting_as(model, body, caller) if caller is not None else model.model_validate(body.model_dump())
    except HTTPException as refused:
        out.refusal = str(refused.detail)
        return refused.status_code
    except ValidationError as error:
        out.errors = errors_by_field(error)
        return 422
    try:
        await _answered(desk, desk.service.act(ticket, action))
    except ActionRejected as rejected:
        out.refusal = rejected.reason
        return 409
    except IncidentNotFound:
        out.refusal = f"no incident {ticket}"
        return 404
    except (TimeoutError, RPCError) as error:
        out.refusal = _trouble(error)
        return 503
    return 200


# --- the customer's ticket page ---


def _customer_routes(desk: Desk) -> APIRouter:
    router = APIRouter(prefix="/t", include_in_schema=False)
    gone = {"title": "This link opens no ticket", "text": "Check the link in the message we sent you."}

    async def customer_context(ticket: str, key: str | None, request: Request) -> dict[str, Any] | Response:
        if not is_ticket_id(ticket) or not desk.links.valid(ticket, key):
            return page(desk, "customer_message.html", 404, **gone)
        try:
            state: IncidentState = await _answered(desk, desk.service.state(ticket))
        except IncidentNotFound:
            return page(desk, "customer_message.html", 404, **gone)
        except (TimeoutError, RPCError):
            return page(
                desk, "customer_message.html", 503, title="Please try again shortly", text="We cannot show it just now."
            )
        tz = words.zone("UTC")
        offered = [
            form
            for name, form in desk.customer_forms.items()
            if state.status in CUSTOMER_OFFERS.get(name, (Status.open, Status.resolved))
        ]
        return {
            "state": state,
            "key": key,
            "status_words": words.customer_status(state),
            "next_words": words.customer_next(state, tz),
            "messages": words.customer_messages(state),
            "local": lambda moment: words.local(moment, tz),
            "forms": offered,
            "submitted": {},
            "done": request.query_params.get("done"),
        }

    @router.get("/{ticket}")
    async def ticket_page(ticket: str, request: Request, k: str | None = None) -> Response:
        context = await customer_context(ticket, k, request)
        if isinstance(context, Response):
            return context
        return page(desk, "customer.html", **context)

    @router.post("/{ticket}/actions/{action}")
    async def customer_act(ticket: str, action: str, request: Request) -> Response:
        form = await request.form()
        posted = _posted(form)
        key = posted.get("k")
        model = CATALOGUE.get(action)
        if model is None or action not in desk.customer_forms:
            return page(desk, "customer_message.html", 404, **gone)
        context = await customer_context(ticket, key, request)
        if isinstance(context, Response):
            return context
        submitted = Submitted(values=form_values(posted, desk.customer_forms[action]))
        status = await _act_for(desk, ticket, model, posted, None, submitted)
        if status == 200:
            return RedirectResponse(f"/t/{ticket}?k={key}&done={action}#done", status_code=303)
        context = await customer_context(ticket, key, request)
        if isinstance(context, Response):
            return context
        context["submitted"] = {action: submitted}
        return page(desk, "customer.html", status, **context)

    return router


# --- the API's way to the link ---


class CustomerLink(BaseModel):
    ticket_id: str
    url: str


def _link_route(desk: Desk) -> APIRouter:
    router = APIRouter()

    @router.get(
        "/incidents/{ticket}/customer-link",
        summary="The customer's ticket page: an unguessable link to send with the ticket number",
        responses={
            401: {"description": "no valid bearer token"},
            403: {"description": "the token's role may not (needs service or agent)"},
            404: {"description": "not a ticket number"},
        },
    )
    async def customer_link(ticket: str, request: Request, credentials: Credentials) -> CustomerLink:
        caller = desk.tokens.authenticate(credentials.credentials if credentials else None)
        if caller is None:
            raise HTTPException(401, "a valid bearer token is required", headers={"WWW-Authenticate": "Bearer"})
        if caller.role not in (Role.service, Role.agent):
            raise HTTPException(403, f"role {caller.role.value} may not do this (needs agent, service)")
        if not is_ticket_id(ticket):
            raise HTTPException(404, f"no incident {ticket}")
        return CustomerLink(ticket_id=ticket, url=str(request.base_url).rstrip("/") + desk.links.path(ticket))

    return router


# --- small helpers ---


def _text(form: Any, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _posted(form: Any) -> dict[str, str]:
    return {key: value for key, value in form.items() if isinstance(value, str)}


class BadFilter(ValueError):
    """A queue filter the desk cannot apply: said by field, never ignored (the agent would trust a wrong list)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")


def _linked_filter(text: str | None) -> str | None:
    """`linked`: empty for any incident, `any` for those linked to a major incident, or one `OUT-...`."""
    value = (text or "").strip()
    if not value:
        return None
    if value.lower() == ANY_OUTAGE:
        return ANY_OUTAGE
    if is_outage_id(value.upper()):
        return value.upper()
    raise BadFilter("linked", f"{value[:40]!r} is neither 'any' nor a major incident's id (OUT- and six characters)")


def _int_in(text: str | None, allowed: tuple[int, ...] | None, default: int) -> int:
    try:
        value = int(text or "")
    except ValueError:
        return default
    return value if allowed is None or value in allowed else default


def when(moment: datetime | None) -> str:
    return moment.isoformat() if moment else ""
