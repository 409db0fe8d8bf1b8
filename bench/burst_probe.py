"""A focused look at (4): N incidents' line-1 deadlines and N bare timers due in one millisecond.

    python -m bench.burst_probe --count 1000 [--workers N] [--worker-env NAME=VALUE ...] [--server-flag FLAG ...]

Starts a stack of its own (a dev server, the notification sink, the incident worker, a bare worker), opens
the incidents and bare timers as the bench's (4) does, and prints each side's lag p50/p99, each process's
CPU ms per wake over the burst, and what the escalated incidents' histories hold after the timer fired
(workflow tasks per escalation: a task heartbeated past 80% of its timeout shows as more than one).

`--escalation-shape page,upsert,timer` (repeatable) adds a side, after the other two and on the same bare
worker: bare timers that wake into what an escalation asks of the server, or some of it (a local activity,
an upsert, the next timer; `BareEscalation` in bench/bare.py). Its ratio to the incidents tells the
incident's own code from those commands' cost; sides with one command each tell the commands apart.
`--workers 2` runs two incident workers on the incidents' task queue and two bare workers for the bare timers,
as a deployment scales out; with a small cache (`--worker-env INCIDENTS_MAX_CACHED_WORKFLOWS=100 --bare-env
BENCH_MAX_CACHED_WORKFLOWS=100`) most wake-ups are replays, as in the bench's (8).
Quicker to iterate on than `make bench`; the bench's (4) row stays the figure of record.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import tempfile
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from temporalio.api.enums.v1 import EventType, TimeoutType
from temporalio.client import Client

from bench.bare import ESCALATION_COMMANDS, escalation_id_prefix
from bench.bare import TASK_QUEUE as BARE_QUEUE
from bench.measures import (
    BARE_MEMORY_QUEUE,
    INCIDENT_QUEUE,
    QUICK,
    WEBHOOK_SECRET,
    Bench,
    lifecycle_policy,
    percentile,
    progress,
    write_policies,
)
from bench.stack import cpu_seconds, metric_totals, start_dev_server
from infra.binaries import dev_server_argv
from infra.connection import data_converter
from infra.processes import free_port, http_ok, temporal_serving, worker_polling
from starter.incidents import IncidentService
from workers.collector import FULL_PAUSE_METRIC
from workflows.domain.inputs import WORKFLOW_TYPE
from workflows.search_attributes import batch_operation_flags, dev_server_flags

HISTORY_SAMPLE = 50
SAMPLE_EVERY = 0.2


class CpuSampler:
    """Each watched process's CPU seconds, sampled every SAMPLE_EVERY seconds with the wall-clock time."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.samples: list[tuple[datetime, dict[str, float]]] = []
        self.task = asyncio.create_task(self.sample())

    async def sample(self) -> None:
        while True:
            self.samples.append((datetime.now(UTC), {name: cpu_seconds(pid) for name, pid in self.pids.items()}))
            await asyncio.sleep(SAMPLE_EVERY)

    def between(self, since: datetime, until: datetime) -> dict[str, float]:
        """CPU seconds spent from the last sample at or before `since` to the first at or after `until`."""
        before = [cpu for at, cpu in self.samples if at <= since][-1]
        after = next(cpu for at, cpu in self.samples if at >= until)
        return {name: after[name] - before[name] for name in self.pids}


class Probe(Bench):
    """The bench's (4) on a smaller stack: no payments, no API, no second dev server."""

    def __init__(
        self,
        folder: Path,
        worker_env: dict[str, str],
        bare_env: dict[str, str],
        server_flags: list[str],
        escalation_shapes: Sequence[tuple[str, ...]] = (),
        workers: int = 1,
    ) -> None:
        super().__init__(QUICK, folder)
        self.worker_env = worker_env
        self.bare_env = bare_env
        self.server_flags = server_flags
        self.escalation_shapes = escalation_shapes
        self.workers = workers

    async def start(self) -> None:
        if self.server_flags:
            port = free_port()
            self.server = self.processes.start(
                "temporal",
                dev_server_argv(
                    str(self.folder / "temporal.sqlite"),
                    port,
                    extra=[
                        *dev_server_flags(),
                        *batch_operation_flags(),
                        *("--http-port", str(free_port()), "--metrics-port", str(free_port())),
                        *self.server_flags,
                    ],
                ),
                temporal_serving("127.0.0.1", port),
            )
            await self.processes.ready(self.server)
            self.address = f"127.0.0.1:{port}"
        else:
            self.address, self.server = await start_dev_server(self.processes, "temporal", None)
        self.client = await Client.connect(self.address, data_converter=data_converter())
        notify_port = free_port()
        common = {"TEMPORAL_ADDRESS": self.address, "WEBHOOK_SECRET": WEBHOOK_SECRET, "INCIDENTS_LOG_LEVEL": "WARNING"}
        self.notify = self.processes.python(
            "notify",
            *("starter.cli", "sandbox", "notify", "--port", str(notify_port)),
            ready=http_ok(f"http://127.0.0.1:{notify_port}/healthz"),
            env=common,
        )
        # Further workers poll the same task queue, as a deployment scales out (docs/sizing.md).
        self.worker_metrics_ports = [free_port() for _ in range(self.workers)]
        self.incident_workers = [
            self.processes.python(
                numbered("incident-worker", index),
                "workers.main",
                ready=worker_polling(self.client, INCIDENT_QUEUE),
                env={
                    **common,
                    "NOTIFY_URL": f"http://127.0.0.1:{notify_port}/notifications",
                    "INCIDENTS_TASK_QUEUE": INCIDENT_QUEUE,
                    "INCIDENT_POLICIES": write_policies(self.folder / "policies", [self.timer_policy]),
                    "INCIDENTS_METRICS_PORT": str(port),
                    **self.worker_env,
                },
            )
            for index, port in enumerate(self.worker_metrics_ports)
        ]
        # As the bench: the pilots that set the start rate on one bare worker, the timers on a fresh one.
        self.bare = self.processes.python(
            "bare-worker",
            "bench.bare_worker",
            ready=worker_polling(self.client, BARE_QUEUE),
            env={"TEMPORAL_ADDRESS": self.address},
        )
        self.memory_bares = [
            self.processes.python(
                numbered("bare-timer-worker", index),
                "bench.bare_worker",
                ready=worker_polling(self.client, BARE_MEMORY_QUEUE),
                env={"TEMPORAL_ADDRESS": self.address, "BENCH_TASK_QUEUE": BARE_MEMORY_QUEUE, **self.bare_env},
            )
            for index in range(self.workers)
        ]
        self.worker, self.memory_bare = self.incident_workers[0], self.memory_bares[0]
        await self.processes.ready(self.notify, self.bare, *self.incident_workers, *self.memory_bares)
        self.service = IncidentService(self.client, policy=lifecycle_policy(), task_queue=INCIDENT_QUEUE)

    async def burst(self, count: int) -> dict[str, Any]:
        incident_rate, bare_rate = await self.start_rates()
        progress(f"starts/s: incidents {incident_rate:.0f}, bare {bare_rate:.0f}")
        figures: dict[str, Any] = {"count": count}
        watched = (self.server, self.notify, *self.incident_workers, *self.memory_bares)
        sampler = CpuSampler({c.name: c.pid for c in watched})
        sides = [("incidents", self.incident_side, incident_rate), ("bare", self.bare_side, bare_rate)]
        for commands in self.escalation_shapes:
            sides.append((escalation_side(commands), functools.partial(self.bare_escalation_side, commands), bare_rate))
        for side, measure, rate in sides:
            lags, late = await measure(count, rate)
            last_wake = self.last_due + timedelta(milliseconds=max(lags))
            await asyncio.sleep(SAMPLE_EVERY * 2)
            # From the shared deadline until the last one woke: the burst alone, not the openings or the polls after.
            spent = sampler.between(self.last_due, last_wake)
            figures[side] = {
                "p50_ms": round(percentile(lags, 50)),
                "p99_ms": round(percentile(lags, 99)),
                "max_ms": round(max(lags)),
                "late_s": round(late, 2),
                "cpu_ms_per_wake": {name: round(seconds * 1000 / count, 2) for name, seconds in spent.items()},
            }
            progress(f"{side}: {json.dumps(figures[side])}")
        sampler.task.cancel()
        figures["ratio_p99"] = round(figures["incidents"]["p99_ms"] / figures["bare"]["p99_ms"], 2)
        figures["ratio_p50"] = round(figures["incidents"]["p50_ms"] / figures["bare"]["p50_ms"], 2)
        figures["escalation_history"] = await self.histories_after_timer(
            f"WorkflowType = '{WORKFLOW_TYPE}' AND IncidentLine = 2"
        )
        figures["bare_history"] = await self.histories_after_timer("WorkflowType = 'BareTimer'")
        figures["incident_worker_full_collections"] = await self.full_collections()
        for commands in self.escalation_shapes:
            shape = figures[escalation_side(commands)]
            shape["ratio_p99_of_incidents_to_it"] = round(figures["incidents"]["p99_ms"] / shape["p99_ms"], 2)
            shape["ratio_p99_to_bare"] = round(shape["p99_ms"] / figures["bare"]["p99_ms"], 2)
            shape["history"] = await self.histories_after_timer(
                f"WorkflowType = 'BareEscalation' AND WorkflowId STARTS_WITH '{escalation_id_prefix(commands)}-'"
            )
        return figures

    async def full_collections(self) -> dict[str, float]:
        """The incident workers' full garbage collections over the whole probe (openings and burst): how many,
        and how long they held an interpreter, from each worker's metrics endpoint, summed."""
        count = total = 0.0
        async with httpx.AsyncClient() as http:
            for port in self.worker_metrics_ports:
                text = (await http.get(f"http://127.0.0.1:{port}/metrics")).raise_for_status().text
                totals = metric_totals(text)
                count += totals.get(f"{FULL_PAUSE_METRIC}_count", 0.0)
                total += totals.get(f"{FULL_PAUSE_METRIC}_sum", 0.0)
        return {"count": count, "total_ms": round(total), "mean_ms": round(total / count, 1) if count else 0.0}

    async def incident_side(self, count: int, rate: float) -> tuple[list[float], float]:
        lags, _, late = await self.incident_timers(count, rate)
        return lags, late

    async def bare_side(self, count: int, rate: float) -> tuple[list[float], float]:
        return await self.bare_timers(count, rate)

    async def bare_escalation_side(
        self, commands: tuple[str, ...], count: int, rate: float
    ) -> tuple[list[float], float]:
        return await self.bare_timers(count, rate, escalation=commands)

    async def histories_after_timer(self, query: str) -> dict[str, Any]:
        """What a sample of the woken workflows' histories hold from their (first) timer firing on."""
        after_fired: Counter[str] = Counter()
        tasks_per_escalation: Counter[int] = Counter()
        detail: Counter[str] = Counter()
        sampled = 0
        async for execution in self.client.list_workflows(query, limit=HISTORY_SAMPLE):
            history = await self.client.get_workflow_handle(execution.id).fetch_history()
            fired_at = [i for i, e in enumerate(history.events) if e.event_type == EventType.EVENT_TYPE_TIMER_FIRED]
            if not fired_at:
                detail[f"no timer fired: {execution.id}"] += 1
                continue
            fired = fired_at[0]
            names = [EventType.Name(e.event_type).removeprefix("EVENT_TYPE_") for e in history.events[fired:]]
            after_fired.update(names)
            for event in history.events[fired:]:
                if event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED:
                    attributes = event.marker_recorded_event_attributes
                    patch = attributes.details.get("patch-data")
                    what = patch.payloads[0].data.decode()[:60] if patch else attributes.marker_name
                    detail[f"marker {what}"] += 1
                elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
                    timeout = event.workflow_task_timed_out_event_attributes.timeout_type
                    detail[f"task timed out {TimeoutType.Name(timeout)}"] += 1
                elif event.event_type == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
                    fields = event.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields
                    detail[f"upsert {','.join(sorted(fields))}"] += 1
            tasks_per_escalation[names.count("WORKFLOW_TASK_COMPLETED")] += 1
            sampled += 1
        return {
            "sampled": sampled,
            "events_after_timer_fired_per_incident": {k: round(v / max(1, sampled), 2) for k, v in after_fired.items()},
            "workflow_tasks_per_escalation": dict(sorted(tasks_per_escalation.items())),
            "markers_and_upserts": {k: round(v / max(1, sampled), 2) for k, v in detail.items()},
        }


def escalation_commands(text: str) -> tuple[str, ...]:
    commands = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [command for command in commands if command not in ESCALATION_COMMANDS]
    if unknown or not commands:
        raise argparse.ArgumentTypeError(f"{text!r}: name commands of {', '.join(ESCALATION_COMMANDS)}")
    return commands


def numbered(name: str, index: int) -> str:
    return name if index == 0 else f"{name}-{index + 1}"


def escalation_side(commands: tuple[str, ...]) -> str:
    return "bare_escalation_" + "_".join(commands)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--worker-env", action="append", default=[], help="NAME=VALUE for the incident worker")
    parser.add_argument("--bare-env", action="append", default=[], help="NAME=VALUE for the bare timers' worker")
    parser.add_argument("--server-flag", action="append", default=[], help="one more `start-dev` argument")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="incident workers on the incidents' task queue, and as many bare workers for the bare timers",
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--escalation-shape",
        action="append",
        default=[],
        type=escalation_commands,
        help=f"a further side: bare timers waking into these commands, of {','.join(ESCALATION_COMMANDS)}",
    )
    args = parser.parse_args()
    worker_env = dict(item.split("=", 1) for item in args.worker_env)
    bare_env = dict(item.split("=", 1) for item in args.bare_env)

    async def run() -> dict[str, Any]:
        with tempfile.TemporaryDirectory(prefix="burst-probe-") as folder:
            probe = Probe(
                Path(folder), worker_env, bare_env, args.server_flag, args.escalation_shape, workers=args.workers
            )
            try:
                await probe.start()
                figures = await probe.burst(args.count)
            finally:
                probe.processes.stop()
            figures["worker_env"] = worker_env
            figures["bare_env"] = bare_env
            figures["server_flags"] = args.server_flag
            figures["workers"] = args.workers
            figures["at"] = datetime.now(UTC).isoformat(timespec="seconds")
            return figures

    figures = asyncio.run(run())
    print(json.dumps(figures, indent=1))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
