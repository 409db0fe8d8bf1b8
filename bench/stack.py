"""The benchmark's own stack: child processes on free ports, started and stopped by the benchmark alone."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from temporalio.exceptions import WorkflowAlreadyStartedError

from infra.binaries import dev_server_argv
from infra.processes import Child, ReadyCheck, Supervisor, free_port, temporal_serving
from workflows.domain.tickets import new_ticket_id
from workflows.search_attributes import batch_operation_flags, dev_server_flags

T = TypeVar("T")

ROOT = Path(__file__).resolve().parent.parent
RUN_MARKER = "INCIDENTS_BENCH_RUN"


def rss_kb(pid: int) -> int:
    """Resident memory of one process, as the kernel counts it."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


def cpu_seconds(pid: int) -> float:
    """CPU time (user and system) one process has used so far, as the kernel counts it."""
    # The fields after the command name, which is in brackets and may hold spaces: utime and stime are 14th and 15th.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def metric_totals(text: str) -> dict[str, float]:
    """A Prometheus text exposition's samples summed over their labels, by sample name (`x_total`, `y_count`)."""
    totals: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name = line.split("{", 1)[0].split(" ", 1)[0]
        totals[name] = totals.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
    return totals


class Laps:
    """Where a phase's wall time goes: the seconds since the last step, printed as each step ends."""

    def __init__(self) -> None:
        self.last = time.monotonic()

    def __call__(self, step: str) -> float:
        now = time.monotonic()
        seconds, self.last = now - self.last, now
        print(f"      {step}: {seconds:.1f}s", file=sys.stderr, flush=True)
        return seconds


async def until(check: Callable[[], Awaitable[bool]], within: float, what: str, every: float = 0.1) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not within {within:.0f}s")
        await asyncio.sleep(every)


async def bounded(limit: int, jobs: Iterable[Awaitable[Any]]) -> list[Any]:
    """Run the jobs with at most `limit` in flight; results in the jobs' order."""
    gate = asyncio.Semaphore(limit)

    async def run(job: Awaitable[Any]) -> Any:
        async with gate:
            return await job

    return await asyncio.gather(*(run(job) for job in jobs))


# A straight start draws a random ticket number: six base-32 characters, so among the thousands of incidents a
# full run keeps open one is now and then taken (a run of 2026-12-03 failed on one in (8)).
TICKET_ATTEMPTS = 3


async def started_with_a_free_ticket(start: Callable[[str], Awaitable[T]]) -> T:
    """`start(ticket)` with a new ticket number, and with another if that one is taken, as the product's opener does."""
    for _ in range(TICKET_ATTEMPTS - 1):
        try:
            return await start(new_ticket_id())
        except WorkflowAlreadyStartedError:
            continue
    return await start(new_ticket_id())


@dataclass
class Processes:
    """The benchmark's children, named after their log files in the run's folder; each carries the run's
    marker, so anyone can find this run's processes (the smoke test checks none outlive it)."""

    folder: Path
    supervisor: Supervisor = field(init=False)

    def __post_init__(self) -> None:
        self.supervisor = Supervisor(extra_env={RUN_MARKER: str(self.folder)}, grace=15)

    def start(self, name: str, argv: list[str], ready: ReadyCheck, env: dict[str, str] | None = None) -> Child:
        child = Child(name, argv, ready=ready, log=self.folder / f"{name}.log", extra_env=env or {}, cwd=ROOT)
        return self.supervisor.start(child)

    def python(self, name: str, module: str, *args: str, ready: ReadyCheck, env: dict[str, str] | None = None) -> Child:
        return self.start(name, [sys.executable, "-m", module, *args], ready, env)

    async def ready(self, *children: Child) -> None:
        await asyncio.gather(*(self.supervisor.until_ready(child, 60) for child in children))

    def stop_one(self, child: Child) -> None:
        self.supervisor.stop_child(child)

    def let_go(self, child: Child) -> None:
        """Told to stop, not waited for (a worker's graceful shutdown takes a second or two): `stop` reaps it."""
        child.signal(signal.SIGTERM)

    def stop(self) -> None:
        self.supervisor.stop()


async def start_dev_server(processes: Processes, name: str, pragmas: dict[str, str] | None) -> tuple[str, Child]:
    """A dev server of our own on a SQLite file in the run's folder; `pragmas={}` keeps SQLite's defaults."""
    port = free_port()
    child = processes.start(
        name,
        dev_server_argv(
            str(processes.folder / f"{name}.sqlite"),
            port,
            sqlite_pragmas=pragmas,
            extra=[
                *dev_server_flags(),
                *batch_operation_flags(),
                *("--http-port", str(free_port()), "--metrics-port", str(free_port())),
            ],
        ),
        temporal_serving("127.0.0.1", port),
    )
    await processes.ready(child)
    return f"127.0.0.1:{port}", child
