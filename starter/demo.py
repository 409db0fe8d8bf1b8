"""`incidents demo`: the stories of the seeds, played as real incidents against a running stack.

1. An ISP customer's line is cut (seeds 000 and 004): a critical incident with a ticket number, an
   apology and self-help steps at once (they do not help, and the clock never stopped for them),
   escalated when line 1 runs out of time, resolved late, so the customer is compensated, then asked
   whether all is well now.
2. A card charged while binding it, money never returned (seed 002): the contact centre's first line
   adds the refund of that charge herself, within her limit (seed 003: no "I'll transfer you"); it fails
   at the provider and is retried by Temporal until it is paid, exactly once.
3. A caller rings three times about the same iPhone (seed 003): one ticket, the later calls joined to it.
4. The agent needs an answer from the customer (issue 17): asked, silent, reminded, and the answer
   (a call about the same problem) resumes the SLA clock where it stopped.
5. A whole town loses its connection (seed 002, told right): 30 customers call about one failure; each
   hears at once "we know, it is not only you, expected by ...", no line is paged thirty times, and one
   resolution of the major incident resolves all thirty, each customer told.

The incidents are opened, and the customer's own words relayed, as a service would (under the demo's
policy, which the stack's worker knows); every agent's action goes through the HTTP API with that dev
agent's own token (ann on line 1, boris on line 2, as `incidents --as` does), so the history shows who
acted as the API authenticated them.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from urllib.parse import quote

import httpx
import yaml
from rich.console import Console

from infra.config_files import ConfigFileError
from infra.settings import Settings
from starter.auth import dev_credential, dev_credentials_file
from starter.http_client import ApiError, IncidentsHttpClient
from starter.incidents import IncidentService
from workflows.domain.actions import (
    Acknowledge,
    ActionModel,
    AddRefund,
    AskCustomer,
    Feedback,
    Resolve,
    SelfHelpFailed,
)
from workflows.domain.models import IncidentState, OpenIncident
from workflows.domain.policy import Policy, parse_policy


class DemoError(RuntimeError):
    """The stack did not do what the story needs (no worker, a sandbox down): the message says what."""


def demo_policy_file() -> Path:
    """The demo's policy file (the dev stack's worker knows it, so the demo's incidents may name it)."""
    return Path(str(resources.files("starter").joinpath("demo_policy.yml")))


def demo_policy() -> Policy:
    return parse_policy(yaml.safe_load(demo_policy_file().read_text(encoding="utf-8")), "demo_policy.yml")


async def _wait(
    service: IncidentService,
    ticket: str,
    predicate: Callable[[IncidentState], bool],
    what: str,
    within: float,
    speed: float,
) -> IncidentState:
    deadline = time.monotonic() + within / speed
    while True:
        state = await service.state(ticket)
        if predicate(state):
            return state
        if time.monotonic() > deadline:
            raise DemoError(
                f"{ticket}: waited {within / speed:.0f}s for {what}, but it is {state.status.value} on line "
                f"{state.line}; is a worker running (`make run`)?"
            )
        await asyncio.sleep(0.5)


# The dev agents who act in the stories (their tokens are in what `incidents dev` wrote; see starter/auth.py).
FIRST_LINE, SECOND_LINE = "ann", "boris"


class Agent:
    """A dev agent acting through the HTTP API with their own token: the API names them as the actor."""

    def __init__(self, person: str, api: IncidentsHttpClient) -> None:
        self.person = person
        self._api = api

    async def act(self, ticket: str, action: ActionModel) -> IncidentState:
        try:
            return await self._api.act(ticket, action)
        except ApiError as error:
            raise DemoError(f"{ticket}: the API refused {self.person}'s {action.type}: {error}") from None


def _agent_tokens(settings: Settings) -> tuple[str, dict[str, str]]:
    """The API's address and the dev agents' tokens, or a DemoError saying what is missing."""
    if not settings.api_url:
        raise DemoError("no HTTP API to act through: set INCIDENTS_API_URL, or run the demo beside `make run`")
    path = dev_credentials_file(settings.config.tokens_file)
    try:
        return str(settings.api_url), {person: dev_credential(path, person) for person in (FIRST_LINE, SECOND_LINE)}
    except ConfigFileError as error:
        raise DemoError(str(error)) from None


async def _reachable(http: httpx.AsyncClient, url: str, what: str) -> None:
    try:
        (await http.get(url)).raise_for_status()
    except httpx.HTTPError as error:
        raise DemoError(f"cannot reach {what} at {url} ({error}); is `make run` running?") from None


async def play(
    service: IncidentService, console: Console, speed: float = 1.0, settings: Settings | None = None
) -> None:
    """The four stories, one after the other; `service` must carry the demo policy."""
    settings = settings or Settings.load()
    config = settings.config
    payments_url = settings.payments_url or f"http://{config.sandboxes.host}:{config.sandboxes.payments_port}"
    api_url, tokens = _agent_tokens(settings)
    async with httpx.AsyncClient(timeout=5) as http:  # find out before any incident is opened
        await _reachable(http, f"{payments_url}/healthz", "the payment sandbox")  # story 2 needs it
        await _reachable(http, f"{api_url}/healthz", "the HTTP API")
    async with (
        IncidentsHttpClient(api_url, tokens[FIRST_LINE]) as first,
        IncidentsHttpClient(api_url, tokens[SECOND_LINE]) as second,
    ):
        await _stories(
            service, console, speed, settings, payments_url, Agent(FIRST_LINE, first), Agent(SECOND_LINE, second)
        )


async def _stories(
    service: IncidentService,
    console: Console,
    speed: float,
    settings: Settings,
    payments_url: str,
    ann: Agent,
    boris: Agent,
) -> None:
    config = settings.config
    ui = f"http://localhost:{config.temporal.ui_port}/namespaces/{config.namespace}/workflows"
    run = uuid.uuid4().hex[:4]

    console.rule("[bold]1. The line is cut (seeds 000, 004)")
    outage = await service.open(
        OpenIncident(
            customer_id=f"isp-{run}",
            category="connection_lost",
            channel="phone",
            contact="+7 900 000-00-01",
            description="No internet since the storm; the modem shows no link",
        )
    )
    ticket = outage.ticket_id
    console.print(f"ticket [bold]{ticket}[/] told to the customer at once, with an apology and an expected time")
    if outage.state.self_help is not None:
        await service.act(ticket, SelfHelpFailed(channel="app", comment="restarted the router, still no link"))
        console.print("self-help steps went with it; the customer says they did not help (the SLA never stopped)")
    state = await _wait(service, ticket, lambda s: s.line >= 2, "the line-1 SLA to escalate it", 30, speed)
    console.print(f"line 1 did not make it in time: now on line {state.line}, breaches {state.sla_breaches}")
    await boris.act(ticket, Acknowledge(agent=boris.person))
    await boris.act(ticket, Resolve(agent=boris.person, resolution="spliced the cable at the cabinet"))
    console.print(f"{boris.person} (line 2, through the API with his own token) took it and resolved it")
    state = await _wait(
        service,
        ticket,
        lambda s: s.compensation is not None and s.compensation.status == "granted",
        "the compensation",
        30,
        speed,
    )
    if state.compensation is not None:
        console.print(f"resolved late, so {state.compensation.amount:.2f} {state.compensation.currency} credited")
    state = await _wait(service, ticket, lambda s: s.awaiting == "feedback", "the satisfaction callback", 30, speed)
    console.print(f"the satisfaction callback asks: is everything fine now? ({ann.person} records the answer)")
    await ann.act(ticket, Feedback(score=5, comment="works again, thank you"))
    console.print(f"score 5: closed.  {ui}/{ticket}")

    console.rule("[bold]2. Charged while binding a card, never refunded (seed 002)")
    faults = f"{payments_url}/_sandbox/faults"
    async with httpx.AsyncClient(timeout=10) as http:
        before = (await http.get(faults)).json()  # SANDBOX_* settings of this run, put back afterwards
        await http.put(faults, json={**before, "fail_first": 3})
        try:
            card = await service.open(
                OpenIncident(
                    customer_id=f"carshare-{run}",
                    category="payment_not_refunded",
                    channel="phone",
                    description="Card charged 1490 RUB while binding it; the card was not bound",
                )
            )
            charge = f"ch-{run}-card-binding"
            added = await ann.act(
                card.ticket_id,
                AddRefund(agent=ann.person, refund={"amount": "1490.00", "currency": "RUB", "charge": charge}),
            )
            console.print(
                f"ticket [bold]{card.ticket_id}[/]: {ann.person} (line {added.line}) adds the refund of charge "
                f"{charge} herself, within her limit; the provider fails the first 3 attempts"
            )
            state = await _wait(
                service,
                card.ticket_id,
                lambda s: s.refund is not None and s.refund.status == "paid",
                "the refund to be paid",
                60,
                speed,
            )
            attempts = (await http.get(f"{payments_url}/_sandbox/attempts")).json()
            ledger = (await http.get(f"{payments_url}/refunds", params={"reference": card.ticket_id})).json()
        finally:
            await http.put(faults, json=before)
    key = state.refund.idempotency_key if state.refund else ""
    console.print(
        f"refund {state.refund.status.value if state.refund else '?'} after {attempts.get(key, 0)} "
        f"attempts; the provider's ledger holds {len(ledger)} payment for it.  {ui}/{card.ticket_id}"
    )

    console.rule("[bold]3. Three calls about the same iPhone (seed 003)")
    tickets = []
    for call, words in enumerate(
        ("The iPhone will not charge", "Calling again: still not charging", "Third call, got cut off before"), start=1
    ):
        opened = await service.open(
            OpenIncident(
                customer_id=f"shop-{run}",
                category="other",
                channel="phone",
                description=words,
            )
        )
        tickets.append(opened.ticket_id)
        console.print(f"call {call}: {opened.outcome} {opened.ticket_id}")
    state = await service.state(tickets[0])
    console.print(f"one ticket for all three calls, {state.recontacts} recontacts on record.  {ui}/{tickets[0]}")

    console.rule("[bold]4. Waiting on the customer's answer (issue 17)")
    customer = f"tariff-{run}"
    asking = await service.open(
        OpenIncident(customer_id=customer, category="tariff_change", channel="app", description="Change my tariff")
    )
    ticket, due = asking.ticket_id, asking.state.sla_deadline
    await ann.act(ticket, AskCustomer(agent=ann.person, question="Which tariff do you want: day or night?"))
    console.print(
        f"{ann.person} asks the customer which tariff; {ticket} is waiting on the customer, its SLA clock paused"
    )
    await _wait(
        service,
        ticket,
        lambda s: any(e.type == "customer_notified" and e.data.get("kind") == "reply_reminder" for e in s.events),
        "the reminder to the customer",
        30,
        speed,
    )
    console.print("the customer is silent: reminded of the question (silent on, it would close, a reply reopening it)")
    answer = await service.open(
        OpenIncident(customer_id=customer, category="tariff_change", channel="phone", description="The night one")
    )
    state = await service.state(ticket)
    later = f"{(state.sla_deadline - due).total_seconds():.0f}s later" if state.sla_deadline and due else "moved"
    console.print(
        f"the customer calls with the answer: {answer.outcome} {answer.ticket_id}, {state.status.value} again, "
        f"its line-1 deadline {later}: as long as it waited.  {ui}/{ticket}"
    )
    outage_id = await _whole_town(service, console, run, speed)

    console.rule()
    query = f"CustomerId IN ('isp-{run}', 'carshare-{run}', 'shop-{run}', '{customer}')"
    console.print(f"The first four in the web UI (query: {query}):")
    console.print(f"  {ui}?query={quote(query)}")
    town = f"OutageId = '{outage_id}'"
    console.print(f"The major incident and its thirty incidents (query: {town}):")
    console.print(f"  {ui}?query={quote(town)}")


TOWN_CALLS = 30


async def _whole_town(service: IncidentService, console: Console, run: str, speed: float) -> str:
    """Story 4: one failure, thirty calls, one major incident; returns its id."""
    from activities.outages import board_notices
    from starter.outages import OutageService
    from workflows.domain.outage import DeclareOutage, ResolveOutage

    console.rule("[bold]5. The whole town at once (seed 002, told right)")
    outages = OutageService(service.client, task_queue=service.task_queue)
    town = {"region": "moscow", "city": f"demo-{run}"}
    declared = await outages.declare(
        DeclareOutage.model_validate(
            {
                "area": town,
                "categories": ["connection_lost", "speed_drop"],
                "summary": "A trunk cable was cut by roadworks.",
                "owner": "boris",
                "declared_by": "boris",
                "expected_fix_by": (datetime.now(UTC) + timedelta(hours=3)).isoformat(),
            }
        )
    )
    outage_id = declared.outage_id
    console.print(f"line 2 (boris) declares major incident [bold]{outage_id}[/] for {town['region']}/{town['city']}")
    deadline = time.monotonic() + 20 / speed
    while outage_id not in {n.outage_id for n in await board_notices(service.client, service.task_queue)}:
        if time.monotonic() > deadline:
            raise DemoError(f"{outage_id} never reached the outage board; is a worker running (`make run`)?")
        await asyncio.sleep(0.2)

    async def call(n: int) -> IncidentState:
        opened = await service.open(
            OpenIncident(
                customer_id=f"town-{run}-{n:02d}",
                category="connection_lost" if n % 3 else "speed_drop",
                channel="phone",
                contact=f"+7 900 100-00-{n:02d}",
                description="No internet since this morning",
                area={**town, "segment": f"block-{n % 5}"},
            )
        )
        return opened.state

    opened = await asyncio.gather(*(call(n) for n in range(1, TOWN_CALLS + 1)))
    linked = [s for s in opened if s.outage is not None and s.outage.outage_id == outage_id]
    heard = [e for s in linked for e in s.events if e.type == "customer_notified" and e.data["kind"] == "not_only_you"]
    paged = [e for s in opened for e in s.events if e.type == "line_notified"]
    console.print(
        f'{TOWN_CALLS} customers called: {len(linked)} tickets linked at once, {len(heard)} told "it is not only '
        f'you", {len(paged)} line pages'
    )
    await outages.act(outage_id, ResolveOutage(by="boris", resolution="The cable is spliced; service is back."))
    tickets = [s.ticket_id for s in linked]

    async def resolved() -> int:
        states = await asyncio.gather(*(service.state(t) for t in tickets))
        return sum(s.status.value != "open" for s in states)

    deadline = time.monotonic() + 60 / speed
    while (done := await resolved()) < len(tickets):
        if time.monotonic() > deadline:
            raise DemoError(f"{outage_id}: only {done} of {len(tickets)} resolved together; is a worker running?")
        await asyncio.sleep(0.5)
    console.print(f"one resolution: all {len(tickets)} resolved together, each customer told, each with its callback")
    return outage_id
