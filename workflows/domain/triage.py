"""Triage: which of the three classes an incident belongs to (seed 000)."""

from __future__ import annotations

from dataclasses import dataclass

from workflows.domain.models import Severity
from workflows.domain.policy import Policy


@dataclass(frozen=True)
class Triage:
    severity: Severity
    note: str | None = None


def triage(category: str, policy: Policy) -> Triage:
    severity = policy.categories.get(category)
    if severity is not None:
        return Triage(severity)
    return Triage(
        policy.default_severity,
        note=f"unknown category {category!r}: triaged as {policy.default_severity.value} by default",
    )
