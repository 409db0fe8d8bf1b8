"""Ending a process that used Temporal's native runtime."""

from __future__ import annotations

import os
import sys
from typing import NoReturn


def exit_process(code: int) -> NoReturn:
    """Leave without interpreter finalisation: the runtime's native threads can abort it
    ("Fatal Python error: PyGILState_Release", exit status -6) after the work is done, which
    would turn a finished command's exit code into a crash."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:
        pass
    os._exit(code)
