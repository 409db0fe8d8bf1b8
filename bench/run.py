"""`make bench`: the incident system side by side with raw Temporal, measured in one run.

Starts its own dev server (SQLite file, WAL) on free ports, an incident worker
process, a bare-Temporal worker process, the sandboxes and the HTTP API, then
measures: (1) the bare incident-shaped workflow's throughput, (2) the incident
lifecycle's throughput through IncidentService, (3) agent action latency
through the HTTP API against a raw signal-then-query, (4) SLA timer precision
against bare timers at the same number of simultaneous deadlines, (5) worker
memory per cached open incident against a bare waiting workflow, (6) the
history of a full critical lifecycle, and the SQLite pragmas' effect. Prints a
table and one JSON document. `--quick` shrinks every count for a CI smoke run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import temporalio
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from starter.auth import write_dev_tokens
from starter.connection import data_converter
from starter.incidents import IncidentService
from workers.binaries import dev_server_argv
from workflows.domain.inputs import IncidentInput
from workflows.domain.models import Acknowledge, AddNote, Feedback, OpenIncident, Resolve
from workflows.domain.policy import Policy, default_policy, parse_policy
from workflows.domain.tickets import new_ticket_id
from workflows.incident_start import start_options

ROOT = Path(__file__).resolve().parent.parent
INCIDENT_QUEUE = "bench-incidents"
BARE_QUEUE = "bench-bare"
WEBHOOK_SECRET = "bench-webhook-secret"


@dataclass(frozen=True)
class Sizes:
    baseline: int
    lifecycle: int
    open_for_latency: int
    latency_samples: int
    timers: int
    timers_small: int
    memory_open: int
    pragma_baseline: int


FULL = Sizes(200, 200, 500, 100, 2000, 50, 5000, 200)
QUICK = Sizes(40, 40, 40, 20, 100, 20, 300, 40)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    index = min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[index]


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


async def until(check: Callable[[], Awaitable[bool]], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not within {within}s")
        await asyncio.sleep(0.1)


async def bounded(limit: int, jobs: Iterable[Awaitable[Any]]) -> list[Any]:
    gate = asyncio.Semaphore(limit)

    async def run(job: Awaitable[Any]) -> Any:
        async with gate:
            return await job

    return await asyncio.gather(*(run(job) for job in jobs))


@dataclass
class Processes:
    folder: Path
    children: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        with open(self.folder / f"{name}.log", "ab") as log:
            child = subprocess.Popen(
                argv, env={**os.environ, **(env or {})}, stdout=log, stderr=log, cwd=ROOT, start_new_session=True
            )
        self.children.append(child)
        return child

    def stop(self) -> None:
        for child in reversed(self.children):
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGTERM)
        for child in reversed(self.children):
            try:
                child.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait(5)


async def start_server(processes: Processes, name: str, pragmas: dict[str, str] | None) -> str:
    port = free_port()
    processes.spawn(
        name,
        dev_server_argv(
            str(processes.folder / f"{name}.sqlite"),
            port,
            sqlite_pragmas=pragmas,
            extra=["--http-port", str(free_port()), "--metrics-port", str(free_port())],
        ),
    )
    address = f"127.0.0.1:{port}"

    async def ready() -> bool:
        try:
            return bool(await (await Client.connect(address)).service_client.check_health())
        except Exception:
            return False

    await until(ready, 60, f"dev server {name}")
    return address


async def wait_polling(client: Client, task_queue: str, pid: int) -> None:
    async def polling() -> bool:
        response = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=client.namespace,
                task_queue=TaskQueue(name=task_queue),
                task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
            )
        )
        return any(p.identity.startswith(f"{pid}@") for p in response.pollers)

    await until(polling, 60, f"worker {pid} on {task_queue}")


async def http_ready(url: str) -> None:
    async def ready() -> bool:
        try:
            async with httpx.AsyncClient(timeout=2) as http:
                return (await http.get(url)).status_code == 200
        except httpx.HTTPError:
            return False

    await until(ready, 60, url)


def bench_policy() -> Policy:
    data = default_policy().model_dump(mode="json")
    data["name"] = "bench"
    data["severities"]["critical"].update(
        {
            "acknowledge_within": "1s",
            "line_timeouts": {"1": "2s", "2": "1h"},
            "customer_updates_every": "1h",
            "callback_after": "2s",
            "feedback_window": "1h",
        }
    )
    return parse_policy(data, "bench policy")


def timer_policy(line_one: timedelta) -> Policy:
    data = default_policy().model_dump(mode="json")
    data["severities"]["routine"]["line_timeouts"] = {"1": f"{max(1, int(line_one.total_seconds()))}s", "2": "1d"}
    return parse_policy(data, "timer policy")


def request(customer: str, category: str = "tariff_change", **more: Any) -> OpenIncident:
    return OpenIncident.model_validate(
        {"customer_id": customer, "category": category, "description": "bench", "channel": "app", **more}
    )


class Bench:
    def __init__(self, sizes: Sizes, folder: Path) -> None:
        self.sizes = sizes
        self.processes = Processes(folder)
        self.folder = folder
        self.figures: dict[str, Any] = {}
        self.run = uuid.uuid4().hex[:6]

    # --- set-up ---

    async def start(self) -> None:
        self.address = await start_server(self.processes, "temporal-wal", None)
        self.client = await Client.connect(self.address, data_converter=data_converter())
        payments, notify, api_port = free_port(), free_port(), free_port()
        py = [sys.executable, "-m", "starter.cli"]
        common = {"TEMPORAL_ADDRESS": self.address, "WEBHOOK_SECRET": WEBHOOK_SECRET, "INCIDENTS_LOG_LEVEL": "WARNING"}
        self.processes.spawn("payments", [*py, "sandbox", "payments", "--port", str(payments)], common)
        self.processes.spawn("notify", [*py, "sandbox", "notify", "--port", str(notify)], common)
        await http_ready(f"http://127.0.0.1:{payments}/healthz")
        await http_ready(f"http://127.0.0.1:{notify}/healthz")
        worker_env = {
            **common,
            "PAYMENTS_URL": f"http://127.0.0.1:{payments}",
            "NOTIFY_URL": f"http://127.0.0.1:{notify}/notifications",
            "INCIDENTS_TASK_QUEUE": INCIDENT_QUEUE,
        }
        self.worker = self.processes.spawn("incident-worker", [sys.executable, "-m", "workers.main"], worker_env)
        self.bare = self.processes.spawn(
            "bare-worker", [sys.executable, "-m", "bench.bare"], {**common, "BENCH_TASK_QUEUE": BARE_QUEUE}
        )
        await wait_polling(self.client, INCIDENT_QUEUE, self.worker.pid)
        await wait_polling(self.client, BARE_QUEUE, self.bare.pid)
        tokens = write_dev_tokens(self.folder / "tokens.yml")
        self.agent_token = next(token for role, token in tokens.values() if role.value == "agent")
        self.processes.spawn(
            "api",
            [*py, "api", "--port", str(api_port)],
            {
                **common,
                "INCIDENTS_API_TOKENS_FILE": str(self.folder / "tokens.yml"),
                "INCIDENTS_TASK_QUEUE": INCIDENT_QUEUE,
            },
        )
        self.api = f"http://127.0.0.1:{api_port}"
        await http_ready(f"{self.api}/healthz")
        self.service = IncidentService(self.client, policy=bench_policy(), task_queue=INCIDENT_QUEUE)
        await asyncio.sleep(1)
        self.worker_idle_kb = rss_kb(self.worker.pid)
        self.bare_idle_kb = rss_kb(self.bare.pid)

    # --- (1) and the pragma comparison ---

    async def bare_shape_rate(self, client: Client, count: int, tag: str) -> float:
        started = time.monotonic()
        handles = await bounded(
            100,
            (
                client.start_workflow("BareShape", id=f"shape-{tag}-{self.run}-{i}", task_queue=BARE_QUEUE)
                for i in range(count)
            ),
        )
        await bounded(100, (h.signal("go") for h in handles))
        await bounded(200, (h.result() for h in handles))
        return count / (time.monotonic() - started)

    async def baseline(self) -> None:
        await self.bare_shape_rate(self.client, 10, "warm")
        self.figures["baseline_per_s"] = await self.bare_shape_rate(self.client, self.sizes.baseline, "base")

    async def pragmas(self) -> None:
        address = await start_server(self.processes, "temporal-defaults", {})
        client = await Client.connect(address)
        bare = self.processes.spawn(
            "bare-worker-defaults",
            [sys.executable, "-m", "bench.bare"],
            {"TEMPORAL_ADDRESS": address, "BENCH_TASK_QUEUE": BARE_QUEUE},
        )
        await wait_polling(client, BARE_QUEUE, bare.pid)
        await self.bare_shape_rate(client, 10, "warm-defaults")
        default_rate = await self.bare_shape_rate(client, self.sizes.pragma_baseline, "defaults")
        wal_rate = await self.bare_shape_rate(self.client, self.sizes.pragma_baseline, "wal")
        self.figures["sqlite_default_pragmas_per_s"] = default_rate
        self.figures["sqlite_wal_normal_per_s"] = wal_rate
        self.figures["sqlite_wal_speedup"] = wal_rate / default_rate
        os.killpg(bare.pid, signal.SIGTERM)

    # --- (2) ---

    async def lifecycle(self, customer: str) -> None:
        opened = await self.service.open(request(customer))
        await self.service.act(opened.ticket_id, Acknowledge(agent="ann"))
        await self.service.act(opened.ticket_id, Resolve(agent="ann", resolution="done"))
        await self.client.get_workflow_handle(opened.ticket_id).result()

    async def lifecycles(self) -> None:
        await bounded(10, (self.lifecycle(f"warm-{self.run}-{i}") for i in range(10)))
        started = time.monotonic()
        await bounded(
            self.sizes.lifecycle, (self.lifecycle(f"life-{self.run}-{i}") for i in range(self.sizes.lifecycle))
        )
        rate = self.sizes.lifecycle / (time.monotonic() - started)
        self.figures["lifecycle_per_s"] = rate
        self.figures["lifecycle_ratio"] = rate / self.figures["baseline_per_s"]

    # --- (3) ---

    async def latency(self) -> None:
        opened = await bounded(
            50, (self.service.open(request(f"lat-{self.run}-{i}")) for i in range(self.sizes.open_for_latency))
        )
        tickets = [o.ticket_id for o in opened]
        headers = {"Authorization": f"Bearer {self.agent_token}"}
        action_ms: list[float] = []
        async with httpx.AsyncClient(timeout=30) as http:
            for i in range(self.sizes.latency_samples):
                ticket = tickets[i % len(tickets)]
                before = (await http.get(f"{self.api}/incidents/{ticket}", headers=headers)).json()["notes"]
                started = time.perf_counter()
                posted = await http.post(
                    f"{self.api}/incidents/{ticket}/notes", json={"agent": "ann", "text": f"note {i}"}, headers=headers
                )
                assert posted.status_code == 200, posted.text
                while (await http.get(f"{self.api}/incidents/{ticket}", headers=headers)).json()["notes"] <= before:
                    pass
                action_ms.append((time.perf_counter() - started) * 1000)
        waiters = await bounded(
            50,
            (
                self.client.start_workflow("BareWaiter", id=f"wait-{self.run}-{i}", task_queue=BARE_QUEUE)
                for i in range(self.sizes.latency_samples)
            ),
        )
        raw_ms: list[float] = []
        for handle in waiters:
            before = await handle.query("count")
            started = time.perf_counter()
            await handle.signal("bump")
            while await handle.query("count") <= before:
                pass
            raw_ms.append((time.perf_counter() - started) * 1000)
        for name, values in (("action", action_ms), ("raw_signal_query", raw_ms)):
            for q in (50, 95, 99):
                self.figures[f"{name}_p{q}_ms"] = percentile(values, q)

    # --- (4) ---

    async def incident_timers(self, count: int) -> list[float]:
        lead = timedelta(seconds=5 + count / 60)
        due = datetime.now(UTC) + lead

        async def open_one(i: int) -> str:
            ticket = new_ticket_id()
            policy = timer_policy(due - datetime.now(UTC))
            input = IncidentInput(ticket_id=ticket, request=request(f"tmr-{self.run}-{count}-{i}"), policy=policy)
            await self.client.start_workflow(
                "IncidentWorkflow", input, task_queue=INCIDENT_QUEUE, **start_options(input)
            )
            return ticket

        tickets = await bounded(100, (open_one(i) for i in range(count)))
        wait = (due - datetime.now(UTC)).total_seconds() + 10 + count / 200
        await asyncio.sleep(max(wait, 1))

        async def lag_of(ticket: str) -> float:
            for _ in range(100):
                state = await self.service.state(ticket)
                escalated = [e for e in state.events if e.type == "escalated"]
                breach = [e for e in state.events if e.type == "sla_breached"]
                if escalated and breach:
                    deadline = datetime.fromisoformat(breach[0].data["deadline"])
                    return (escalated[0].at - deadline).total_seconds() * 1000
                await asyncio.sleep(0.5)
            raise RuntimeError(f"{ticket} never escalated")

        return await bounded(50, (lag_of(t) for t in tickets))

    async def bare_timers(self, count: int) -> list[float]:
        lead = timedelta(seconds=5 + count / 150)
        due = datetime.now(UTC) + lead
        handles = await bounded(
            100,
            (
                self.client.start_workflow(
                    "BareTimer", due.isoformat(), id=f"timer-{self.run}-{count}-{i}", task_queue=BARE_QUEUE
                )
                for i in range(count)
            ),
        )
        woke = await bounded(200, (h.result() for h in handles))
        return [(datetime.fromisoformat(w) - due).total_seconds() * 1000 for w in woke]

    async def timers(self) -> None:
        for label, count in (("many", self.sizes.timers), ("50", self.sizes.timers_small)):
            incident = await self.incident_timers(count)
            bare = await self.bare_timers(count)
            self.figures[f"timers_{label}_count"] = count
            for q in (50, 99):
                self.figures[f"escalation_lag_{label}_p{q}_ms"] = percentile(incident, q)
                self.figures[f"bare_timer_lag_{label}_p{q}_ms"] = percentile(bare, q)

    # --- (5) ---

    async def memory(self) -> None:
        running = 0
        async for _ in self.client.list_workflows(
            f"WorkflowType = 'IncidentWorkflow' AND ExecutionStatus = 'Running' AND TaskQueue = '{INCIDENT_QUEUE}'"
        ):
            running += 1
        more = max(0, self.sizes.memory_open - running)

        async def open_one(i: int) -> None:
            ticket = new_ticket_id()
            input = IncidentInput(ticket_id=ticket, request=request(f"mem-{self.run}-{i}"), policy=default_policy())
            await self.client.start_workflow(
                "IncidentWorkflow", input, task_queue=INCIDENT_QUEUE, **start_options(input)
            )

        await bounded(100, (open_one(i) for i in range(more)))
        waiters = await bounded(
            100,
            (
                self.client.start_workflow("BareWaiter", id=f"mem-wait-{self.run}-{i}", task_queue=BARE_QUEUE)
                for i in range(self.sizes.memory_open)
            ),
        )
        await asyncio.sleep(5 + self.sizes.memory_open / 400)  # every first workflow task has run
        cached = running + more
        self.figures["memory_open_incidents"] = cached
        self.figures["memory_kb_per_incident"] = (rss_kb(self.worker.pid) - self.worker_idle_kb) / cached
        bare_cached = len(waiters) + self.sizes.latency_samples
        self.figures["memory_kb_per_bare_workflow"] = (rss_kb(self.bare.pid) - self.bare_idle_kb) / bare_cached

    # --- (6) ---

    async def history(self) -> None:
        service = IncidentService(self.client, policy=bench_policy(), task_queue=INCIDENT_QUEUE)
        opened = await service.open(
            request(f"hist-{self.run}", "payment_not_refunded", refund={"amount": "1500.00", "currency": "RUB"})
        )
        ticket = opened.ticket_id
        for _ in range(200):
            state = await service.state(ticket)
            if state.line == 2 and state.refund is not None and state.refund.status == "paid":
                break
            await asyncio.sleep(0.1)
        await service.act(ticket, Acknowledge(agent="boris"))
        await service.act(ticket, AddNote(agent="boris", text="bench"))
        await service.act(ticket, Resolve(agent="boris", resolution="fixed late"))
        for _ in range(200):
            if (await service.state(ticket)).awaiting == "feedback":
                break
            await asyncio.sleep(0.1)
        await service.act(ticket, Feedback(score=5))
        final = await self.client.get_workflow_handle(ticket).result()
        kinds = {e.type.value for e in (await service.state(ticket)).events}
        assert {"escalated", "refund_succeeded", "compensation_granted", "feedback_received", "closed"} <= kinds, kinds
        history = await self.client.get_workflow_handle(ticket).fetch_history()
        self.figures["history_events"] = len(history.events)
        self.figures["history_bytes"] = sum(e.ByteSize() for e in history.events)
        del final

    async def measure(self) -> None:
        phases: list[tuple[str, Callable[[], Awaitable[None]]]] = [
            ("baseline", self.baseline),
            ("lifecycle", self.lifecycles),
            ("latency", self.latency),
            ("timers", self.timers),
            ("memory", self.memory),
            ("history", self.history),
            ("pragmas", self.pragmas),
        ]
        for name, phase in phases:
            started = time.monotonic()
            await phase()
            self.figures[f"phase_{name}_s"] = round(time.monotonic() - started, 1)
            print(f"  {name} done in {self.figures[f'phase_{name}_s']}s", file=sys.stderr, flush=True)


def verdicts(f: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    rows = [
        ("baseline: bare incident shape", f"{f['baseline_per_s']:.1f}/s", "-", True),
        (
            "incident lifecycles",
            f"{f['lifecycle_per_s']:.1f}/s ({f['lifecycle_ratio']:.0%} of baseline)",
            ">= 50% of baseline",
            f["lifecycle_ratio"] >= 0.5,
        ),
        (
            "agent action p50/p95/p99",
            f"{f['action_p50_ms']:.0f}/{f['action_p95_ms']:.0f}/{f['action_p99_ms']:.0f} ms",
            f"p95 <= raw {f['raw_signal_query_p95_ms']:.0f} + 50 ms",
            f["action_p95_ms"] <= f["raw_signal_query_p95_ms"] + 50,
        ),
        (
            f"escalation lag at {f['timers_many_count']} p50/p99",
            f"{f['escalation_lag_many_p50_ms']:.0f}/{f['escalation_lag_many_p99_ms']:.0f} ms",
            f"p99 <= 1.5 x bare {f['bare_timer_lag_many_p99_ms']:.0f} ms",
            f["escalation_lag_many_p99_ms"] <= 1.5 * f["bare_timer_lag_many_p99_ms"],
        ),
        (
            f"escalation lag at {f['timers_50_count']} p50/p99",
            f"{f['escalation_lag_50_p50_ms']:.0f}/{f['escalation_lag_50_p99_ms']:.0f} ms",
            f"p99 <= 1000 ms and <= 1.5 x bare {f['bare_timer_lag_50_p99_ms']:.0f} ms",
            f["escalation_lag_50_p99_ms"] <= min(1000, max(1.5 * f["bare_timer_lag_50_p99_ms"], 0) or 1000),
        ),
        (
            f"worker memory, {f['memory_open_incidents']} open",
            f"{f['memory_kb_per_incident']:.1f} KB/incident (bare {f['memory_kb_per_bare_workflow']:.1f})",
            "<= 20 KB",
            f["memory_kb_per_incident"] <= 20,
        ),
        (
            "full critical lifecycle history",
            f"{f['history_events']} events, {f['history_bytes']} bytes",
            "<= 60 events",
            f["history_events"] <= 60,
        ),
        (
            "SQLite WAL+normal vs defaults",
            f"{f['sqlite_wal_speedup']:.2f}x "
            f"({f['sqlite_wal_normal_per_s']:.1f} vs {f['sqlite_default_pragmas_per_s']:.1f}/s)",
            "-",
            True,
        ),
    ]
    return rows


def machine() -> dict[str, Any]:
    server = subprocess.run(
        [shutil.which("temporal") or str(Path(sys.executable).parent / "temporal"), "--version"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    memory_kb = next(
        (
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal:")
        ),
        0,
    )
    return {
        "cores": os.cpu_count(),
        "memory_gb": round(memory_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "temporalio": temporalio.__version__ if hasattr(temporalio, "__version__") else "?",
        "temporal_cli": server,
    }


async def main(quick: bool, json_out: Path | None) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="incidents-bench-"))
    bench = Bench(QUICK if quick else FULL, folder)
    started = time.monotonic()
    try:
        await bench.start()
        await bench.measure()
    finally:
        bench.processes.stop()
    figures = {
        **bench.figures,
        "mode": "quick" if quick else "full",
        "total_s": round(time.monotonic() - started, 1),
        "machine": machine(),
    }
    rows = verdicts(bench.figures)
    width = max(len(r[0]) for r in rows)
    print(f"\n{'measure':<{width}}  {'figure':<44} {'target':<40} ok")
    for name, figure, target, ok in rows:
        print(f"{name:<{width}}  {figure:<44} {target:<40} {'yes' if ok else 'NO'}")
    figures["targets_met"] = {r[0]: r[3] for r in rows}
    document = json.dumps(figures, indent=2, default=str)
    print(document)
    if json_out is not None:
        await asyncio.to_thread(json_out.write_text, document)
    shutil.rmtree(folder, ignore_errors=True)
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small counts: a smoke test that the bench works")
    parser.add_argument("--json-out", type=Path, help="also write the JSON document here")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.quick, arguments.json_out))
    sys.stdout.flush()
    os._exit(0)
