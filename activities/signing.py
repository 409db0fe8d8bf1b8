"""HMAC-SHA256 webhook signatures: the sender signs `timestamp \\n idempotency key \\n body`, the receiver
checks all three against each secret it accepts.

The idempotency key inside the signed text stops a captured webhook being sent again under a new key
(the receiver deduplicates on the key, so a new key would deliver it twice); the timestamp stops it
being replayed once the receiver's window (and with it its memory of the key) has passed. A newline
separates the parts: a header value cannot contain one, so no key and body can be read as another.

The receiver accepts a list of secrets, so a secret can be rotated without a moment where one side
signs with a secret the other does not accept (docs/operating.md, "Rotating the webhook secret").
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from collections.abc import Sequence
from pathlib import Path

SIGNATURE_HEADER = "X-Incidents-Signature"
TIMESTAMP_HEADER = "X-Incidents-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"
DEFAULT_TOLERANCE_SECONDS = 300


def _signed_text(idempotency_key: str, body: bytes, stamp: int) -> bytes:
    return f"{stamp}\n{idempotency_key}\n".encode() + body


def sign(secret: bytes, idempotency_key: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """The headers of a signed webhook: the key, the time and the signature over both and the body."""
    if "\n" in idempotency_key or "\r" in idempotency_key:
        raise ValueError("an idempotency key cannot contain a line break")
    stamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret, _signed_text(idempotency_key, body, stamp), hashlib.sha256).hexdigest()
    return {IDEMPOTENCY_HEADER: idempotency_key, SIGNATURE_HEADER: f"sha256={digest}", TIMESTAMP_HEADER: str(stamp)}


def verify(
    secrets: bytes | Sequence[bytes],
    idempotency_key: str | None,
    body: bytes,
    signature: str | None,
    timestamp: str | None,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> str | None:
    """None when the signature is good under one of `secrets`, else why it is not."""
    if not signature or not timestamp or not idempotency_key:
        return f"missing {SIGNATURE_HEADER}, {TIMESTAMP_HEADER} or {IDEMPOTENCY_HEADER} header"
    try:
        stamp = int(timestamp)
    except ValueError:
        return f"{TIMESTAMP_HEADER} is not a unix time"
    current = time.time() if now is None else now
    if abs(current - stamp) > tolerance_seconds:
        return f"{TIMESTAMP_HEADER} is more than {tolerance_seconds}s away from now"
    accepted = [secrets] if isinstance(secrets, bytes) else list(secrets)
    text = _signed_text(idempotency_key, body, stamp)
    for secret in accepted:
        expected = "sha256=" + hmac.new(secret, text, hashlib.sha256).hexdigest()
        if hmac.compare_digest(expected.encode(), signature.encode()):
            return None
    return "signature does not match"


class SigningSecret:
    """The secret the sender signs with, re-read from its source when that may have changed.

    From a file (WEBHOOK_SECRET_FILE) it is re-read whenever the file changes and whenever the receiver
    refuses a signature (`reload`), so writing a new secret into the file rotates a running worker. A
    secret given as a value (WEBHOOK_SECRET) has nothing to re-read: a new one needs a restart.
    """

    def __init__(self, value: bytes | None = None, file: Path | None = None) -> None:
        if value is None and file is None:
            raise ValueError("a signing secret needs a value or a file")
        self._file = file
        self._value = value or b""
        self._seen: tuple[int, int, int] | None = None
        if file is not None:
            self.reload()

    @classmethod
    def fixed(cls, value: bytes) -> SigningSecret:
        return cls(value=value)

    @property
    def file(self) -> Path | None:
        return self._file

    def current(self) -> bytes:
        if self._file is not None and self._stat() != self._seen:
            self.reload()
        return self._value

    def reload(self) -> None:
        """Read the file again (a value has no source to re-read). Keeps the old secret if the file is
        unreadable or empty for a moment, as while an editor rewrites it."""
        if self._file is None:
            return
        stat = self._stat()
        try:
            value = read_secret_file(self._file)
        except (OSError, ValueError):
            return
        self._value, self._seen = value, stat

    def _stat(self) -> tuple[int, int, int] | None:
        assert self._file is not None
        try:
            s = os.stat(self._file)
        except OSError:
            return None
        return (s.st_ino, s.st_mtime_ns, s.st_size)


class AcceptedSecrets:
    """What a receiver accepts: its current secret and, during a rotation, the previous one.

    Each comes from a value or a file; the files are read again as they change, so a running receiver
    rotates without a restart. The previous secret's file may be absent or empty: no rotation under way
    (removing it ends one). The current secret's file keeps its last good value while it is rewritten.
    """

    def __init__(
        self, current: SigningSecret, previous: bytes | None = None, previous_file: Path | None = None
    ) -> None:
        self._current = current
        self._previous = previous
        self._previous_file = previous_file

    def __call__(self) -> list[bytes]:
        accepted = [self._current.current()]
        previous = self._previous_from_file() if self._previous_file is not None else self._previous
        if previous and previous not in accepted:
            accepted.append(previous)
        return accepted

    def _previous_from_file(self) -> bytes | None:
        assert self._previous_file is not None
        try:
            return read_secret_file(self._previous_file)
        except (OSError, ValueError):
            return None


def read_secret_file(path: Path) -> bytes:
    """The secret in a file: its text without surrounding whitespace (a trailing newline is common)."""
    value = path.read_bytes().strip()
    if not value:
        raise ValueError(f"{path} is empty")
    return value
