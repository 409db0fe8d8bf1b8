"""The incident workflow's input: the request, the policy it runs under, and what continue-as-new carries.

A client names the policy (`policy_ref`: name and version) and the worker resolves it; the full `policy` in an
input is taken only from the intake (a parent workflow that resolved it) or the run it continues
(workflows/domain/policy_catalogue.py).
"""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, Field

from workflows.domain.core import CUSTOMER_LOCALE
from workflows.domain.models import IncidentState, OpenIncident
from workflows.domain.notice import OutageNotice
from workflows.domain.policy import Policy
from workflows.domain.policy_catalogue import PolicyRef
from workflows.domain.sharing import Shared

TASK_QUEUE = "incidents"
WORKFLOW_TYPE = "IncidentWorkflow"


# Continue as new well before Temporal's own warning (10,240 events) so a chatty incident never nears its limits.
DEFAULT_HISTORY_LIMIT = 4_000
# The same for the history's size: large signals (4,000-character notes) fill it long before 4,000 events.
# Servers suggest continuing as new at 4 MiB by default; this holds where the server does not suggest.
DEFAULT_HISTORY_SIZE_LIMIT = 4 * 1024 * 1024


class IncidentInput(BaseModel):
    ticket_id: str
    request: OpenIncident
    policy: Policy | None = Field(
        default=None,
        description="the policy itself: from the intake that resolved it or the run this one continues, never a "
        "client (histories of incidents started with one replay as they ran)",
    )
    policy_ref: PolicyRef | None = Field(default=None, description="the policy, by name and version, the worker knows")
    carried: IncidentState | None = Field(default=None, description="the whole incident, after continue-as-new")
    opened_at: AwareDatetime | None = Field(
        default=None,
        description="when the intake took the request (its workflow clock): the incident's opening time, so the "
        "intake can answer with the incident as opened; None (direct starts, older incidents): the start time",
    )
    history_limit: int = Field(default=DEFAULT_HISTORY_LIMIT, ge=50)
    previous_ticket: str | None = Field(
        default=None, description="the customer's earlier incident in this category, closed or past reopening"
    )
    history_size_limit: int = Field(
        default=DEFAULT_HISTORY_SIZE_LIMIT, ge=64 * 1024, description="bytes of history after which the run continues"
    )
    customer_locale: bool = Field(
        default=False,
        description="write to the customer in their language and time zone (the request's, else the policy's); "
        "every starter sets it. False: an incident started before languages, whose history replays as it ran "
        "(English, UTC times)",
    )

    features: list[str] = Field(
        default_factory=list,
        description="behaviour the opening code had from the first moment (workflows/features.py OPENING_FEATURES), "
        "which an incident opened before asks `workflow.patched` for where it first matters; empty: such an "
        "incident, whose history replays as it ran",
    )
    outage: OutageNotice | None = Field(
        default=None, description="the major incident in the customer's area the intake found: it opens linked"
    )

    def opening_features(self) -> frozenset[str]:
        """What the incident does from its first moment, as this input says (so the same in every replay)."""
        return shared_features(frozenset(self.features) | ({CUSTOMER_LOCALE} if self.customer_locale else frozenset()))


_SHARED_FEATURES: Shared[frozenset[str], frozenset[str]] = Shared()
_SHARED_FEATURE_LISTS: Shared[tuple[str, ...], list[str]] = Shared()


def shared_features(features: frozenset[str]) -> frozenset[str]:
    """One frozenset (and one string per feature) per distinct set in a worker: thousands of cached incidents
    carry the same ones, which as copies of their own cost about 1 KB each. Frozen, so sharing is invisible."""
    return _SHARED_FEATURES.get(features, lambda: features)


def shared_feature_list(features: list[str]) -> list[str]:
    """The same for an input's `features` list (the SDK keeps the input for the whole run): nothing changes
    the list of a running incident's input, it is only handed on to the run it continues as."""
    return _SHARED_FEATURE_LISTS.get(tuple(features), lambda: features)


INTAKE_WORKFLOW_TYPE = "IncidentIntake"


# An intake continues as new well before Temporal's limits: years of recontacts must not exhaust its history.
DEFAULT_INTAKE_HISTORY_LIMIT = 2_000
# Request ids an intake remembers across runs; older ones are still found through their incidents' memos.
KEEP_REQUEST_IDS = 1_000


class IntakeMemory(BaseModel):
    """What an intake carries into its next run."""

    current: str | None = None
    by_request: dict[str, str] = Field(default_factory=dict)
    served: int = 0


class IntakeKey(BaseModel):
    customer_id: str
    category: str
    carried: IntakeMemory | None = None
    history_limit: int = Field(default=DEFAULT_INTAKE_HISTORY_LIMIT, ge=50)


class IntakeRequest(BaseModel):
    request: OpenIncident
    policy_ref: PolicyRef | None = Field(default=None, description="the policy, by name and version, the worker knows")
    policy: Policy | None = Field(default=None, description="refused: what clients sent before they named a policy")


class IntakeResult(BaseModel):
    ticket_id: str
    outcome: Literal["created", "joined", "existing"]
    previous_ticket: str | None = Field(default=None, description="a created incident follows this closed one")
    # The incident as opened, for a created one: the caller need not ask the incident (one query less).
    state: IncidentState | None = None


def intake_workflow_id(customer_id: str, category: str) -> str:
    """One intake per customer and category: it serialises that customer's opens for that problem."""
    return f"intake:{customer_id}:{category}"
