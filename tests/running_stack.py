"""Start `incidents dev` (or `make run`) as a user would, on free ports, and stop it with Ctrl-C."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from infra.processes import Child, ChildFailed, Supervisor, free_port, printed

ROOT = Path(__file__).resolve().parent.parent


def write_config(folder: Path) -> Path:
    config = {
        "namespace": "default",
        "data_dir": str(folder / "data"),
        "temporal": {"port": free_port(), "ui_port": free_port()},
        "api": {"port": free_port()},
        "sandboxes": {"payments_port": free_port(), "notify_port": free_port()},
        "worker": {"metrics_port": free_port()},
        "codec_server": {"port": free_port()},
        "log_format": "json",
    }
    path = folder / "temporal-dev.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def stack_env(config: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TEMPORAL_", "INCIDENTS_", "SANDBOX_"))}
    env["INCIDENTS_DEV_CONFIG"] = str(config)
    return {**env, **(extra or {})}


UP = "Ctrl-C stops everything"  # the banner's last line


@dataclass
class RunningStack:
    config: Path
    supervisor: Supervisor
    child: Child
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def process(self) -> subprocess.Popen[Any]:
        assert self.child.process is not None
        return self.child.process

    @property
    def env(self) -> dict[str, str]:
        return stack_env(self.config, self.extra_env)

    @property
    def settings(self) -> dict:
        return dict(yaml.safe_load(self.config.read_text()))

    def token(self, role: str) -> str:
        for line in self.child.lines:
            parts = line.split()
            if len(parts) == 3 and parts[0] == role and parts[1] == f"dev-{role}":
                return parts[2]
        raise AssertionError(f"no {role} token in the banner:\n{self.output}")

    @property
    def output(self) -> str:
        return self.child.output

    def children(self) -> list[int]:
        """The processes `incidents dev` started (each leads its own process group)."""
        return [pid for pid, parent in _parents().items() if parent == self.process.pid]

    def descendants(self) -> list[int]:
        """Every process below `incidents dev`: its children and whatever they started in turn."""
        return descendants(self.process.pid)

    def interrupt(self, within: float = 40) -> int:
        """Ctrl-C, as a terminal sends it: SIGINT to the foreground process group."""
        self.child.signal(signal.SIGINT)
        return self.child.wait(within)


def launch(config: Path, argv: list[str] | None = None, extra_env: dict[str, str] | None = None) -> RunningStack:
    """`incidents dev` started, its output read as it comes; not waited for."""
    child = Child(
        "incidents dev",
        argv or [sys.executable, "-m", "starter.cli", "dev"],
        ready=printed(UP),
        capture_output=True,
        env=stack_env(config, extra_env),
        cwd=ROOT,
    )
    supervisor = Supervisor()
    # Should the test run die, `incidents dev` gets SIGTERM and stops its stack as on Ctrl-C.
    supervisor.start(child)
    return RunningStack(config, supervisor, child, dict(extra_env or {}))


def start(
    config: Path, argv: list[str] | None = None, within: float = 90, extra_env: dict[str, str] | None = None
) -> RunningStack:
    """`incidents dev` started and up (its banner printed)."""
    stack = launch(config, argv, extra_env)
    try:
        stack.supervisor.wait_ready(stack.child, within)
    except ChildFailed:
        stack.child.kill()
        raise AssertionError(f"the stack did not come up:\n{stack.output}") from None
    return stack


def _parents() -> dict[int, int]:
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
    return parents


def descendants(root: int) -> list[int]:
    parents = _parents()
    found: list[int] = []
    below = [root]
    while below:
        pid = below.pop()
        children = [child for child, parent in parents.items() if parent == pid]
        found += children
        below += children
    return found


def _listening_sockets() -> dict[str, int]:
    """Socket inode -> port of every TCP socket listening in this network namespace."""
    found = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "0A":  # LISTEN
                    found[fields[9]] = int(fields[1].rsplit(":", 1)[1], 16)
    return found


def listening_ports(pids: list[int]) -> set[int]:
    """The TCP ports these processes listen on."""
    sockets = _listening_sockets()
    ports = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in (Path("/proc") / str(pid) / "fd").iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if target.startswith("socket:[") and target[8:-1] in sockets:
                        ports.add(sockets[target[8:-1]])
    return ports


def ports_listened() -> set[int]:
    """Every TCP port some process listens on."""
    return set(_listening_sockets().values())


def alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def cli(
    stack_or_config: RunningStack | Path, *args: str, timeout: float = 60, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "starter.cli", *args],
        cwd=ROOT,
        env=stack_or_config.env if isinstance(stack_or_config, RunningStack) else stack_env(stack_or_config, extra_env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def listed(stack: RunningStack, customer: str) -> list[dict[str, object]]:
    """`incidents list --customer CUSTOMER --json`, asked again until visibility has caught up (or 10 s)."""
    rows: list[dict[str, object]] = []
    for _ in range(50):
        rows = json.loads(cli(stack, "list", "--customer", customer, "--json").stdout)
        if rows:
            break
        time.sleep(0.2)
    return rows
