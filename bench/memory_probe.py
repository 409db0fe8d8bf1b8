"""Memory per cached open incident against a bare waiting workflow, quickly: `python -m bench.memory_probe`.

The bench's (5) on a stack of its own: a dev server, the notification sink, one incident worker per variant
(each on its own task queue, with its own environment: `--variant arena2:MALLOC_ARENA_MAX=2`), a worker
per bare shape (`--shape`, bench/memory_shapes.py: a bare timer with one part of an incident's opening)
and the bare timer's, each a process of its own. Incidents (opened as the bench opens them: straight,
naming the shipped policy) and bare workflows (waiting on a day-long timer) rise in steps, the workers'
steps interleaved so each sees the same moments of the machine; after each step a worker's RSS is read
once its workflows are through their opening and a pause has let the garbage go. Prints KB per cached run
(the least-squares slope of RSS over open runs) for each worker, its ratio to 1.25 x the bare timer's
(the bench's target), and the same slope of its allocators' own figures (glibc malloc's bytes in use: the
Rust core's, protobuf's and Python's larger objects; pymalloc's: Python's small objects), which are
steadier than RSS on a shared machine: RSS moved by several KB per run between runs of the same code.

`--trace`: the workers also trace Python allocations (tracemalloc, which slows and grows them:
their RSS is not comparable then) and the probe prints where the Python heap grew per run between
the first and the last step.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import gc
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import tracemalloc
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowHandle

from bench.bare import TASK_QUEUE as BARE_QUEUE
from bench.measures import WEBHOOK_SECRET, parts, slope
from bench.stack import Processes, bounded, rss_kb, start_dev_server, until
from infra.connection import data_converter
from infra.processes import Child, free_port, http_ok, worker_polling
from workflows.domain.inputs import WORKFLOW_TYPE, IncidentInput
from workflows.domain.models import OpenIncident
from workflows.domain.policy import default_policy
from workflows.domain.policy_catalogue import reference_of
from workflows.domain.tickets import new_ticket_id
from workflows.incident_start import start_options

# A target of issue 20: an incident may cost at most this many times a bare waiting workflow.
TARGET_RATIO = 1.25
TRACE_FILE_ENV = "MEMORY_PROBE_TRACE_FILE"  # the wrapped worker dumps a tracemalloc snapshot there on SIGUSR1
STATS_FILE_ENV = "MEMORY_PROBE_STATS_FILE"  # and its allocators' figures there as JSON on SIGUSR2
LEAN_SHAPES_ENV = "MEMORY_PROBE_LEAN_SHAPES"  # the bare worker runs the incident worker's sandbox runner
# An incident worker variant's setting: its runner keeps the activations as the SDK does (`--variant
# keep:MEMORY_PROBE_KEEP_ACTIVATIONS=1`), workers/sandbox_runner.py's A/B.
KEEP_ACTIVATIONS_ENV = "MEMORY_PROBE_KEEP_ACTIVATIONS"
# An opened incident's history holds at least this many events once it waits: started, a task, the policy's
# activity (3), a second task, the notifications' marker, the timer.
OPENED_EVENTS = 12
# And a bare workflow's, by type: started, a task (3), the timer; an activity (3) and a task (3); a marker.
WAITING_EVENTS = {
    "BareTimer": 5,
    "ShapeActivity": 11,
    "ShapeSmallActivity": 11,
    "ShapeLocalActivity": 6,
    "ShapeOpening": 12,
    "ShapeUpsert": 6,
}


@dataclass
class Side:
    """One worker process and the runs it caches."""

    name: str
    queue: str
    child: Child
    workflow: str | None  # a bare workflow's type (bench/memory_shapes.py); None: incidents
    # A bare workflow started with an incident's start options: "all", "attrs" (search attributes alone) or
    # "meta" (its static summary and details alone); "": none.
    start_like_incident: str = ""
    steps: list[tuple[int, int]] = field(default_factory=list)
    stats: list[tuple[int, dict[str, int]]] = field(default_factory=list)
    snapshots: list[Path] = field(default_factory=list)
    open_runs: int = 0

    @property
    def kb_per_run(self) -> float:
        return slope(self.steps)


def request(customer: str) -> OpenIncident:
    return OpenIncident.model_validate(
        {"customer_id": customer, "category": "tariff_change", "description": "probe", "channel": "app"}
    )


class Probe:
    def __init__(self, arguments: argparse.Namespace, folder: Path) -> None:
        self.arguments = arguments
        self.folder = folder
        self.processes = Processes(folder)
        self.policy = default_policy()
        self.reference = reference_of(self.policy)
        self.run_id = uuid.uuid4().hex[:6]
        self.sides: list[Side] = []

    async def start(self) -> None:
        address, _ = await start_dev_server(self.processes, "temporal", None)
        self.client = await Client.connect(address, data_converter=data_converter())
        notify_port = free_port()
        common = {"TEMPORAL_ADDRESS": address, "WEBHOOK_SECRET": WEBHOOK_SECRET, "INCIDENTS_LOG_LEVEL": "WARNING"}
        notify = self.processes.python(
            "notify",
            *("starter.cli", "sandbox", "notify", "--port", str(notify_port)),
            ready=http_ok(f"http://127.0.0.1:{notify_port}/healthz"),
            env=common,
        )
        await self.processes.ready(notify)
        for variant in self.arguments.variant or ["main"]:
            name, _, settings = variant.partition(":")
            env = dict(pair.split("=", 1) for pair in settings.split(",") if pair)
            queue = f"probe-{name}-{self.run_id}"
            trace = self.folder / f"{name}.trace" if self.arguments.trace else None
            child = self.processes.python(
                f"worker-{name}",
                "bench.memory_probe",
                "worker",
                ready=worker_polling(self.client, queue),
                env={
                    **common,
                    **env,
                    "NOTIFY_URL": f"http://127.0.0.1:{notify_port}/notifications",
                    "INCIDENTS_TASK_QUEUE": queue,
                    **({TRACE_FILE_ENV: str(trace)} if trace else {}),
                    STATS_FILE_ENV: str(self.folder / f"{name}.stats"),
                },
            )
            self.sides.append(Side(name, queue, child, workflow=None))
        for shape in [*(self.arguments.shape or []), "BareTimer"]:
            workflow, _, more = shape.partition("+")
            name = "bare" if shape == "BareTimer" else shape.replace("+", "-")
            queue = f"{BARE_QUEUE}-{name}-{self.run_id}"
            child = self.processes.python(
                f"worker-{name}",
                "bench.memory_probe",
                "bare-worker",
                ready=worker_polling(self.client, queue),
                env={
                    "TEMPORAL_ADDRESS": address,
                    "BENCH_TASK_QUEUE": queue,
                    **({LEAN_SHAPES_ENV: "1"} if self.arguments.lean_shapes else {}),
                    STATS_FILE_ENV: str(self.folder / f"{name}.stats"),
                    **({TRACE_FILE_ENV: str(self.folder / f"{name}.trace")} if self.arguments.trace else {}),
                },
            )
            self.sides.append(Side(name, queue, child, workflow=workflow, start_like_incident=more))
        await self.processes.ready(*(side.child for side in self.sides))

    async def open_incident(self, side: Side, number: int) -> WorkflowHandle[Any, Any]:
        input = IncidentInput(
            ticket_id=new_ticket_id(),
            request=request(f"probe-{self.run_id}-{side.name}-{number}"),
            policy_ref=self.reference,
            opened_at=datetime.now(UTC),
            customer_locale=True,
        )
        return await self.client.start_workflow(
            WORKFLOW_TYPE, input, task_queue=side.queue, **start_options(input, policy=self.policy)
        )

    async def start_bare(self, side: Side, number: int) -> WorkflowHandle[Any, Any]:
        assert side.workflow is not None
        args = [(datetime.now(UTC) + timedelta(days=1)).isoformat()] if side.workflow == "BareTimer" else []
        options: dict[str, Any] = {"id": f"probe-{self.run_id}-{side.name}-{number}"}
        if side.start_like_incident:
            input = IncidentInput(
                ticket_id=new_ticket_id(),
                request=request(f"probe-{self.run_id}-{side.name}-{number}"),
                policy_ref=self.reference,
                opened_at=datetime.now(UTC),
                customer_locale=True,
            )
            given = start_options(input, policy=self.policy)
            wanted = {
                "all": ("search_attributes", "memo", "static_summary", "static_details"),
                "attrs": ("search_attributes",),
                "meta": ("static_summary", "static_details"),
            }[side.start_like_incident]
            options |= {name: given[name] for name in wanted}
        return await self.client.start_workflow(side.workflow, args=args, task_queue=side.queue, **options)

    async def waiting(self, handles: list[WorkflowHandle[Any, Any]], events: int) -> None:
        """Until every one of the last runs started is through its opening and waits on its timer."""

        async def done(handle: WorkflowHandle[Any, Any]) -> bool:
            described = (await handle.describe()).raw_description
            return described.workflow_execution_info.history_length >= events and not described.pending_activities

        async def all_done() -> bool:
            return all(await asyncio.gather(*(done(h) for h in handles[-20:])))

        await until(all_done, 120 + len(handles) / 10, "openings", every=0.25)

    async def step(self, side: Side, count: range) -> None:
        if side.workflow is None:
            handles = await bounded(25, (self.open_incident(side, i) for i in count))
            await self.waiting(handles, OPENED_EVENTS)
        else:
            handles = await bounded(50, (self.start_bare(side, i) for i in count))
            await self.waiting(handles, WAITING_EVENTS[side.workflow])
        side.open_runs += len(count)

    async def measure(self) -> None:
        arguments = self.arguments
        for side in self.sides:
            if arguments.warm:  # the heap's start-up growth and first-run caches are not any run's cost
                await self.step(side, range(-arguments.warm, 0))
                side.open_runs = 0
        await asyncio.sleep(arguments.pause)
        for side in self.sides:
            side.steps.append((0, rss_kb(side.child.pid)))
            side.stats.append((0, self.allocators(side)))
            self.snapshot(side)
        for number, batch in enumerate(parts(arguments.count, arguments.steps)):
            for side in self.sides:
                started = time.monotonic()
                await self.step(side, batch)
                await asyncio.sleep(arguments.pause)
                side.steps.append((side.open_runs, rss_kb(side.child.pid)))
                side.stats.append((side.open_runs, self.allocators(side)))
                print(
                    f"  step {number + 1} {side.name}: {side.open_runs} open, "
                    f"RSS {side.steps[-1][1] / 1024:.1f} MB ({time.monotonic() - started:.1f}s)",
                    file=sys.stderr,
                    flush=True,
                )
        for side in self.sides:
            self.snapshot(side)

    def allocators(self, side: Side) -> dict[str, int]:
        path = self.folder / f"{side.name}.stats"
        path.unlink(missing_ok=True)
        side.child.signal(signal.SIGUSR2)
        deadline = time.monotonic() + 120
        while not path.exists():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{side.name} wrote no allocator figures")
            time.sleep(0.05)
        figures: dict[str, int] = json.loads(path.read_text())
        return figures

    def snapshot(self, side: Side) -> None:
        if not self.arguments.trace:
            return
        path = self.folder / f"{side.name}.trace"
        side.snapshots.append(path.with_suffix(f".{len(side.snapshots)}"))
        path.unlink(missing_ok=True)
        side.child.signal(signal.SIGUSR1)
        deadline = time.monotonic() + 60
        while not path.exists():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{side.name} wrote no tracemalloc snapshot")
            time.sleep(0.1)
        time.sleep(1)  # the dump is written in one go, but give it its time
        path.rename(side.snapshots[-1])

    def report(self) -> None:
        bare = self.sides[-1]
        print(f"open runs per worker: {self.arguments.count} (after {self.arguments.warm} to warm it)")
        print(f"{'worker':<24} {'KB/run':>8} {'RSS MB':>8} {'ratio to 1.25 x bare':>21}")
        for side in self.sides:
            ratio = side.kb_per_run / (TARGET_RATIO * bare.kb_per_run)
            print(
                f"{side.name:<24} {side.kb_per_run:8.1f} {side.steps[-1][1] / 1024:8.1f} "
                f"{ratio if side is not bare else float('nan'):21.2f}"
            )
        names = list(self.sides[0].stats[0][1])
        print(f"\nper run, by allocator (bytes): {', '.join(side.name for side in self.sides)}")
        for name in names:
            values = [slope([(runs, figures[name]) for runs, figures in side.stats]) for side in self.sides]
            print(f"  {name:<28} " + " ".join(f"{value:10.0f}" for value in values))
        for side in self.sides:
            if len(side.snapshots) == 2:
                print_growth(side, self.arguments.count, self.arguments.top)


def print_growth(side: Side, runs: int, top: int) -> None:
    """Where the Python heap grew between the first and the last step, per incident, by line and by file."""
    first, last = (tracemalloc.Snapshot.load(str(path)) for path in side.snapshots)
    for key in ("lineno", "filename"):
        stats = last.compare_to(first, key)
        total = sum(stat.size_diff for stat in stats)
        print(f"\n{side.name}: Python heap +{total / runs / 1024:.1f} KB per run (tracemalloc, by {key})")
        for stat in stats[:top]:
            frame = stat.traceback[0]
            where = f"{shorten(frame.filename)}:{frame.lineno}" if key == "lineno" else shorten(frame.filename)
            print(f"  {stat.size_diff / runs:8.0f} B {stat.count_diff / runs:6.1f} blocks  {where}")


def shorten(filename: str) -> str:
    for marker in ("site-packages/", "/lib/python3"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename.removeprefix(str(Path.cwd()) + "/")


class MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks")
    ] + [("keepcost", ctypes.c_size_t)]


def allocator_figures() -> dict[str, int]:
    """This process's memory as its allocators see it: glibc malloc (the Rust core's and Python's larger
    objects), pymalloc's arenas (Python's small objects), and the kernel's count."""
    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = MallInfo2
    info = libc.mallinfo2()
    saved = os.dup(2)
    with tempfile.TemporaryFile("w+") as out:
        os.dup2(out.fileno(), 2)
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        out.seek(0)
        lines = out.read().splitlines()

    def pymalloc(label: str) -> int:
        # Not printed while tracemalloc has its hooks on the allocators: 0 then.
        found = [line for line in lines if line.startswith(label)]
        return int(found[0].split("=")[1].strip().replace(",", "")) if found else 0

    return {
        "rss": rss_kb(os.getpid()) * 1024,
        "malloc_in_use": info.uordblks + info.hblkhd,
        "malloc_free_in_heap": info.fordblks,
        "malloc_heap": info.arena,
        "malloc_mmapped": info.hblkhd,
        "pymalloc_arenas": pymalloc("# arenas allocated current") * (1 << 20),
        "pymalloc_in_blocks": pymalloc("# bytes in allocated blocks"),
        "python_objects_tracked_by_gc": len(gc.get_objects()),
    }


def install_probe_hooks() -> None:
    """SIGUSR2: this process's allocator figures to MEMORY_PROBE_STATS_FILE; SIGUSR1: a tracemalloc snapshot
    to MEMORY_PROBE_TRACE_FILE (tracing from the start when it is set)."""
    stats_file = os.environ.get(STATS_FILE_ENV)
    if stats_file:

        def figures(*_: object) -> None:
            partial = Path(stats_file + ".partial")
            partial.write_text(json.dumps(allocator_figures()))
            partial.rename(stats_file)

        signal.signal(signal.SIGUSR2, figures)
    trace_file = os.environ.get(TRACE_FILE_ENV)
    if trace_file:
        tracemalloc.start(1)

        def dump(*_: object) -> None:
            gc.collect()
            snapshot = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
            partial = Path(trace_file + ".partial")
            snapshot.dump(str(partial))
            partial.rename(trace_file)

        signal.signal(signal.SIGUSR1, dump)


def run_worker() -> None:
    """The incident worker as `incidents worker` runs it, with the probe's hooks."""
    from workers import sandbox_runner
    from workers.main import main as worker_main

    install_probe_hooks()
    sandbox_runner.KEEP_ACTIVATIONS = os.environ.get(KEEP_ACTIVATIONS_ENV) == "1"
    worker_main()


def run_bare_worker() -> None:
    """The bench's bare worker, set up as bench/bare_worker.py sets it up, with the shapes too."""
    from temporalio.worker import Worker
    from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

    from bench import memory_shapes
    from workers.sandbox_runner import sandboxed_runner

    install_probe_hooks()

    async def serve() -> None:
        client = await Client.connect(os.environ["TEMPORAL_ADDRESS"])
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        async with Worker(
            client,
            task_queue=os.environ["BENCH_TASK_QUEUE"],
            workflows=memory_shapes.WORKFLOWS,
            activities=memory_shapes.ACTIVITIES,
            max_cached_workflows=20_000,
            workflow_runner=(sandboxed_runner if os.environ.get(LEAN_SHAPES_ENV) else SandboxedWorkflowRunner)(
                restrictions=SandboxRestrictions.default.with_passthrough_modules("bench")
            ),
        ):
            await stop.wait()

    asyncio.run(serve())


async def probe(arguments: argparse.Namespace) -> None:
    folder = Path(tempfile.mkdtemp(prefix="memory-probe-"))
    print(f"memory probe, logs in {folder}", file=sys.stderr, flush=True)
    runner = Probe(arguments, folder)
    try:
        await runner.start()
        await runner.measure()
    except BaseException:
        print(f"memory probe failed; the processes' logs stay in {folder}", file=sys.stderr, flush=True)
        raise
    finally:
        runner.processes.stop()
    runner.report()
    shutil.rmtree(folder, ignore_errors=True)  # the servers' files and the snapshots: hundreds of MB


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.memory_probe", description=(__doc__ or "").split("\n")[0])
    modes = ["probe", "worker", "bare-worker"]  # the workers are the probe's own children
    parser.add_argument("mode", nargs="?", choices=modes, default="probe", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=2000, help="open runs per worker, measured (default 2000)")
    parser.add_argument("--steps", type=int, default=4, help="RSS readings after the first (default 4)")
    parser.add_argument("--warm", type=int, default=200, help="runs opened before the first reading (default 200)")
    parser.add_argument("--pause", type=float, default=1.0, help="seconds before each reading (default 1)")
    parser.add_argument(
        "--variant",
        action="append",
        help="NAME[:ENV=VALUE,...]: an incident worker of its own with these settings (repeatable; default: main)",
    )
    parser.add_argument(
        "--shape",
        action="append",
        help="a bare workflow of bench/memory_shapes.py on a worker of its own (TYPE; TYPE+all: started with an "
        "incident's search attributes, memo, summary and details; +attrs: the search attributes alone; +meta: the "
        "summary and details alone; repeatable)",
    )
    parser.add_argument(
        "--lean-shapes",
        action="store_true",
        help="run the bare timer and the shapes under the incident worker's sandbox runner (workers/sandbox_runner.py) "
        "instead of the SDK's, as the bench's bare worker does",
    )
    parser.add_argument("--trace", action="store_true", help="trace the workers' Python heap (tracemalloc)")
    parser.add_argument("--top", type=int, default=25, help="lines of the tracemalloc report (default 25)")
    arguments = parser.parse_args(argv)
    if arguments.mode == "worker":
        run_worker()
    elif arguments.mode == "bare-worker":
        run_bare_worker()
    else:
        asyncio.run(probe(arguments))


if __name__ == "__main__":
    main()
    from infra.exiting import exit_process

    exit_process(0)
