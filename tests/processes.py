"""Real processes for fault tests: a dev server on a SQLite file and worker processes, each of
which a test can kill with SIGKILL and start again. Each dies with the test run, however it ends."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest, GetSystemInfoRequest
from temporalio.client import Client
from temporalio.service import RPCError

from infra.binaries import dev_server_argv
from infra.connection import data_converter
from infra.processes import spawn
from tests.sandbox_servers import free_port
from workflows.search_attributes import dev_server_flags

ROOT = Path(__file__).resolve().parent.parent


async def _until(check: Callable[[], Awaitable[bool]], within: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what} not within {within}s")
        await asyncio.sleep(0.1)


@dataclass
class DevServerProcess:
    """`temporal server start-dev` on a SQLite file, as `incidents dev` runs it."""

    db: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        # Here, not in a thread pool's thread: the child gets SIGTERM when the thread that started it ends.
        self._spawn()
        await self._wait_ready()

    def _spawn(self) -> None:
        log = open(self.db.with_suffix(".log"), "ab")  # noqa: SIM115 - the child owns it
        self.process = spawn(
            dev_server_argv(
                str(self.db),
                self.port,
                extra=[*dev_server_flags(), *("--http-port", str(free_port()), "--metrics-port", str(free_port()))],
            ),
            stdout=log,
            stderr=log,
        )

    async def _wait_ready(self) -> None:
        async def ready() -> bool:
            try:
                client = await Client.connect(self.address)
                await client.workflow_service.get_system_info(GetSystemInfoRequest())
                return True
            except (RuntimeError, RPCError):
                return False

        await _until(ready, 30, f"dev server on {self.address}")

    def kill9(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)

    async def client(self) -> Client:
        return await Client.connect(self.address, data_converter=data_converter())


@dataclass
class WorkerProcess:
    """`python -m workers.main` (what `incidents worker` runs), in its own process group."""

    address: str
    task_queue: str
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {
            **os.environ,
            **self.env,
            "TEMPORAL_ADDRESS": self.address,
            "INCIDENTS_TASK_QUEUE": self.task_queue,
            "PYTHONPATH": str(ROOT),
        }
        with open(self.log, "ab") as log:
            self.process = spawn([sys.executable, "-m", "workers.main"], env=env, stdout=log, stderr=log, cwd=ROOT)

    @property
    def identity_prefix(self) -> str:
        assert self.process is not None
        return f"{self.process.pid}@"

    async def wait_polling(self, client: Client, within: float = 30) -> None:
        async def polling() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"worker exited with {self.process.returncode}; see {self.log}")
            response = await client.workflow_service.describe_task_queue(
                DescribeTaskQueueRequest(
                    namespace=client.namespace,
                    task_queue=TaskQueue(name=self.task_queue),
                    task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
                )
            )
            return any(p.identity.startswith(self.identity_prefix) for p in response.pollers)

        await _until(polling, within, f"worker {self.log.name} polling {self.task_queue}")

    def kill9(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
