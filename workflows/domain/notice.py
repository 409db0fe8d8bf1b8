"""What a major incident publishes about itself, and what a linked incident keeps of it.

A major incident (an outage, or planned works) posts its notice on the outage
board; the intake reads the board to link a new incident at once, and a link
carries the notice into the incident. The notice holds only what every affected
customer may hear (the area, the categories, a public summary, the expected fix
time): never anything about another customer.
"""

from __future__ import annotations

import hashlib
import random
import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from workflows.domain.areas import Area
from workflows.domain.tickets import ALPHABET, LENGTH

OUTAGE_PREFIX = "OUT-"
# The same alphabet as ticket numbers (Crockford base32 without I, L, O, U): read aloud without mistakes.
OUTAGE_ID_PATTERN = r"^OUT-[0-9A-HJKMNP-TV-Z]{6}$"
OutageId = Annotated[str, StringConstraints(strip_whitespace=True, to_upper=True, pattern=OUTAGE_ID_PATTERN)]
_CATEGORY = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
MAX_CATEGORIES = 32


def _categories(value: tuple[str, ...]) -> tuple[str, ...]:
    cleaned = tuple(dict.fromkeys(c.strip().lower() for c in value))
    for category in cleaned:
        if not _CATEGORY.match(category):
            raise ValueError(f"{category!r} is not a category (lower-case letters, digits, _)")
    if len(cleaned) > MAX_CATEGORIES:
        raise ValueError(f"at most {MAX_CATEGORIES} categories")
    return cleaned


Categories = Annotated[tuple[str, ...], AfterValidator(_categories)]


def is_outage_id(text: str) -> bool:
    return re.match(OUTAGE_ID_PATTERN, text) is not None


class OutageKind(StrEnum):
    outage = "outage"
    planned_works = "planned_works"


class NoticeStatus(StrEnum):
    announced = "announced"  # planned works before their window
    active = "active"
    resolved = "resolved"


class OutageNotice(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    outage_id: OutageId
    kind: OutageKind = OutageKind.outage
    status: NoticeStatus = NoticeStatus.active
    area: Area
    categories: Categories = Field(default=(), description="the problems it causes; empty: every category")
    summary: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000)] = Field(
        description="what every affected customer is told, e.g. 'a cable cut in Khimki'"
    )
    started_at: AwareDatetime = Field(description="when the failure began, or when the planned works start")
    expected_fix_by: AwareDatetime = Field(description="when it is expected to be fixed (planned works: their end)")
    check_by: AwareDatetime = Field(
        description="a linked incident that has heard nothing newer by then takes its own clock back"
    )
    revision: int = Field(default=0, description="grows with every change: the board keeps the newest it was sent")

    def covers(self, area: Area | None, category: str) -> bool:
        """Whether a customer in `area` with a problem of `category` is affected (never without an area)."""
        if area is None or not self.area.covers(area):
            return False
        return not self.categories or category in self.categories

    def links_at(self, now: datetime) -> bool:
        """Whether an incident opened `now` joins it: an active outage, or planned works inside their window."""
        if self.status is NoticeStatus.resolved or now >= self.check_by:
            return False  # resolved, or gone silent past its check time (its workflow may be gone)
        if self.kind is OutageKind.planned_works:
            return self.started_at <= now < self.expected_fix_by
        return True


def best_match(notices: list[OutageNotice], area: Area | None, category: str, now: datetime) -> OutageNotice | None:
    """The notice a new incident links to: the narrowest area first (a segment's failure explains more
    than its region's), then the earliest started."""
    candidates = [n for n in notices if n.links_at(now) and n.covers(area, category)]
    if not candidates:
        return None
    return min(candidates, key=lambda n: (-len(n.area.parts()), n.started_at, n.outage_id))


class OutageLink(BaseModel):
    """An incident's link to a major incident: the notice as last heard, and what the link changed."""

    notice: OutageNotice
    linked_at: datetime
    linked_by: str
    paused_clock: bool = Field(description="whether linking stopped the SLA clocks (unlinking starts them again)")
    news_at: datetime = Field(description="when the incident last heard from the major incident")
    ended_at: datetime | None = None
    ended: str | None = Field(default=None, description="resolved together, or why it was unlinked")

    @property
    def active(self) -> bool:
        return self.ended_at is None

    @property
    def outage_id(self) -> str:
        return self.notice.outage_id


def new_outage_id(rng: random.Random | None = None) -> str:
    source = rng or random.SystemRandom()
    return _encode(source.randrange(len(ALPHABET) ** LENGTH))


def outage_for_request(request_id: str, attempt: int = 0) -> str:
    """The same declaration request always maps to the same major incident: a retried declare declares nothing new."""
    salt = f"\x00{attempt}" if attempt else ""
    digest = hashlib.sha256(f"outage\x00{request_id}{salt}".encode()).digest()
    return _encode(int.from_bytes(digest[:8], "big"))


def _encode(number: int) -> str:
    chars = []
    for _ in range(LENGTH):
        number, index = divmod(number, len(ALPHABET))
        chars.append(ALPHABET[index])
    return OUTAGE_PREFIX + "".join(reversed(chars))
