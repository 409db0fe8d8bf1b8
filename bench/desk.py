"""(7) The agent desk: its queue page with 1,000 open incidents, and how soon an action shows on another
agent's open desk.

It runs last, with every incident the phases before left open (at least 1,000: more are opened when
fewer are). The incidents are started straight on the workflow (not through the API), so the desk's read model learns
of them the way it learns of incidents opened anywhere else: from Temporal's visibility, then each one's
state. Two agents sign in to the desk as a browser would: ann acts through the HTTP API; boris keeps the
line-1 queue open, listening to the desk's event stream and fetching the queue again on each change, as
the desk's script does. Measured: the queue page's server time (its Server-Timing header) and round trip,
and from ann's action until boris's fetched queue shows it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx

from bench.stack import Laps, bounded, started_with_a_free_ticket, until
from workflows.domain.inputs import WORKFLOW_TYPE, IncidentInput
from workflows.domain.models import OpenIncident
from workflows.domain.policy_catalogue import reference_of
from workflows.incident_start import start_options

if TYPE_CHECKING:
    from bench.measures import Bench


@dataclass(frozen=True)
class DeskSizes:
    open_incidents: int  # at least this many open incidents on line 1 while the queue page is timed
    page_samples: int
    action_samples: int  # each acknowledges one critical incident (the earliest deadlines: the queue's top)


FULL_DESK = DeskSizes(open_incidents=1000, page_samples=100, action_samples=50)
QUICK_DESK = DeskSizes(open_incidents=60, page_samples=20, action_samples=10)
CAPTION = re.compile(r"(\d+) incidents? on line 1")


async def signed_in(api: str, token: str) -> httpx.AsyncClient:
    """An HTTP client holding a desk session, signed in with `token` as the sign-in form does it."""
    http = httpx.AsyncClient(base_url=api, timeout=30)
    form = await http.get("/desk/signin")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf, "no CSRF token on the sign-in page"
    answer = await http.post("/desk/signin", data={"csrf": csrf.group(1), "token": token, "tz": "UTC"})
    assert answer.status_code == 303, f"desk sign-in: {answer.status_code} {answer.text[:200]}"
    return http


async def changes(http: httpx.AsyncClient) -> AsyncIterator[list[str]]:
    """The tickets of each change the desk's event stream announces, across the stream's reconnections."""
    after = 0
    while True:
        async with http.stream("GET", "/desk/events", params={"after": after}, timeout=None) as stream:
            async for line in stream.aiter_lines():
                if line.startswith("data:"):
                    data = json.loads(line[5:])
                    after = int(data["v"])
                    yield list(data["tickets"])


async def measure_desk(bench: Bench, quick: bool) -> None:
    sizes = QUICK_DESK if quick else FULL_DESK
    from bench.measures import INCIDENT_QUEUE, percentile, progress

    reference = reference_of(bench.policy)  # incidents name their policy; the worker resolves it

    def start(customer: str, category: str) -> Any:
        request = OpenIncident.model_validate(
            {"customer_id": customer, "category": category, "description": "bench desk", "channel": "app"}
        )

        async def start_as(ticket: str) -> Any:
            input = IncidentInput(ticket_id=ticket, request=request, policy_ref=reference, opened_at=datetime.now(UTC))
            return await bench.client.start_workflow(
                WORKFLOW_TYPE, input, task_queue=INCIDENT_QUEUE, **start_options(input, policy=bench.policy)
            )

        return started_with_a_free_ticket(start_as)

    # What line 1's queue holds already: the open incidents the phases before left there.
    query = (
        f"WorkflowType = '{WORKFLOW_TYPE}' AND ExecutionStatus = 'Running' AND TaskQueue = '{INCIDENT_QUEUE}' "
        "AND IncidentLine = 1 AND IncidentStatus = 'open'"
    )
    open_now = (await bench.client.count_workflows(query)).count
    lap = Laps()
    cpu_before = bench.cpu_by_process()
    probes = await bounded(
        25, (start(f"desk-probe-{bench.run_id}-{i}", "connection_lost") for i in range(sizes.action_samples))
    )
    more = max(0, sizes.open_incidents - open_now - len(probes))
    opened = await bounded(25, (start(f"desk-{bench.run_id}-{i}", "tariff_change") for i in range(more)))
    # An incident has a state to show once its first task ran: the rebuild is timed from there.
    await bench.settled([*probes, *opened])
    # Started straight and through their first task, nothing waiting on each: the cost of opening one (bench/costs.py).
    bench.figures["desk_openings"] = len(probes) + more
    bench.figures["desk_openings_cpu_s"] = bench.cpu_spent_since(cpu_before)
    bench.desk_opened.set()
    lap(f"{len(probes) + more} opened")
    wanted = open_now + len(probes) + more
    tokens = {name: token for name, (_, token) in bench.tokens.items()}
    ann = await signed_in(bench.api, tokens["dev-agent"])
    boris = await signed_in(bench.api, tokens["dev-agent-line2"])
    try:
        # The first desk request starts the read model's feed: it learns of every running incident from
        # visibility and reads each one's state. Until the queue has them all:
        started = time.monotonic()

        async def complete() -> bool:
            page = await ann.get("/desk/queue", params={"line": 1})
            found = CAPTION.search(page.text)
            return found is not None and int(found.group(1)) >= wanted

        await until(complete, 120 + wanted / 10, f"the desk's queue of {wanted} incidents", every=0.25)
        fed_seconds = time.monotonic() - started
        progress(f"    desk read model rebuilt: {wanted} incidents in {fed_seconds:.1f}s")

        server_ms: list[float] = []
        round_trip_ms: list[float] = []
        for _ in range(sizes.page_samples):
            begun = time.perf_counter()
            page = await ann.get("/desk", params={"line": 1})
            round_trip_ms.append((time.perf_counter() - begun) * 1000)
            page.raise_for_status()
            server_ms.append(float(page.headers["server-timing"].split("dur=")[1]))
        lap("queue pages")
        shown = CAPTION.search(page.text)
        assert shown is not None and int(shown.group(1)) >= wanted

        seen_ms = await action_to_other_desk(bench, ann, boris, [p.id for p in probes], tokens["dev-agent"])
        lap("actions seen on another desk")
    finally:
        await ann.aclose()
        await boris.aclose()
    bench.figures["desk_open_incidents"] = wanted
    bench.figures["desk_read_model_fed_s"] = round(fed_seconds, 1)
    for q in (50, 95, 99):
        bench.figures[f"desk_queue_server_p{q}_ms"] = percentile(server_ms, q)
        bench.figures[f"desk_queue_round_trip_p{q}_ms"] = percentile(round_trip_ms, q)
        bench.figures[f"desk_action_seen_p{q}_ms"] = percentile(seen_ms, q)


async def action_to_other_desk(
    bench: Bench, ann: httpx.AsyncClient, boris: httpx.AsyncClient, tickets: list[str], ann_token: str
) -> list[float]:
    """From ann's acknowledgement (over the API) until boris's open desk, told by its event stream, has
    fetched a queue that shows ann on that ticket."""
    seen: dict[str, float] = {}
    started: dict[str, float] = {}
    wanted: asyncio.Queue[str] = asyncio.Queue()

    async def watch() -> None:
        async for changed in changes(boris):
            waiting = [t for t in changed if t in started and t not in seen]
            if not waiting:
                continue
            page = await boris.get("/desk/queue", params={"line": 1})
            for ticket in waiting:
                row = re.search(rf'data-ticket="{ticket}">(.*?)</tr>', page.text, re.S)
                if row is not None and ">ann<" in row.group(1):
                    seen[ticket] = time.perf_counter()
                    wanted.put_nowait(ticket)

    watcher = asyncio.create_task(watch())
    headers = {"Authorization": f"Bearer {ann_token}"}
    try:
        await asyncio.sleep(0.5)  # boris's desk is open and listening
        samples: list[float] = []
        for ticket in tickets:
            started[ticket] = time.perf_counter()
            answer = await ann.post(f"/incidents/{ticket}/acknowledge", json={}, headers=headers)
            answer.raise_for_status()
            while ticket not in seen:
                await asyncio.wait_for(wanted.get(), 10)
            samples.append((seen[ticket] - started[ticket]) * 1000)
        return samples
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await watcher
