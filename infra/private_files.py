"""Files for their owner's eyes only: the API token file, the codec key file."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def write_private(path: str | Path, text: str) -> None:
    """Write `text` to `path` as a file only its owner may read or write (mode 0600), whatever the umask.

    The text goes into a new file in the same folder that `tempfile.mkstemp` creates with mode 0600
    from the first instant (O_CREAT|O_EXCL, mode 0600), never a file made with the umask's mode and
    narrowed afterwards, and that file then replaces `path` in one rename: a reader sees the old file
    or the new one, never half of one, and a file that was readable by others before is replaced, not
    rewritten in place with its old mode.
    """
    target = Path(path)
    descriptor, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
