"""The desk's one secret, and what is derived from it: the session cookie's signature, the CSRF tokens and
the customer's unguessable ticket link.

The secret lives in a file (mode 0600): INCIDENTS_DESK_SECRET_FILE, or under the dev stack's data folder
(`data/desk-secret`, made once by the first API that needs it). A customer's link is an HMAC of the ticket
number under it, so the link outlives restarts and changing the secret revokes every link and session at
once. Without either, the API makes a random one for its own lifetime and says so in its log: sessions and
links then end with the process.
"""

from __future__ import annotations

import logging
import secrets
from pathlib import Path

from infra.customer_links import CustomerLinks, derived
from infra.private_files import write_private

__all__ = ["CustomerLinks", "DeskSecretError", "derived", "load_secret"]

log = logging.getLogger(__name__)

SECRET_FILE_ENV = "INCIDENTS_DESK_SECRET_FILE"
DEV_SECRET_NAME = "desk-secret"
MIN_SECRET_BYTES = 32


class DeskSecretError(ValueError):
    """A desk secret file that cannot be used; the message names it."""


def load_secret(path: Path | None, create: bool = False) -> bytes:
    """The secret in `path` (made there first when `create`); a random one for this process when no path."""
    if path is None:
        log.warning(
            "desk: no %s: customer ticket links and desk sessions last only as long as this process", SECRET_FILE_ENV
        )
        return secrets.token_bytes(MIN_SECRET_BYTES)
    if create and not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_private(path, secrets.token_urlsafe(48) + "\n")
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError as error:
        raise DeskSecretError(f"{SECRET_FILE_ENV}: cannot read {path} ({error.strerror})") from None
    if len(text.encode()) < MIN_SECRET_BYTES:
        raise DeskSecretError(
            f"{SECRET_FILE_ENV}: {path} holds fewer than {MIN_SECRET_BYTES} bytes; use a long random one"
        )
    return text.encode()
