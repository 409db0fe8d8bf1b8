"""Where a customer is, and where a failure is: region, city, network segment.

An area is a path from coarse to fine (`moscow`, `moscow/khimki`,
`moscow/khimki/north-7`). A major incident declared for an area covers every
customer whose own area lies inside it: a failure in `moscow/khimki` covers
the customer in `moscow/khimki/north-7` but not the one in `moscow/zelenograd`.
The parts are names, never contact data: they go into search attributes, which
no payload codec encrypts.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints, model_validator

# Letters (any script), digits, `.`, `_`, `-`: safe inside a visibility query's quotes and in a path.
AreaName = Annotated[
    str, StringConstraints(strip_whitespace=True, to_lower=True, pattern=r"^[^\W_][\w.-]{0,63}$", max_length=64)
]
SEPARATOR = "/"


class Area(BaseModel):
    """A region, optionally narrowed to a city, and within a city to a network segment."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    region: AreaName
    city: AreaName | None = None
    segment: AreaName | None = None

    @model_validator(mode="after")
    def _segment_needs_city(self) -> Area:
        if self.segment is not None and self.city is None:
            raise ValueError("segment: a segment lies within a city; give the city too")
        return self

    def parts(self) -> tuple[str, ...]:
        return tuple(part for part in (self.region, self.city, self.segment) if part is not None)

    @property
    def path(self) -> str:
        return SEPARATOR.join(self.parts())

    def prefixes(self) -> list[str]:
        """Every area this one lies in, itself included, coarse first: what the search attribute holds."""
        parts = self.parts()
        return [SEPARATOR.join(parts[: n + 1]) for n in range(len(parts))]

    def covers(self, other: Area) -> bool:
        """Whether `other` lies inside this area (an area covers itself)."""
        mine = self.parts()
        return other.parts()[: len(mine)] == mine

    def __str__(self) -> str:
        return self.path
