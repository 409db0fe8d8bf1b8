"""infra/processes.py's Supervisor, with real child processes (small Python scripts, no server): it
starts them in order, waits until each is ready, names one that died with its exit code and last words,
and stops them in reverse order, SIGKILL for one that ignores SIGTERM."""

from __future__ import annotations

import signal
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from infra.processes import Child, ChildFailed, Interrupted, Supervisor, printed
from tests.running_stack import alive


def python(name: str, script: str, **options: Any) -> Child:
    return Child(name, [sys.executable, "-c", textwrap.dedent(script)], **options)


def polite(name: str, stopped: Path) -> Child:
    """Says it is ready once it has its SIGTERM handler; on SIGTERM writes its name to `stopped` and exits."""
    return python(
        name,
        f"""
        import signal, sys, time
        def stop(*_):
            with open({str(stopped)!r}, "a") as f:
                f.write({name!r} + "\\n")
            sys.exit(0)
        signal.signal(signal.SIGTERM, stop)
        print("ready", flush=True)
        time.sleep(60)
        """,
        ready=printed("ready"),
        capture_output=True,
    )


def test_children_start_in_order_each_ready_before_the_next_and_all_stop_on_sigterm(tmp_path: Path):
    stopped = tmp_path / "stopped"
    supervisor = Supervisor(grace=10)
    first, second = polite("first", stopped), polite("second", stopped)
    supervisor.start(first)
    supervisor.wait_ready(first, 20)
    assert first.alive() and first.output == "ready\n"
    supervisor.start(second)
    supervisor.wait_ready(second, 20)

    supervisor.stop()

    assert sorted(stopped.read_text().split()) == ["first", "second"], "each was told, and cleaned up"
    assert (first.returncode, second.returncode) == (0, 0), "each stopped on SIGTERM, no SIGKILL needed"
    assert supervisor.children == []


async def test_a_child_that_dies_while_starting_is_named_with_its_exit_code_and_last_words(tmp_path: Path):
    log = tmp_path / "broken.log"
    broken = python(
        "broken",
        """
        import sys
        print("reading settings")
        print("INCIDENTS_API_PORT: not a port", file=sys.stderr)
        sys.exit(3)
        """,
        ready=lambda _: False,
        log=log,
    )
    with Supervisor() as supervisor:
        supervisor.start(broken)
        with pytest.raises(ChildFailed) as failed:
            await supervisor.until_ready(broken, 20)
    assert (failed.value.name, failed.value.returncode) == ("broken", 3)
    message = str(failed.value)
    assert message.startswith(f"broken exited with code 3 (see {log})"), message
    assert "reading settings" in message and "INCIDENTS_API_PORT: not a port" in message, "the end of its log"


def test_a_child_that_ignores_sigterm_is_killed_once_the_grace_period_is_over():
    stubborn = python(
        "stubborn",
        """
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("ready", flush=True)
        time.sleep(60)
        """,
        ready=printed("ready"),
        capture_output=True,
    )
    supervisor = Supervisor(grace=1.5)
    supervisor.start(stubborn)
    supervisor.wait_ready(stubborn, 20)

    began = time.monotonic()
    supervisor.stop()
    took = time.monotonic() - began

    assert stubborn.returncode == -signal.SIGKILL
    assert 1.5 <= took < 10, f"SIGKILL after the grace period, not before and not much after ({took:.1f}s)"


def test_stopping_a_child_stops_what_it_started_too(tmp_path: Path):
    parent = python(
        "parent",
        """
        import subprocess, time
        helper = subprocess.Popen(["sleep", "60"])
        print(helper.pid, flush=True)
        time.sleep(60)
        """,
        ready=lambda child: bool(child.lines),
        capture_output=True,
    )
    with Supervisor() as supervisor:
        supervisor.start(parent)
        supervisor.wait_ready(parent, 20)
        helper = int(parent.lines[0])
        assert alive(helper)
    deadline = time.monotonic() + 5
    while alive(helper) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(helper), "the child's whole process group got the signal"


def test_a_child_not_ready_in_time_is_named_and_an_interrupted_start_says_so():
    sleeper = python("sleeper", "import time; time.sleep(60)", ready=lambda _: False)
    with Supervisor() as supervisor:
        supervisor.start(sleeper)
        with pytest.raises(ChildFailed, match=r"^sleeper did not become ready within 1s$"):
            supervisor.wait_ready(sleeper, 1, every=0.05)
        with pytest.raises(Interrupted):
            supervisor.wait_ready(sleeper, 20, stopping=lambda: True)
        assert sleeper.alive(), "the caller decides what to stop"


def test_watch_names_the_child_that_exits_and_a_restart_keeps_its_place():
    with Supervisor() as supervisor:
        steady = supervisor.start(python("steady", "import time; time.sleep(60)"))
        short = supervisor.start(python("short", "import sys, time; time.sleep(0.5); sys.exit(7)"))
        assert supervisor.watch(lambda: False, every=0.05) is short
        assert short.returncode == 7
        first_pid = steady.pid
        steady.kill()
        assert steady.returncode == -signal.SIGKILL and supervisor.watch(lambda: False) is steady
        supervisor.start(steady)
        assert steady.alive() and steady.pid != first_pid
        assert supervisor.children == [steady, short], "started again, it keeps its place in the order"
        assert supervisor.watch(lambda: True) is None, "asked to stop: nobody died"
        with pytest.raises(RuntimeError, match="steady is running already"):
            supervisor.start(steady)
