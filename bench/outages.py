"""(7) Major incidents at scale (issue 18), beside raw Temporal in the same run.

One major incident with N incidents linked to it, opened so that their own
line-1 deadlines fall in the same millisecond: past that deadline, how many
line pages did they send (the target is none: the major incident owns
escalation)? Then the mass resolve: from the resolve action until every one of
the N is resolved and its customer notified (counted in the notification
sink), against raw Temporal signalling N bare workflows by one batch operation
until every one has processed it. And the major incident's own history size,
which must not grow with N (its fan-outs are the server's batch jobs).
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
from temporalio.api.batch.v1 import BatchOperationSignal
from temporalio.api.common.v1 import Payloads
from temporalio.api.workflowservice.v1 import StartBatchOperationRequest
from temporalio.converter import DataConverter

from bench.bare import TASK_QUEUE as BARE_QUEUE
from bench.stack import Laps, bounded, started_with_a_free_ticket, until
from starter.outages import OutageService
from workflows import search_attributes as sa
from workflows.domain.inputs import WORKFLOW_TYPE, IncidentInput
from workflows.domain.models import OpenIncident
from workflows.domain.outage import DeclareOutage, OutagePolicy, OutageState, ResolveOutage, default_outage_policy
from workflows.domain.policy import Policy, default_policy, parse_policy
from workflows.domain.policy_catalogue import reference_of
from workflows.features import OPENING_FEATURES
from workflows.incident_start import start_options

if TYPE_CHECKING:
    from bench.measures import Bench

# Incidents started at once: the worker keeps up, and every first task (where the line clock starts) is prompt.
STARTING_AT_ONCE = 25
# The deadline lies this far past the time the starts should take at the rate measured in (4).
START_MARGIN = 1.3
EXPECTED_STARTS_PER_S = 40


# Past the deadline, this long for any page a linked incident should not send (its timer's task, were it to fire):
# 3 s for 2,000, as it always was; 1 s and a bit for a quick run's 40, which the worker serves in well under one.
def after_deadline(count: int) -> float:
    return 1.0 + count / 1000


# Longer than the openings of the full size take (about a minute), so every incident opens before its deadline.
LINKED_LINE_ONE = timedelta(minutes=10)


def linked_policy() -> Policy:
    """Critical incidents whose line 1 has LINKED_LINE_ONE; nothing else falls due during the bench. One policy
    the bench's worker knows (incidents name it): each incident opens LINKED_LINE_ONE before the shared deadline."""
    seconds = f"{int(LINKED_LINE_ONE.total_seconds())}s"
    data = default_policy().model_dump(mode="json")
    data["name"] = "bench-linked"
    data["severities"]["critical"].update({"acknowledge_within": seconds, "line_timeouts": {"1": seconds, "2": "1d"}})
    return parse_policy(data, "bench linked policy")


def bench_outage_policy(sweep_after: str = "5s") -> OutagePolicy:
    data = default_outage_policy().model_dump(mode="json")
    data.update({"name": "bench", "sweep_after": sweep_after, "check_grace": "1d"})
    return OutagePolicy.model_validate(data)


async def measure(bench: Bench) -> None:
    count = bench.sizes.outage_linked
    queue = bench.service.task_queue
    outages = OutageService(bench.client, policy=bench_outage_policy(bench.sizes.outage_sweep_after), task_queue=queue)
    area = {"region": "bench", "city": f"c{bench.run_id}"}
    declared = await outages.declare(
        DeclareOutage.model_validate(
            {
                "area": area,
                "categories": ["connection_lost"],
                "summary": "A cable was cut.",
                "owner": "boris",
                "declared_by": "boris",
                "expected_fix_by": datetime.now(UTC) + timedelta(hours=2),
            }
        )
    )
    outage_id = declared.outage_id
    notice = await outages.notice(outage_id)
    # Every one opens with the same line-1 deadline (to the millisecond): opened `seconds` before it with a
    # line 1 of `seconds`. One that opens after it has its deadline already passed: it falls due at once.
    # The fixed part: the run's deadline slack doubled (2 s full, as it always was; 1 s quick, whose 40 open in 0.2 s).
    due = datetime.now(UTC) + timedelta(
        seconds=2 * bench.sizes.deadline_slack + START_MARGIN * count / EXPECTED_STARTS_PER_S
    )

    policy = linked_policy()
    reference = reference_of(policy)

    async def open_linked(i: int) -> str:
        request = OpenIncident.model_validate(
            {
                "customer_id": f"out-{bench.run_id}-{i}",
                "category": "connection_lost",
                "description": "no internet",
                "channel": "app",
                "contact": f"+7 900 {i // 10000:03d}-{i // 100 % 100:02d}-{i % 100:02d}",
                "area": {**area, "segment": f"s{i % 7}"},
            }
        )

        # Opened linked, as the intake opens one in the area (the intake itself is measured in (2)).
        async def start(ticket: str) -> str:
            input = IncidentInput(
                ticket_id=ticket,
                request=request,
                policy_ref=reference,
                opened_at=due - LINKED_LINE_ONE,
                customer_locale=True,
                features=list(OPENING_FEATURES),
                outage=notice,
            )
            options = start_options(input, policy=policy)
            handle = await bench.client.start_workflow(WORKFLOW_TYPE, input, task_queue=queue, **options)
            return handle.id

        return await started_with_a_free_ticket(start)

    started = time.monotonic()
    lap = Laps()
    # Raw Temporal's targets start on the bare worker beside the openings (whose deadline leaves them room: 26 s
    # of 67 used in a full run) and the incident worker's catching up with them: neither side is timed until the
    # batch signal, which waits for both.
    raw_targets = asyncio.create_task(_raw_targets(bench, count))
    tickets = set(await bounded(STARTING_AT_ONCE, (open_linked(i) for i in range(count))))
    late = (datetime.now(UTC) - due).total_seconds()
    bench.figures["outage_opening_seconds"] = round(time.monotonic() - started, 1)
    linked_query = f"WorkflowType = '{WORKFLOW_TYPE}' AND {sa.OUTAGE_ID.name} = '{outage_id}'"
    lap("opened")
    await bench.counted(f"{linked_query} AND {sa.STATUS.name} = 'open'", count, f"{count} linked incidents")
    async with httpx.AsyncClient(timeout=60) as http:

        async def every_customer_told() -> bool:
            told = [n for n in await _notifications(http, bench.notify_url, "customer") if n["ticket_id"] in tickets]
            return len(told) >= count

        # The worker has caught up with the openings (each customer heard "not only you") and the deadline passed.
        await until(every_customer_told, 120 + count / 10, f"{count} customers told", every=0.5)
        lap("until every customer was told")
        targets = await raw_targets
        lap("until raw Temporal's targets had started")
        await asyncio.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds()) + after_deadline(count))
        lap("until past the deadline")
        pages = [n for n in await _notifications(http, bench.notify_url) if n["ticket_id"] in tickets]
        line_pages = [n for n in pages if n["recipient"] != "customer"]
        escalated = (await bench.client.count_workflows(f"{linked_query} AND {sa.LINE.name} = 2")).count
        bench.figures["outage_linked_count"] = count
        bench.figures["outage_linked_started_late_s"] = max(0.0, late)
        bench.figures["outage_linked_line_pages"] = len(line_pages)
        bench.figures["outage_linked_escalated"] = escalated
        bench.figures["outage_linked_customer_notices"] = len(pages) - len(line_pages)

        cpu_before = bench.cpu_by_process()
        raw = await _raw_batch_signal(bench, targets, count)
        lap("raw batch signal")
        bench.figures["outage_raw_batch_signal_s"] = raw
        # Where each side's seconds went, process by process: what to make lighter, if the ratio misses.
        bench.figures["outage_raw_batch_signal_cpu_s"] = bench.cpu_spent_since(cpu_before)

        cpu_before = bench.cpu_by_process()
        started = time.monotonic()
        await outages.act(outage_id, ResolveOutage(by="boris", resolution="The cable is spliced."))

        async def resolved_and_told() -> bool:
            resolved = (await bench.client.count_workflows(f"{linked_query} AND {sa.STATUS.name} != 'open'")).count
            if resolved < count:
                return False
            told = {
                n["ticket_id"]
                for n in await _notifications(http, bench.notify_url, "customer")
                if n["kind"] == "resolved" and n["ticket_id"] in tickets
            }
            return len(told) >= count

        await until(resolved_and_told, 300 + count / 5, f"{count} incidents resolved together", every=0.5)
        mass = time.monotonic() - started
        lap("mass resolve")
        bench.figures["outage_mass_resolve_cpu_s"] = bench.cpu_spent_since(cpu_before)
    bench.figures["outage_mass_resolve_s"] = mass
    bench.figures["outage_mass_resolve_ratio"] = mass / raw
    # It ends `outage_sweep_after` past the resolve: its events are counted then, while the next phase runs.
    bench.outage_ended = asyncio.create_task(_count_history_once_ended(bench, outage_id))


async def _count_history_once_ended(bench: Bench, outage_id: str) -> None:
    handle = bench.client.get_workflow_handle(outage_id)
    await asyncio.wait_for(handle.result(), 120)
    history = await handle.fetch_history()
    bench.figures["outage_history_events"] = len(history.events)
    # How many incidents each batch job signalled: a sweep's job should find only those the first one missed.
    state = await handle.query("state", result_type=OutageState)
    bench.figures["outage_fan_outs"] = {
        f"{f.operation} {f.job_id.rsplit('-', 1)[-1]}": f.reached for f in state.fan_outs
    }


async def _notifications(http: httpx.AsyncClient, url: str, recipient: str | None = None) -> list[dict[str, Any]]:
    response = await http.get(url, params={"recipient": recipient} if recipient else None)
    response.raise_for_status()
    notifications: list[dict[str, Any]] = response.json()
    return notifications


async def _raw_targets(bench: Bench, count: int) -> str:
    """Raw Temporal's side: N bare workflows started and through their first task, waiting for a signal; the
    visibility query that finds them."""
    since = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    prefix = f"raw-outage-{bench.run_id}"
    handles = await bounded(
        50,
        (
            bench.client.start_workflow("BareOutageTarget", id=f"{prefix}-{i}", task_queue=BARE_QUEUE)
            for i in range(count)
        ),
    )
    targets = f"WorkflowType = 'BareOutageTarget' AND StartTime >= '{since}'"
    await bench.counted(f"{targets} AND ExecutionStatus = 'Running'", count, f"{count} bare targets")
    # Through their first task, as the linked incidents are by the time they are resolved: the batch signal
    # is then timed on waiting, cached workflows on both sides, not on raw Temporal's openings too.
    await bench.settled(handles)
    return targets


async def _raw_batch_signal(bench: Bench, targets: str, count: int) -> float:
    """One batch operation signals raw Temporal's N targets; seconds from the batch request until every one has
    processed it (and told someone: one local activity)."""
    prefix = f"raw-outage-{bench.run_id}"
    # The bare worker reads plain JSON (the default converter), as a raw Temporal user's would.
    payloads = await DataConverter.default.encode([{"resolution": "spliced"}])
    started = time.monotonic()
    await bench.client.workflow_service.start_batch_operation(
        StartBatchOperationRequest(
            namespace=bench.client.namespace,
            job_id=f"{prefix}-resolve",
            reason="bench: raw batch signal",
            visibility_query=targets,
            signal_operation=BatchOperationSignal(
                signal="resolve", input=Payloads(payloads=payloads), identity="bench"
            ),
        )
    )
    await bench.counted(f"{targets} AND {sa.STATUS.name} = 'resolved'", count, f"{count} bare targets signalled")
    return time.monotonic() - started
