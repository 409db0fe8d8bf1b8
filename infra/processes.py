"""Child processes that cannot outlive the process that started them.

Every supervisor here (`incidents dev`, the tests' and the benchmark's stacks) starts its children in
a session of their own, so that Ctrl-C in the terminal reaches the supervisor alone and it can stop
them in order. Such a child gets neither the terminal's signals nor word of its parent's death: a
`kill -9` of the supervisor (the OOM killer, a stray kill) would leave it running and holding its
port. So each child asks the kernel, before it executes its program, for SIGTERM when its parent
dies (Linux's `prctl(PR_SET_PDEATHSIG)`, kept across `execve`), and checks that the parent did not
die before it asked.

The kernel sends the signal when the *thread* that started the child ends, not only the process:
spawn from the main thread, or from one that lives as long as the supervisor (not from a thread
pool's). Where there is no such call (macOS), children start as before, untied.
"""

from __future__ import annotations

import ctypes
import functools
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, overload

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
