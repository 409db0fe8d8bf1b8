"""Worker CPU per replay, without a server: `python -m bench.replay_probe [--replays N] [--profile]`.

What an evicted incident costs the worker when it wakes is mostly the replay of its history (the bench's (8):
evicted wake-ups against cached ones). This replays stored histories (bench/replay_fixtures, recorded by
`python -m bench.record_replay_fixtures`) in this process with the production set-up (the project's data
converter, the worker's sandboxed runner with its passed-through modules, the client's tracing interceptor,
which a worker inherits), many times each after a warm-up, and prints the process's CPU (all threads: the
Rust core's too) per replay:

- incident_waiting: an incident opened as (4) and (8) open theirs, waiting on line 1: what a query or desk
  read of an evicted incident replays;
- incident_escalated: the same after its line-1 deadline escalated it: what an evicted wake-up replays, and
  the wake itself;
- bare_timer_woke: the bench's BareTimer after its timer fired, for comparison.
- bare_escalation_woke: BareEscalation after its timer fired into an escalation's page, upsert and next timer: raw
  Temporal's replay of the same commands, without the incident's opening and code.

All the replays of one history go through one replay worker, as a real worker's go through one poller: the
per-replay figure holds no replayer start-up. `--profile` profiles the replays of each history (cProfile,
after the warm-up) and prints the top functions by cumulative and by own time.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from temporalio.client import WorkflowHistory
from temporalio.worker import Interceptor as WorkerInterceptor
from temporalio.worker import Replayer
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from bench.bare import BareEscalation, BareTimer
from infra.connection import data_converter
from infra.telemetry import client_interceptors
from workers.worker import workflow_runner
from workflows.incident_workflow import IncidentWorkflow

FIXTURES = Path(__file__).parent / "replay_fixtures"
WARM_UP = 20
T = TypeVar("T")


class ProfiledExecutor(ThreadPoolExecutor):
    """The executor the SDK runs workflow activations in; with `--profile` each activation under one profiler.

    cProfile sees only the thread that enables it, and the workflow code runs in these threads, not in the
    event loop's: without this the profile shows the loop waiting for them.
    """

    def __init__(self) -> None:
        super().__init__(max_workers=1, thread_name_prefix="workflow-activations")
        self.profile: cProfile.Profile | None = None
        self.cpu_seconds = 0.0  # the activations' own CPU: the workflow code, inside the sandbox

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        return super().submit(self._timed, fn, *args, **kwargs)

    def _timed(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        began = time.thread_time()
        try:
            if self.profile is not None:
                return self.profile.runcall(fn, *args, **kwargs)
            return fn(*args, **kwargs)
        finally:
            self.cpu_seconds += time.thread_time() - began


@dataclass(frozen=True)
class Subject:
    name: str
    replayer: Replayer
    history: WorkflowHistory
    executor: ProfiledExecutor


def incident_replayer(executor: ProfiledExecutor) -> Replayer:
    """As the incident worker runs its workflows (workers/worker.py, infra/connection.py)."""
    return Replayer(
        workflows=[IncidentWorkflow],
        workflow_task_executor=executor,
        data_converter=data_converter(),
        workflow_runner=workflow_runner(),
        # A worker inherits its client's interceptors that are worker interceptors too (the tracing one).
        interceptors=[i for i in client_interceptors() if isinstance(i, WorkerInterceptor)],
    )


def bare_replayer(executor: ProfiledExecutor) -> Replayer:
    """As bench/bare_worker.py runs its workflows."""
    return Replayer(
        workflows=[BareTimer, BareEscalation],
        workflow_task_executor=executor,
        workflow_runner=SandboxedWorkflowRunner(
            restrictions=SandboxRestrictions.default.with_passthrough_modules("bench")
        ),
    )


def subjects(names: Sequence[str] | None = None) -> list[Subject]:
    executor = ProfiledExecutor()
    incident, bare = incident_replayer(executor), bare_replayer(executor)
    chosen = [
        Subject("incident_waiting", incident, _load("incident_waiting"), executor),
        Subject("incident_escalated", incident, _load("incident_escalated"), executor),
        Subject("bare_timer_woke", bare, _load("bare_timer_woke"), executor),
        Subject("bare_escalation_woke", bare, _load("bare_escalation_woke"), executor),
    ]
    return [s for s in chosen if not names or s.name in names]


def _load(name: str) -> WorkflowHistory:
    path = FIXTURES / f"{name}.json"
    return WorkflowHistory.from_json(name, path.read_text())


async def replay_many(subject: Subject, count: int) -> None:
    """`count` replays of the history through one replay worker; each must replay cleanly."""
    failures = []
    async with subject.replayer.workflow_replay_iterator(_copies(subject.history, count)) as results:
        async for result in results:
            if result.replay_failure is not None:
                failures.append(result.replay_failure)
    if failures:
        raise SystemExit(f"{subject.name}: {len(failures)} of {count} replays failed: {failures[0]!r}")


async def _copies(history: WorkflowHistory, count: int):  # type: ignore[no-untyped-def]
    for n in range(count):
        # A run id of its own each: the replay worker caches by run.
        yield WorkflowHistory(f"{history.workflow_id}-{n}", history.events)


async def cpu_ms_per_replay(subject: Subject, count: int, profile: bool = False) -> tuple[Cost, Profiles | None]:
    """The process's CPU per replay, and its activations' thread's (the workflow code's)."""
    await replay_many(subject, WARM_UP)
    profiles = Profiles(cProfile.Profile(), cProfile.Profile()) if profile else None
    activations_before = subject.executor.cpu_seconds
    began, loop_began = time.process_time(), time.thread_time()
    if profiles is not None:
        subject.executor.profile = profiles.activations
        profiles.loop.enable()
    await replay_many(subject, count)
    if profiles is not None:
        profiles.loop.disable()
        subject.executor.profile = None
    total, loop = time.process_time() - began, time.thread_time() - loop_began
    activations = subject.executor.cpu_seconds - activations_before
    return Cost(1000 * total / count, 1000 * activations / count, 1000 * loop / count), profiles


@dataclass(frozen=True)
class Cost:
    process_ms: float
    activations_ms: float  # the workflow code's thread
    loop_ms: float  # the event loop's: the SDK's conversions around each activation; the rest is Core's threads


@dataclass(frozen=True)
class Profiles:
    activations: cProfile.Profile  # the workflow code's thread
    loop: cProfile.Profile  # the event loop's: the SDK's conversions and Core's calls


def print_profile(profile: cProfile.Profile, top: int) -> None:
    for order in ("cumulative", "tottime"):
        out = io.StringIO()
        pstats.Stats(profile, stream=out).strip_dirs().sort_stats(order).print_stats(top)
        print(out.getvalue())


async def main(replays: int, rounds: int, names: list[str], profile: bool, top: int) -> None:
    chosen = subjects(names)
    figures: dict[str, list[Cost]] = {s.name: [] for s in chosen}
    for _ in range(rounds):  # interleaved, so that each history sees the same moments of a shared machine
        for subject in chosen:
            figures[subject.name].append((await cpu_ms_per_replay(subject, replays))[0])
    best = {name: min(costs, key=lambda c: c.process_ms) for name, costs in figures.items()}
    bare = best.get("bare_timer_woke")
    print(
        f"CPU ms per replay, {replays} replays x {rounds} rounds (the best round; the median process figure;"
        " the best round's split: the workflow code's thread, the event loop's, the rest: Core's threads):"
    )
    print(f"  {'history':<20} {'process':>8} {'median':>8} {'workflow':>9} {'loop':>6} {'other':>6}")
    for name, costs in figures.items():
        median = sorted(c.process_ms for c in costs)[len(costs) // 2]
        ratio = f"  {best[name].process_ms / bare.process_ms:.2f}x bare" if bare and name != "bare_timer_woke" else ""
        c = best[name]
        split = f"{c.activations_ms:9.2f} {c.loop_ms:6.2f} {c.process_ms - c.activations_ms - c.loop_ms:6.2f}"
        print(f"  {name:<20} {c.process_ms:8.2f} {median:8.2f} {split}{ratio}")
    if profile:
        for subject in chosen:
            _, profiles = await cpu_ms_per_replay(subject, replays, profile=True)
            assert profiles is not None
            print(f"=== {subject.name}: {replays} replays, the activations' thread")
            print_profile(profiles.activations, top)
            print(f"=== {subject.name}: {replays} replays, the event loop's thread")
            print_profile(profiles.loop, top)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replays", type=int, default=200, help="replays per history and round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the best and the median are printed")
    parser.add_argument("--only", nargs="*", default=[], help="histories by name (default: all)")
    parser.add_argument("--profile", action="store_true", help="cProfile the replays: top functions")
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    asyncio.run(main(args.replays, args.rounds, args.only, args.profile, args.top))
