"""Which escalation policies a worker knows, each by name and version: an incident names one, never brings its own.

A client (the API, the CLI, any Temporal client) opens an incident under a policy *reference*; the worker
resolves it against the policies it was configured with (INCIDENT_POLICY, INCIDENT_POLICIES and the shipped
default), so no client can open an incident under a policy of its own making. The version is the policy's
content, hashed: every process that reads the same file names the same version, and any change to the rules
is a new version, which a worker knows only once it reads it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, Field

from workflows.domain.policy import Policy
from workflows.domain.sharing import Shared

VERSION_LENGTH = 12


class PolicyRef(BaseModel):
    """A policy by name and version, as an incident names it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=100)
    version: str = Field(pattern=rf"^[0-9a-f]{{{VERSION_LENGTH}}}$", description="the policy's content, hashed")

    def __str__(self) -> str:
        return f"{self.name}@{self.version}"


# A calendar's dated days are data, not rules: the loader writes the public holidays in for the years around the
# day it ran, and the worker brings open incidents' calendars up to date (a new holiday). Two processes that
# read the same file on different days must name the same version, so the version leaves them out.
CALENDAR_DATA = {"days_off", "working_rest_days", "public_holiday_years"}


def policy_version(policy: Policy) -> str:
    """The hash of the rules themselves: the same however the file orders its keys, unchanged by a new
    optional field whose default leaves the rules as they were, and by the calendars' dated days."""
    rules = policy.model_dump(mode="json", exclude_defaults=True, exclude={"calendars": {"__all__": CALENDAR_DATA}})
    canonical = json.dumps(rules, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:VERSION_LENGTH]


def reference_of(policy: Policy) -> PolicyRef:
    return PolicyRef(name=policy.name, version=policy_version(policy))


_SHARED_REFERENCES: Shared[PolicyRef, PolicyRef] = Shared()


def shared_reference(reference: PolicyRef) -> PolicyRef:
    """One object per reference in a worker, as `policy.shared` does for the policies: thousands of cached
    incidents name the same one. Frozen, so sharing it changes nothing an incident does."""
    return _SHARED_REFERENCES.get(reference, lambda: reference)


class PolicyCatalogue:
    """The policies one worker knows, by reference."""

    def __init__(self, policies: Iterable[Policy] = ()) -> None:
        self._by_reference: dict[PolicyRef, Policy] = {}
        for policy in policies:
            self.add(policy)

    def add(self, policy: Policy) -> PolicyRef:
        """Know `policy`; one of the same rules added before it (other dated days in its calendars) gives way."""
        reference = reference_of(policy)
        self._by_reference[reference] = policy
        return reference

    def find(self, reference: PolicyRef) -> Policy | None:
        return self._by_reference.get(reference)

    def known(self) -> list[PolicyRef]:
        return list(self._by_reference)
