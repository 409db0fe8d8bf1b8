"""HMAC-SHA256 webhook signatures: the sender signs `timestamp.body`, the receiver checks both.

The timestamp inside the signed text stops an old, captured webhook being replayed later.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "X-Incidents-Signature"
TIMESTAMP_HEADER = "X-Incidents-Timestamp"
DEFAULT_TOLERANCE_SECONDS = 300


def sign(secret: bytes, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    stamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret, f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return {SIGNATURE_HEADER: f"sha256={digest}", TIMESTAMP_HEADER: str(stamp)}


def verify(
    secret: bytes,
    body: bytes,
    signature: str | None,
    timestamp: str | None,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> str | None:
    """None when the signature is good, else why it is not."""
    if not signature or not timestamp:
        return f"missing {SIGNATURE_HEADER} or {TIMESTAMP_HEADER} header"
    try:
        stamp = int(timestamp)
    except ValueError:
        return f"{TIMESTAMP_HEADER} is not a unix time"
    current = time.time() if now is None else now
    if abs(current - stamp) > tolerance_seconds:
        return f"{TIMESTAMP_HEADER} is more than {tolerance_seconds}s away from now"
    expected = sign(secret, body, stamp)[SIGNATURE_HEADER]
    if not hmac.compare_digest(expected, signature):
        return "signature does not match"
    return None
