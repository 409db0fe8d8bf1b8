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


def ticket_for_request(customer_id: str, request_id: str) -> str:
    """The same caller's request id always maps to the same ticket: a retried request is not a new incident."""
    digest = hashlib.sha256(f"{customer_id}\\x00{request_id}".encode()).digest()
    return _encode(int.from_bytes(digest[:8], "big"))


def is_ticket_id(text: str) -> bool:
    body = text.removeprefix(PREFIX)
    return text.startswith(PREFIX) and len(body) == LENGTH and all(c in ALPHABET for c in body)
