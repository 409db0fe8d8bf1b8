"""The benchmark's own stack: child processes on free ports, started and stopped by the benchmark alone."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.service import RPCError

from infra.binaries import dev_server_argv
from infra.processes import spawn as spawn_tied
from workflows.search_attributes import batch_operation_flags, dev_server_flags

ROOT = Path(__file__).resolve().parent.parent
RUN_MARKER = "INCIDENTS_BENCH_RUN"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_kb(pid: int) -> int:
    """Resident memory of one process, as the kernel counts it."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


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


@dataclass
class Processes:
    """Every child in its own process group, so stopping one stops whatever it started too, and tied to
    the benchmark: should it be killed outright, the kernel sends each child SIGTERM. Spawn from the
    main thread (the event loop's), never from a thread pool's: the tie is to the spawning thread."""

    folder: Path
    children: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        with open(self.folder / f"{name}.log", "ab") as log:
            child = spawn_tied(
                argv,
                # The marker lets anyone find this run's processes (the smoke test checks none outlive it).
                env={**os.environ, **(env or {}), RUN_MARKER: str(self.folder)},
                stdout=log,
                stderr=log,
                cwd=ROOT,
            )
        self.children.append(child)
        return child

    def python(self, name: str, module: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        return self.spawn(name, [sys.executable, "-m", module, *args], env)

    def stop_one(self, child: subprocess.Popen[bytes]) -> None:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGTERM)
        try:
            child.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait(5)

    def stop(self) -> None:
        for child in reversed(self.children):
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGTERM)
        for child in reversed(self.children):
            self.stop_one(child)

    def log_tail(self, name: str, lines: int = 20) -> str:
        path = self.folder / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


async def start_dev_server(
    processes: Processes, name: str, pragmas: dict[str, str] | None
) -> tuple[str, subprocess.Popen[bytes]]:
    """A dev server of our own on a SQLite file in the run's folder; `pragmas={}` keeps SQLite's defaults."""
    port = free_port()
    child = processes.spawn(
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
    )
    address = f"127.0.0.1:{port}"

    async def ready() -> bool:
        if child.poll() is not None:
            raise RuntimeError(f"dev server {name} exited: {processes.log_tail(name)}")
        try:
            return bool(await (await Client.connect(address)).service_client.check_health())
        except (RuntimeError, RPCError):  # not listening yet
            return False

    await until(ready, 60, f"dev server {name}", every=0.2)
    return address, child


async def wait_polling(client: Client, task_queue: str, child: subprocess.Popen[bytes], name: str) -> None:
    """Until this worker process polls its task queue (its identity starts with its pid)."""

    async def polling() -> bool:
        if child.poll() is not None:
            raise RuntimeError(f"{name} exited: {child.args!r}")
        response = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=client.namespace,
                task_queue=TaskQueue(name=task_queue),
                task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
            )
        )
        return any(p.identity.startswith(f"{child.pid}@") for p in response.pollers)

    await until(polling, 60, f"{name} polling {task_queue}", every=0.2)


async def http_ready(url: str, child: subprocess.Popen[bytes], name: str) -> None:
    async def ready() -> bool:
        if child.poll() is not None:
            raise RuntimeError(f"{name} exited: {child.args!r}")
        try:
            async with httpx.AsyncClient(timeout=2) as http:
                return (await http.get(url)).status_code == 200
        except httpx.HTTPError:
            return False

    await until(ready, 60, url, every=0.2)
