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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from bench.bare import BareTimer
from infra.connection import data_converter
from infra.telemetry import client_interceptors
from workers.worker import workflow_runner
from workflows.incident_workflow import IncidentWorkflow

FIXTURES = Path(__file__).parent / "replay_fixtures"
WARM_UP = 20


@dataclass(frozen=True)
class Subject:
    name: str
    replayer: Replayer
    history: WorkflowHistory


def incident_replayer() -> Replayer:
    """As the incident worker runs its workflows (workers/worker.py, infra/connection.py)."""
    return Replayer(
        workflows=[IncidentWorkflow],
        data_converter=data_converter(),
        workflow_runner=workflow_runner(),
        interceptors=client_interceptors(),
    )


def bare_replayer() -> Replayer:
    """As bench/bare_worker.py runs its workflows."""
    return Replayer(
        workflows=[BareTimer],
        workflow_runner=SandboxedWorkflowRunner(
            restrictions=SandboxRestrictions.default.with_passthrough_modules("bench")
        ),
    )


def subjects(names: Sequence[str] | None = None) -> list[Subject]:
    incident, bare = incident_replayer(), bare_replayer()
    chosen = [
        Subject("incident_waiting", incident, _load("incident_waiting")),
        Subject("incident_escalated", incident, _load("incident_escalated")),
        Subject("bare_timer_woke", bare, _load("bare_timer_woke")),
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


async def cpu_ms_per_replay(subject: Subject, count: int, profile: cProfile.Profile | None = None) -> float:
    await replay_many(subject, WARM_UP)
    began = time.process_time()
    if profile is not None:
        profile.enable()
    await replay_many(subject, count)
    if profile is not None:
        profile.disable()
    return 1000 * (time.process_time() - began) / count


def print_profile(profile: cProfile.Profile, top: int) -> None:
    for order in ("cumulative", "tottime"):
        out = io.StringIO()
        pstats.Stats(profile, stream=out).strip_dirs().sort_stats(order).print_stats(top)
        print(out.getvalue())


async def main(replays: int, rounds: int, names: list[str], profile: bool, top: int) -> None:
    chosen = subjects(names)
    figures: dict[str, list[float]] = {s.name: [] for s in chosen}
    for _ in range(rounds):  # interleaved, so that each history sees the same moments of a shared machine
        for subject in chosen:
            figures[subject.name].append(await cpu_ms_per_replay(subject, replays))
    bare = figures.get("bare_timer_woke")
    print(f"CPU ms per replay (process time, all threads), {replays} replays x {rounds} rounds, best and median:")
    for name, values in figures.items():
        ordered = sorted(values)
        ratio = f"  {ordered[0] / min(bare):.2f}x bare" if bare and name != "bare_timer_woke" else ""
        print(f"  {name:<20} {ordered[0]:6.2f} {ordered[len(ordered) // 2]:6.2f}{ratio}")
    if profile:
        for subject in chosen:
            profiler = cProfile.Profile()
            await cpu_ms_per_replay(subject, replays, profiler)
            print(f"=== {subject.name}: {replays} replays")
            print_profile(profiler, top)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replays", type=int, default=200, help="replays per history and round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the best and the median are printed")
    parser.add_argument("--only", nargs="*", default=[], help="histories by name (default: all)")
    parser.add_argument("--profile", action="store_true", help="cProfile the replays: top functions")
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    asyncio.run(main(args.replays, args.rounds, args.only, args.profile, args.top))
