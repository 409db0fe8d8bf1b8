"""Child processes that cannot outlive the process that started them, and the one supervisor of them.

Every supervisor here (`incidents dev`, the tests' and the benchmark's stacks) is a `Supervisor`: it
starts named children in order, waits until each is ready, tells which one died (its exit code and the
end of its output) and stops them in reverse order, SIGTERM first and SIGKILL after a grace period.

It starts its children in a session of their own, so that Ctrl-C in the terminal reaches the
supervisor alone and it can stop them in order. Such a child gets neither the terminal's signals nor
word of its parent's death: a `kill -9` of the supervisor (the OOM killer, a stray kill) would leave
it running and holding its port. So each child asks the kernel, before it executes its program, for
SIGTERM when its parent dies (Linux's `prctl(PR_SET_PDEATHSIG)`, kept across `execve`), and checks
that the parent did not die before it asked.

The kernel sends the signal when the *thread* that started the child ends, not only the process:
spawn from the main thread, or from one that lives as long as the supervisor (not from a thread
pool's). Where there is no such call (macOS), children start as before, untied.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import inspect
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

if TYPE_CHECKING:
    from temporalio.client import Client

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


@functools.cache
def _prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    function = ctypes.CDLL(None, use_errno=True).prctl
    function.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    function.restype = ctypes.c_int
    return function


def die_with_parent(signum: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A `preexec_fn` that ties the child to this process: `signum` reaches the child when this
    process (strictly, the calling thread) ends, however it ends. None where the OS cannot do it.

    It runs in the child between fork and exec, so it does as little as it can: no import, no
    lock, the signal's default action back, one system call and one comparison.
    """
    prctl = _prctl()
    if prctl is None:
        return None
    parent = os.getpid()
    catchable = signum not in (signal.SIGKILL, signal.SIGSTOP)

    def tie() -> None:
        # A handler the parent set for the signal lives on until exec and would swallow it there.
        if catchable:
            signal.signal(signum, signal.SIG_DFL)
        if prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")
        if os.getppid() != parent:  # the parent died before the tie was made: nobody will send it
            os.kill(os.getpid(), signum)

    return tie


@overload
def spawn(
    argv: Sequence[str],
    *,
    own_session: bool = True,
    death_signal: int = signal.SIGTERM,
    text: Literal[False] = False,
    extra_env: Mapping[str, str] | None = None,
    **options: Any,
) -> subprocess.Popen[bytes]: ...


@overload
def spawn(
    argv: Sequence[str],
    *,
    own_session: bool = True,
    death_signal: int = signal.SIGTERM,
    text: Literal[True],
    extra_env: Mapping[str, str] | None = None,
    **options: Any,
) -> subprocess.Popen[str]: ...


def spawn(
    argv: Sequence[str],
    *,
    own_session: bool = True,
    death_signal: int = signal.SIGTERM,
    text: bool = False,
    extra_env: Mapping[str, str] | None = None,
    **options: Any,
) -> subprocess.Popen[Any]:
    """`subprocess.Popen(argv, **options)` for a child that gets `death_signal` when this process dies.

    With `own_session` (the default) the child leads a session and process group of its own: the
    terminal's Ctrl-C does not reach it, and `os.killpg(child.pid, ...)` stops it with whatever it
    starts. Call it from the main thread or a thread that lives as long as this process.

    `extra_env` is added to what the child inherits (this process's environment, or `env`): how a
    process passes settings to its children without writing to its own os.environ.
    """
    if "preexec_fn" in options or "start_new_session" in options:
        raise TypeError("spawn() sets preexec_fn and start_new_session itself")
    if extra_env is not None:
        options["env"] = {**(options.get("env") or os.environ), **extra_env}
    return subprocess.Popen(
        argv, text=text, start_new_session=own_session, preexec_fn=die_with_parent(death_signal), **options
    )


# --- the supervisor ---

# Whether a started child serves yet; given the child (its pid, its output), it may ask over the network.
ReadyCheck = Callable[["Child"], bool | Awaitable[bool]]


@dataclass(eq=False)
class Child:
    """One child process as a supervisor runs it: what to start, how to tell it is ready, where its output goes."""

    name: str
    argv: Sequence[str]
    ready: ReadyCheck | None = None  # None: ready once started
    summary: str = ""  # what it is and where it listens, for a banner
    log: Path | None = None  # its stdout and stderr, appended; None: this process's (or `capture_output`)
    capture_output: bool = False  # its stdout and stderr as text in `lines`, read as they come
    env: Mapping[str, str] | None = None  # its whole environment; None: this process's
    extra_env: Mapping[str, str] = field(default_factory=dict)  # on top of that: settings for this child alone
    cwd: Path | None = None
    death_signal: int = signal.SIGTERM  # what the kernel sends it should the supervisor die without stopping it
    process: subprocess.Popen[Any] | None = field(default=None, init=False)
    lines: list[str] = field(default_factory=list, init=False)  # with `capture_output`, this run's
    _reader: threading.Thread | None = field(default=None, init=False, repr=False)

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError(f"{self.name} was never started")
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, signum: int) -> None:
        """`signum` to its process group: to whatever it started as well."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signum)

    def kill(self) -> int:
        """SIGKILL, as the OOM killer would: no chance to clean up."""
        self.signal(signal.SIGKILL)
        return self.wait()

    def wait(self, timeout: float | None = None) -> int:
        """Its exit code, once it has exited and what it printed has been read."""
        if self.process is None:
            raise RuntimeError(f"{self.name} was never started")
        code = self.process.wait(timeout)
        if self._reader is not None:
            # Bounded: what it started may still hold the pipe open.
            self._reader.join(timeout=5)
        return code

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def tail(self, count: int = 20) -> str:
        """The last lines it printed (captured, or from its log file), for an error message."""
        if self.capture_output:
            return "".join(self.lines[-count:]).rstrip()
        if self.log is not None and self.log.exists():
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-count:])
        return ""


class ChildFailed(RuntimeError):
    """A child exited, or did not become ready in time: which one, its exit code and the end of its output."""

    def __init__(self, child: Child, problem: str) -> None:
        self.name, self.returncode, self.tail = child.name, child.returncode, child.tail()
        where = f" (see {child.log})" if child.log else ""
        last_words = f"; it printed last:\n{self.tail}" if self.tail else ""
        super().__init__(f"{child.name} {problem}{where}{last_words}")


class Interrupted(Exception):
    """Asked to stop while a child was still starting."""


@dataclass
class Supervisor:
    """Named children, started in order, each in a session of its own and tied to this process (see above);
    stopped in reverse order, SIGTERM first and SIGKILL for any still there after `grace` seconds.

    Start children from the thread that lives as long as the supervisor (the main thread, the event
    loop's): the kernel's tie is to the spawning thread.
    """

    extra_env: Mapping[str, str] = field(default_factory=dict)  # for every child, under its own extra_env
    grace: float = 10.0
    children: list[Child] = field(default_factory=list)

    def start(self, child: Child) -> Child:
        """Start it (again, should it have been started and ended before: a restart keeps its place)."""
        if child.alive():
            raise RuntimeError(f"{child.name} is running already")
        options: dict[str, Any] = {
            "extra_env": {**self.extra_env, **child.extra_env},
            "death_signal": child.death_signal,
            "cwd": child.cwd,
        }
        if child.env is not None:
            options["env"] = dict(child.env)
        if child.capture_output:
            child.lines.clear()
            process = spawn(child.argv, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **options)
            child.process = process
            child._reader = threading.Thread(target=_read_lines, args=(process, child.lines), daemon=True)
            child._reader.start()
        elif child.log is not None:
            with open(child.log, "ab") as log:  # the child has its own copy
                child.process = spawn(child.argv, stdout=log, stderr=log, **options)
        else:
            child.process = spawn(child.argv, **options)
        if child not in self.children:
            self.children.append(child)
        return child

    async def until_ready(
        self, child: Child, within: float, *, stopping: Callable[[], bool] | None = None, every: float = 0.2
    ) -> None:
        """Until its `ready` check passes. ChildFailed should it exit first or not be ready `within` seconds;
        Interrupted as soon as `stopping()` says so."""
        deadline = time.monotonic() + within
        while True:
            answer = True if child.ready is None else child.ready(child)
            if inspect.isawaitable(answer):
                answer = await answer
            if answer:
                return
            if stopping is not None and stopping():
                raise Interrupted
            if not child.alive():
                raise ChildFailed(child, f"exited with code {child.returncode}")
            if time.monotonic() > deadline:
                raise ChildFailed(child, f"did not become ready within {within:.0f}s")
            await asyncio.sleep(every)

    def wait_ready(
        self, child: Child, within: float, *, stopping: Callable[[], bool] | None = None, every: float = 0.2
    ) -> None:
        """`until_ready` for a caller without an event loop."""
        asyncio.run(self.until_ready(child, within, stopping=stopping, every=every))

    def watch(self, stopping: Callable[[], bool], every: float = 0.3) -> Child | None:
        """Block until asked to stop (None) or a child exits (that child)."""
        while not stopping():
            for child in self.children:
                if not child.alive():
                    return child
            time.sleep(every)
        return None

    def stop_child(self, child: Child) -> None:
        child.signal(signal.SIGTERM)
        _reap(child, time.monotonic() + self.grace)

    def stop(self) -> None:
        """Every child, in reverse order: all are told at once, then each gets what is left of the grace period."""
        for child in reversed(self.children):
            child.signal(signal.SIGTERM)
        deadline = time.monotonic() + self.grace
        for child in reversed(self.children):
            _reap(child, deadline)
        self.children.clear()

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def _reap(child: Child, deadline: float) -> None:
    if child.process is None:
        return
    try:
        child.wait(max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        child.signal(signal.SIGKILL)
        child.wait()


def _read_lines(process: subprocess.Popen[str], lines: list[str]) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        lines.append(line)


# --- readiness checks ---


EPHEMERAL_PORTS = Path("/proc/sys/net/ipv4/ip_local_port_range")
_handed_out: set[int] = set()


@functools.cache
def _ports_the_kernel_never_picks() -> tuple[int, ...]:
    try:
        low, high = (int(part) for part in EPHEMERAL_PORTS.read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 60999  # Linux's default
    return tuple(port for port in range(10000, 65536) if not low <= port <= high)


def free_port() -> int:
    """A TCP port nobody listens on right now, for a child to listen on later, chosen outside the
    kernel's ephemeral range.

    A port the kernel hands out for `bind(port 0)` is free only until the kernel hands it out again:
    to the dev server's internal services (which bind port 0 as they start) or to any outgoing
    connection. Between our choosing it and the child binding it, either can take it, and the child
    fails with "address already in use" (a stack test did, in CI). Outside the ephemeral range the
    kernel assigns no port by itself, so only someone asking for that very number can take it.
    """
    candidates = _ports_the_kernel_never_picks()
    for _ in range(200):
        port = random.choice(candidates)
        if port in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    with socket.socket() as sock:  # all taken: a port the kernel chooses beats none
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def listening(host: str, port: int) -> ReadyCheck:
    """Ready once something accepts connections on host:port."""
    return lambda _: port_open(host, port)


def http_ok(url: str) -> Callable[[Child], Awaitable[bool]]:
    """Ready once GET `url` answers 2xx (a health endpoint)."""
    import httpx

    async def check(_: Child) -> bool:
        try:
            async with httpx.AsyncClient(timeout=2.0) as http:
                return (await http.get(url)).is_success
        except httpx.HTTPError:
            return False

    return check


def printed(text: str) -> ReadyCheck:
    """Ready once the child (started with `capture_output`) has printed `text`."""
    return lambda child: text in child.output


def temporal_serving(host: str, port: int) -> Callable[[Child], Awaitable[bool]]:
    """Ready once a Temporal server on host:port answers its health check."""

    async def check(_: Child) -> bool:
        if not port_open(host, port):  # (the client's connection attempt takes long to fail)
            return False
        from temporalio.client import Client
        from temporalio.service import RPCError

        try:
            return bool(await (await Client.connect(f"{host}:{port}")).service_client.check_health())
        except (RuntimeError, RPCError):
            return False

    return check


def worker_polling(client: Client, task_queue: str) -> Callable[[Child], Awaitable[bool]]:
    """Ready once the child, a worker process, polls `task_queue` (a worker's identity starts with its pid)."""

    async def check(child: Child) -> bool:
        from temporalio.api.enums.v1 import TaskQueueType
        from temporalio.api.taskqueue.v1 import TaskQueue
        from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

        response = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=client.namespace,
                task_queue=TaskQueue(name=task_queue),
                task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
            )
        )
        return any(poller.identity.startswith(f"{child.pid}@") for poller in response.pollers)

    return check
