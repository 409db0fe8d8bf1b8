"""Ticket numbers customers can read aloud: `INC-` and six Crockford base32 characters (no I, L, O, U)."""

from __future__ import annotations

import hashlib
import random

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
LENGTH = 6
PREFIX = "INC-"


def _encode(number: int) -> str:
    chars = []
    for _ in range(LENGTH):
        number, index = divmod(number, len(ALPHABET))
        chars.append(ALPHABET[index])
    return PREFIX + "".join(reversed(chars))


def new_ticket_id(rng: random.Random | None = None) -> str:
    source = rng or random.SystemRandom()
    return _encode(source.randrange(len(ALPHABET) ** LENGTH))


# The memo entry that names the (customer, request id) an incident was opened for.
REQUEST_KEY_MEMO = "request_key"


def ticket_for_request(customer_id: str, request_id: str, attempt: int = 0) -> str:
    """The same caller's request id always maps to the same tickets, tried in order: a retried request is
    not a new incident. Ticket numbers are short, so two requests can share a candidate; the opener
    then checks whose incident holds it (`request_key`) and moves on to the next candidate."""
    salt = f"\\x00{attempt}" if attempt else ""
    digest = hashlib.sha256(f"{customer_id}\\x00{request_id}{salt}".encode()).digest()
    return _encode(int.from_bytes(digest[:8], "big"))


def request_key(customer_id: str, request_id: str) -> str:
    """An opaque, exact name for one caller's request (kept in the incident's memo, never contact data)."""
    return hashlib.sha256(f"{customer_id}\x00{request_id}".encode()).hexdigest()


def is_ticket_id(text: str) -> bool:
    body = text.removeprefix(PREFIX)
    return text.startswith(PREFIX) and len(body) == LENGTH and all(c in ALPHABET for c in body)
