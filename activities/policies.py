"""Resolve a policy reference against the policies this worker knows (workflows/domain/policy_catalogue.py).

Its answer is recorded in the asking workflow's history (a local activity of the incident's first workflow task,
or a regular activity for incidents opened before RESOLVE_POLICY_LOCALLY; the intake's local activity),
so the incident replays under the policy it was opened with even on a worker that no longer knows it.
"""

from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError

from workflows.contracts import POLICY_REFUSED, RESOLVE_POLICY
from workflows.domain.policy import Policy
from workflows.domain.policy_catalogue import PolicyCatalogue, PolicyRef


class PolicyActivities:
    def __init__(self, catalogue: PolicyCatalogue) -> None:
        self._catalogue = catalogue

    @activity.defn(name=RESOLVE_POLICY)
    async def resolve_policy(self, reference: PolicyRef) -> Policy:
        found = self._catalogue.find(reference)
        if found is None:
            known = ", ".join(str(r) for r in self._catalogue.known()) or "none"
            raise ApplicationError(
                f"policy {reference} is not one this worker knows (it knows {known}): give the workers and the "
                "client the same policy file (INCIDENT_POLICY, or INCIDENT_POLICIES for more)",
                type=POLICY_REFUSED,
                non_retryable=True,
            )
        return found
