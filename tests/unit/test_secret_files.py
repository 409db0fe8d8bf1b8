"""Token and key files are their owner's alone from the moment they exist, whatever the umask: never a
file created readable by others and narrowed afterwards."""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.codec import load_keys, write_new_keys
from starter.auth import load_tokens, write_dev_tokens

OTHERS = stat.S_IRWXG | stat.S_IRWXO


class _Watch:
    """While active, at every file-system operation Python performs (its audit events: open, chmod,
    rename, ...), note the mode of every file in one folder: a file that exists with bits for group or
    others at any of those moments was readable by them for a while, however short."""

    def __init__(self) -> None:
        self.folder: Path | None = None
        self.seen: list[tuple[str, str, int]] = []
        self._inside = False

    def __call__(self, event: str, _: tuple[Any, ...]) -> None:
        if self.folder is None or self._inside or not event.startswith(("open", "os.")):
            return
        self._inside = True  # scandir and stat raise audit events of their own
        try:
            with os.scandir(self.folder) as entries:
                for entry in entries:
                    self.seen.append((event, entry.name, stat.S_IMODE(entry.stat(follow_symlinks=False).st_mode)))
        except OSError:
            pass
        finally:
            self._inside = False


_WATCH = _Watch()
sys.addaudithook(_WATCH)  # hooks cannot be removed: it does nothing unless a test sets a folder


@contextmanager
def watching(folder: Path) -> Iterator[list[tuple[str, str, int]]]:
    _WATCH.folder, _WATCH.seen = folder, []
    try:
        yield _WATCH.seen
    finally:
        _WATCH.folder = None


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


WRITERS: dict[str, Callable[[Path], object]] = {
    "api tokens": write_dev_tokens,
    "codec keys": write_new_keys,
}


@pytest.mark.parametrize("what", WRITERS)
def test_a_new_secret_file_is_never_readable_by_others(what: str, tmp_path: Path, permissive_umask: None):
    folder = tmp_path / "data"
    folder.mkdir()
    path = folder / "secret.yml"
    with watching(folder) as seen:
        WRITERS[what](path)
    assert seen, "the watch saw the file being written"
    exposed = [(event, name, oct(mode)) for event, name, mode in seen if mode & OTHERS]
    assert not exposed, f"{what}: readable by group or others while being written: {exposed}"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in folder.iterdir()] == ["secret.yml"], "no temporary file is left behind"


@pytest.mark.parametrize("what", WRITERS)
def test_an_existing_world_readable_file_is_replaced_by_a_private_one(
    what: str, tmp_path: Path, permissive_umask: None
):
    path = tmp_path / "secret.yml"
    path.write_text("old: readable by everyone\n")
    path.chmod(0o666)
    WRITERS[what](path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "old" not in yaml.safe_load(path.read_text())
    (load_tokens if what == "api tokens" else load_keys)(path)  # and it is a complete, valid file
