"""infra/processes.py: a child started in a session of its own still dies with its parent."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

from infra.processes import EPHEMERAL_PORTS, free_port, spawn
from tests.running_stack import ROOT, alive

SUPERVISOR = """
import signal, time
from infra.processes import spawn
signal.signal(signal.SIGTERM, lambda *_: None)  # a handler of its own, as `incidents dev` has
child = spawn(["sleep", "300"])
print(child.pid, flush=True)
time.sleep(300)
"""


def test_a_child_in_its_own_session_dies_when_its_parent_is_killed():
    supervisor = spawn([sys.executable, "-c", SUPERVISOR], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert supervisor.stdout is not None
    child = int(supervisor.stdout.readline())
    try:
        assert alive(child)
        assert os.getsid(child) == child != os.getsid(supervisor.pid), "the child leads a session of its own"
        os.kill(supervisor.pid, signal.SIGKILL)
        supervisor.wait(10)
        deadline = time.monotonic() + 5
        while alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(child), "the child outlived its parent"
    finally:
        if alive(child):
            os.kill(child, signal.SIGKILL)
        if supervisor.poll() is None:
            supervisor.kill()


def test_a_child_whose_parent_died_before_the_tie_was_made_ends_itself():
    """The parent may die between fork and the child's prctl: the kernel then has nobody to watch,
    so the child must notice (its parent is not the one that started it) and end at once."""
    script = textwrap.dedent(
        """
        import os, subprocess
        from infra.processes import die_with_parent
        tie = die_with_parent()  # made for this process...
        pid = os.fork()
        if pid == 0:  # ...but run in a child of another one, as if this one had died and been replaced
            child = subprocess.Popen(["sleep", "30"], preexec_fn=tie)
            try:
                print(child.wait(10), flush=True)
            except subprocess.TimeoutExpired:
                child.kill()
                print("still running", flush=True)
            os._exit(0)
        os.waitpid(pid, 0)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=30, check=False
    )
    assert result.stdout.strip() == str(-signal.SIGTERM), result.stdout + result.stderr


def test_free_ports_lie_outside_the_kernels_ephemeral_range_and_are_not_handed_out_twice():
    """The dev server's internal services and every outgoing connection take ports from the ephemeral
    range: a port chosen there can be gone by the time a child binds it (CI saw "address already in
    use" on a stack's codec server)."""
    low, high = (int(part) for part in EPHEMERAL_PORTS.read_text().split())
    ports = [free_port() for _ in range(300)]
    assert not [port for port in ports if low <= port <= high]
    assert len(set(ports)) == len(ports)
    for port in ports[:20]:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))  # free, as promised
