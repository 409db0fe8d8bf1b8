"""(8) Evicted incidents (issue 20): a worker holding far more open incidents than its cache.

Open incidents wait for days, so a real worker holds many more of them than `INCIDENTS_MAX_CACHED_WORKFLOWS`;
the one whose deadline falls due is then no longer cached, and its wake-up replays its whole history. This
phase runs last, on the thousands of incidents and bare timers the phases before left open (opening as many
again would double the run): the API stops (the desk's read model would keep reading every incident, each
read now a replay), and the incident worker and the bare-memory worker restart with a cache of
`evicted_cache` workflows. Then:

- cached: `evicted_due` incidents opened with one shared line-1 deadline (as in (4)), which wake while still
  cached: the same escalation under the same cache, without the replay;
- evicted: as many again with a later shared deadline, and then `evicted_cache` other open incidents asked
  for their state (each query replays one into the cache and evicts the least recently used), so that every
  one of the due incidents is evicted when it wakes, and each wake-up's replay evicts another;
- bare: as many bare timers, due together, evicted the same way by querying as many of (4)'s bare timers.

Measured: the lag behind the shared deadline (evicted incidents against evicted bare timers, the target);
the worker's and the dev server's CPU over each wake burst (from /proc/<pid>/stat) per woken workflow, the
replay's share being evicted minus cached; and the SDK's sticky-cache counters over each burst, which say
whether the wake-ups really missed the cache: by their hits (a run still cached) and forced evictions (one per
run admitted to the full cache), not their misses, which leave out the tasks that outwaited the sticky queue and
came again on the shared queue with their whole history.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
from temporalio.client import WorkflowHandle

from bench import costs
from bench.stack import Laps, bounded, cpu_seconds, metric_totals, until
from infra.processes import Child, free_port
from workflows.domain.inputs import WORKFLOW_TYPE

if TYPE_CHECKING:
    from bench.measures import Bench

# Deadlines lie `Sizes.evicted_start_margin` past the time the openings and the cache-filling queries should take at
# the pilot's rates. While each opening also asked the incident for its state, a full cache made them slower than the
# pilots (at 1.3 a full run's evicted round ended 21 s late and its incidents woke still cached; 2.0 was kept); waiting
# on the server's history instead, the rounds took 1.12x (cached) and 0.99x (evicted, filling included) of the
# planned time in the 14:56 run of 2026-12-02, which left 13 s and 34 s idle at 2.0; at 1.3 (15:51 run) the evicted
# round's filling ran at 0.64x the pilot's replay rate and left 0.8 s before the deadline, so 1.5. A quick run's few
# dozen keep up.
PILOTS = 20  # at most; half the due count in a quick run


def pilot_count(due: int) -> int:
    return min(PILOTS, max(5, due // 2))


# Queries in flight while the cache is filled: enough to keep the worker's replays busy.
QUERYING_AT_ONCE = 20
# How often the bench asks the server whether a burst has woken: the end of each CPU window is this late at most.
WAKE_POLL = 0.25
CACHE_COUNTERS = ("sticky_cache_hit", "sticky_cache_miss", "sticky_cache_total_forced_eviction", "sticky_cache_size")


async def measure(bench: Bench) -> None:
    from bench.measures import INCIDENT_QUEUE, progress

    cache, count = bench.sizes.evicted_cache, bench.sizes.evicted_due
    bare_others = bench.sizes.timers_many
    pilot = pilot_count(count)
    assert bare_others >= cache + pilot, "(4) leaves too few bare timers to fill the bare worker's cache"
    began = time.monotonic()
    incident_metrics, bare_metrics = free_port(), free_port()
    # The API goes first, for good: the desk's read model would keep reading every incident, each read a replay.
    bench.processes.stop_one(bench.api_process)
    bench.worker, bench.memory_bare = await replace(
        bench,
        (bench.worker, {"INCIDENTS_MAX_CACHED_WORKFLOWS": str(cache), "INCIDENTS_METRICS_PORT": str(incident_metrics)}),
        (bench.memory_bare, {"BENCH_MAX_CACHED_WORKFLOWS": str(cache), "BENCH_METRICS_PORT": str(bare_metrics)}),
    )
    progress(f"    workers restarted with a cache of {cache}: {time.monotonic() - began:.1f}s")
    open_query = f"WorkflowType = '{WORKFLOW_TYPE}' AND ExecutionStatus = 'Running' AND TaskQueue = '{INCIDENT_QUEUE}'"
    open_before = (await bench.client.count_workflows(open_query)).count
    # The incidents the phases before left open: the cache is filled with these before the deadline.
    others = [execution.id async for execution in bench.client.list_workflows(open_query, limit=cache + pilot)]
    assert len(others) == cache + pilot, f"only {len(others)} open incidents to fill a cache of {cache}"
    pilots, fillers = others[:pilot], others[pilot:]
    f = bench.figures
    f["evicted_open_incidents"] = open_before + 2 * count
    f["evicted_cache"] = cache
    f["evicted_due_count"] = count

    # Rates for the deadlines: incidents opened as (4) opens them, and replays of evicted incidents by query.
    began = time.monotonic()
    opened = await bounded(10, (bench.open_incident(f"evp-{bench.run_id}-{i}") for i in range(pilot)))
    open_rate = pilot / (time.monotonic() - began)
    began = time.monotonic()
    await bounded(QUERYING_AT_ONCE, (bench.service.state(ticket) for ticket in pilots))
    replay_rate = pilot / (time.monotonic() - began)
    progress(f"    incidents opened/s {open_rate:.0f}, replayed by query/s {replay_rate:.0f}")

    async with httpx.AsyncClient(timeout=10) as http:
        incident_counters = _CacheCounters(http, incident_metrics)
        cached = await incident_round(bench, "cached", count, open_rate, replay_rate, [], incident_counters)
        began = time.monotonic()
        await incident_round(bench, "evicted", count, open_rate, replay_rate, fillers, incident_counters)
        progress(f"    {count} evicted incidents: {time.monotonic() - began:.1f}s")

        bare_counters = _CacheCounters(http, bare_metrics)
        began = time.monotonic()
        await bare_round(bench, count, cache, bare_counters)
        progress(f"    {count} evicted bare timers: {time.monotonic() - began:.1f}s")
    f["evicted_replay_worker_cpu_ms"] = (
        f["evicted_escalation_worker_cpu_ms"] - f["evicted_cached_escalation_worker_cpu_ms"]
    )
    await costs.measure(bench, opened_ticket=opened[0].id, escalated_ticket=cached[0])


async def replace(bench: Bench, *workers: tuple[Child, dict[str, str]]) -> list[Child]:
    """Each idle worker replaced by a new process with these settings added: the new one is polling before
    the old one is told to go, and the bench goes on while it shuts down (each takes seconds)."""
    started = []
    for old, settings in workers:
        assert old.ready is not None, f"{old.name}: no readiness check to wait on"
        started.append(
            bench.processes.start(f"{old.name}-cache", list(old.argv), old.ready, {**old.extra_env, **settings})
        )
    await bench.processes.ready(*started)
    for old, _ in workers:
        bench.processes.let_go(old)
    return started


class _CacheCounters:
    """The SDK's sticky-cache counters of one worker, read from its Prometheus endpoint."""

    def __init__(self, http: httpx.AsyncClient, port: int) -> None:
        self.http, self.url = http, f"http://127.0.0.1:{port}/metrics"

    async def read(self) -> Counter[str]:
        text = (await self.http.get(self.url)).raise_for_status().text
        totals: Counter[str] = Counter()
        for sample, value in metric_totals(text).items():
            name = sample.removeprefix("temporal_").removesuffix("_total")
            if name in CACHE_COUNTERS:
                totals[name] += int(value)
        return totals


async def wake_burst(
    bench: Bench,
    label: str,
    due: datetime,
    worker: Child,
    counters: _CacheCounters,
    count: int,
    woken: Callable[[], Awaitable[None]],
    lap: Laps,
) -> None:
    """From the shared deadline until `woken` says all woke: CPU per wake-up of the worker and the server,
    and the cache's hits and misses meanwhile (the size as the burst began)."""
    await asyncio.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds()))
    lap(f"{label}: until the deadline")
    before = await counters.read()
    worker_cpu, server_cpu = cpu_seconds(worker.pid), cpu_seconds(bench.server.pid)
    await woken()
    worker_cpu, server_cpu = cpu_seconds(worker.pid) - worker_cpu, cpu_seconds(bench.server.pid) - server_cpu
    after = await counters.read()
    lap(f"{label}: until all woke")
    f = bench.figures
    f[f"{label}_worker_cpu_ms"] = 1000 * worker_cpu / count
    f[f"{label}_server_cpu_ms"] = 1000 * server_cpu / count
    f[f"{label}_cache_size_at_wake"] = before["sticky_cache_size"]
    for name in ("sticky_cache_hit", "sticky_cache_miss", "sticky_cache_total_forced_eviction"):
        f[f"{label}_{name.removeprefix('sticky_cache_').removeprefix('total_')}"] = after[name] - before[name]


async def incident_round(
    bench: Bench,
    round_name: str,
    count: int,
    open_rate: float,
    replay_rate: float,
    fillers: list[str],
    counters: _CacheCounters,
) -> list[str]:
    """`count` incidents due together (their tickets); `fillers` (other open incidents) asked for their state after they
    opened, so that the cache holds those and not these when the deadline comes."""
    from bench.measures import OPENING_AT_ONCE, TIMER_LINE_ONE, percentile, progress
    from workflows import search_attributes as sa

    label = "evicted_cached_escalation" if round_name == "cached" else "evicted_escalation"
    planned = count / open_rate + len(fillers) / replay_rate
    due = datetime.now(UTC) + timedelta(seconds=bench.sizes.deadline_slack + bench.sizes.evicted_start_margin * planned)
    since = datetime.now(UTC)

    async def open_one(i: int) -> str:
        customer = f"ev{round_name[0]}-{bench.run_id}-{i}"
        return (await bench.open_incident(customer, bench.timer_policy, opened_at=due - TIMER_LINE_ONE)).id

    lap = Laps()
    tickets = await bounded(OPENING_AT_ONCE, (open_one(i) for i in range(count)))
    lap(f"{round_name}: opened")
    began = time.monotonic()
    worker_cpu = cpu_seconds(bench.worker.pid)
    await bounded(QUERYING_AT_ONCE, (bench.service.state(ticket) for ticket in fillers))
    if fillers:
        bench.figures["evicted_query_replay_worker_cpu_ms"] = (
            1000 * (cpu_seconds(bench.worker.pid) - worker_cpu) / len(fillers)
        )
        progress(f"    {len(fillers)} other incidents replayed into the cache: {time.monotonic() - began:.1f}s")
    late = (datetime.now(UTC) - due).total_seconds()
    if late > 0:
        progress(f"    {round_name}: opening and filling ended {late:.1f}s after the deadline")
    bench.figures[f"{label}_late_s"] = max(0.0, late)

    escalated_query = f"WorkflowType = '{WORKFLOW_TYPE}' AND {sa.LINE.name} = 2 AND StartTime >= '{since.isoformat()}'"

    async def escalated() -> None:
        # Visibility alone (the server): asking the incidents while they escalate would load the measured worker.
        async def all_escalated() -> bool:
            return (await bench.client.count_workflows(escalated_query)).count >= count

        await until(all_escalated, 120 + count / 10, f"{count} {round_name} escalations", every=WAKE_POLL)

    lap(f"{round_name}: filled")
    await wake_burst(bench, label, due, bench.worker, counters, count, escalated, lap)

    async def lag(ticket: str) -> float:
        state = await bench.service.state(ticket)
        breached = next(e for e in state.events if e.type == "sla_breached")
        escalation = next(e for e in state.events if e.type == "escalated")
        return (escalation.at - datetime.fromisoformat(breached.data["deadline"])).total_seconds() * 1000

    lags = await bounded(50, (lag(t) for t in tickets))
    lap(f"{round_name}: each one's escalation read")
    for q in (50, 99):
        bench.figures[f"{label.replace('_escalation', '_escalation_lag')}_p{q}_ms"] = percentile(lags, q)
    return tickets


async def bare_round(bench: Bench, count: int, cache: int, counters: _CacheCounters) -> None:
    """`count` bare timers due together on the restarted bare-memory worker, then `cache` of (4)'s bare timers
    queried (each a replay into the cache), so that the due ones are evicted when they wake."""
    from bench.measures import BARE_MEMORY_QUEUE, BARE_TIMER_WOKEN_EVENTS, percentile, woke_at

    of_timers = f"timer-{bench.run_id}-{bench.sizes.timers_many}"
    pilot = pilot_count(count)
    pilots = [bench.client.get_workflow_handle(f"{of_timers}-{cache + i}") for i in range(pilot)]
    fillers = [bench.client.get_workflow_handle(f"{of_timers}-{i}") for i in range(cache)]
    began = time.monotonic()
    lap = Laps()
    pilot_starts = await bounded(
        50,
        (
            bench.client.start_workflow("BareWaiter", id=f"evp-bare-{bench.run_id}-{i}", task_queue=BARE_MEMORY_QUEUE)
            for i in range(pilot)
        ),
    )
    await bench.settled(pilot_starts)
    start_rate = pilot / (time.monotonic() - began)
    began = time.monotonic()
    await bounded(QUERYING_AT_ONCE, (h.query("woke") for h in pilots))
    replay_rate = pilot / (time.monotonic() - began)

    planned = count / start_rate + cache / replay_rate
    due = datetime.now(UTC) + timedelta(seconds=bench.sizes.deadline_slack + bench.sizes.evicted_start_margin * planned)
    handles: list[WorkflowHandle[Any, Any]] = await bounded(
        50,
        (
            bench.client.start_workflow(
                "BareTimer", due.isoformat(), id=f"evt-{bench.run_id}-{i}", task_queue=BARE_MEMORY_QUEUE
            )
            for i in range(count)
        ),
    )
    lap("bare: pilots")
    await bench.settled(handles)  # each cached by its first task before the fillers push it out
    lap("bare: started")
    await bounded(QUERYING_AT_ONCE, (h.query("woke") for h in fillers))
    lap("bare: filled")
    late = (datetime.now(UTC) - due).total_seconds()
    bench.figures["evicted_bare_timer_late_s"] = max(0.0, late)
    sample = handles[:: max(1, count // 100)]

    async def all_woken() -> None:
        async def woken() -> bool:
            described = await bounded(50, (h.describe() for h in sample))
            return all(
                d.raw_description.workflow_execution_info.history_length >= BARE_TIMER_WOKEN_EVENTS for d in described
            )

        await until(woken, 120 + count / 10, f"{count} evicted bare timers", every=WAKE_POLL)

    await wake_burst(bench, "evicted_bare_timer", due, bench.memory_bare, counters, count, all_woken, lap)

    lags = [(woke - due).total_seconds() * 1000 for woke in await bounded(50, (woke_at(h) for h in handles))]
    lap("bare: each one's wake read")
    for q in (50, 99):
        bench.figures[f"evicted_bare_timer_lag_p{q}_ms"] = percentile(lags, q)
