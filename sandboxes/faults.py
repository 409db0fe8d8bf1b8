"""Failure injection shared by the sandboxes, read from SANDBOX_* variables and changeable at run time."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from pydantic import BaseModel, Field, field_validator

from workflows.domain.durations import parse_duration


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


class Faults(BaseModel):
    fail_first: int = Field(default=0, ge=0, description="fail the first N attempts of each idempotency key with 503")
    down_for_seconds: float = Field(default=0, ge=0, description="answer 503 to everything for this long")
    reject: bool = Field(default=False, description="reject every request as a business error")
    reject_after_paying: bool = Field(
        default=False, description="pay, then answer with a business rejection anyway (the ledger holds the payment)"
    )
    delay_seconds: float = Field(default=0, ge=0, le=120, description="answer every request this much later")

    @field_validator("down_for_seconds", mode="before")
    @classmethod
    def _duration(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            return float(text) if text.replace(".", "", 1).isdigit() else parse_duration(text).total_seconds()
        return value

    @classmethod
    def from_env(cls, environ: Mapping[str, str], prefix: str) -> Faults:
        return cls(
            fail_first=int(environ.get(f"{prefix}FAIL_FIRST", "0") or 0),
            down_for_seconds=environ.get(f"{prefix}DOWN_FOR", "0") or 0,
            reject=_flag(environ.get(f"{prefix}REJECT")),
            reject_after_paying=_flag(environ.get(f"{prefix}REJECT_AFTER_PAYING")),
            delay_seconds=float(environ.get(f"{prefix}DELAY_SECONDS", "0") or 0),
        )


class FaultState:
    """The faults in force, when they began, and how often each key has been tried."""

    def __init__(self, faults: Faults, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.attempts: dict[str, int] = {}
        self.set(faults)

    def set(self, faults: Faults) -> None:
        self.faults = faults
        self.since = self._clock()

    def is_down(self) -> bool:
        return self._clock() - self.since < self.faults.down_for_seconds

    def count_attempt(self, key: str) -> int:
        self.attempts[key] = self.attempts.get(key, 0) + 1
        return self.attempts[key]

    def should_fail(self, attempt: int) -> bool:
        return attempt <= self.faults.fail_first
