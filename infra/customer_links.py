"""The customer's unguessable ticket link, `/t/{ticket}?k=...`: an HMAC of the ticket number under the desk's
secret (starter/desk/secrets.py loads it). Here, below every layer, because two parts make the same link:
the API (its `Customer-Page` header, the desk) and the worker's notifier, which adds it to the customer's
"ticket opened" message as it delivers it - so the link never enters an incident's history."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def derived(secret: bytes, purpose: str) -> bytes:
    """A key for one purpose only: a session key never doubles as a link key."""
    return hmac.new(secret, f"incidents-desk:{purpose}".encode(), hashlib.sha256).digest()


class CustomerLinks:
    """`/t/{ticket}?k=...`: the key is 128 bits of an HMAC of the ticket number; nothing else opens the page."""

    def __init__(self, secret: bytes) -> None:
        self._key = derived(secret, "customer-link")

    def key(self, ticket: str) -> str:
        digest = hmac.new(self._key, ticket.encode(), hashlib.sha256).digest()[:16]
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def valid(self, ticket: str, key: str | None) -> bool:
        return bool(key) and hmac.compare_digest(self.key(ticket), str(key))

    def path(self, ticket: str) -> str:
        return f"/t/{ticket}?k={self.key(ticket)}"


MIN_SECRET_BYTES = 32


class CustomerPages:
    """The whole link as a customer follows it: the API's public address and the path.

    The secret is read from its file at the first link, not at the worker's start: under `incidents dev`
    the API makes the file, and the worker may start first. Unreadable, there is no link (None), and the
    next notification tries again: a customer is never kept from their ticket number by it."""

    def __init__(self, public_url: str, secret: bytes | Path) -> None:
        self.public_url = public_url.rstrip("/")
        self._secret_file = secret if isinstance(secret, Path) else None
        self._links = CustomerLinks(secret) if isinstance(secret, bytes) else None

    def url(self, ticket: str) -> str | None:
        if self._links is None and self._secret_file is not None:
            try:
                text = self._secret_file.read_text(encoding="utf-8").strip()
            except OSError as error:
                log.warning("customer links: cannot read %s (%s): no link this time", self._secret_file, error)
                return None
            if len(text.encode()) < MIN_SECRET_BYTES:
                log.warning(
                    "customer links: %s holds fewer than %d bytes: no link", self._secret_file, MIN_SECRET_BYTES
                )
                return None
            self._links = CustomerLinks(text.encode())
        return self.public_url + self._links.path(ticket) if self._links is not None else None
