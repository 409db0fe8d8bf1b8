"""How an incident execution is started, shared by the client and the intake workflow:
its id, task queue, initial search attributes and the summary the web UI shows."""

from __future__ import annotations

from typing import Any

from temporalio.common import WorkflowIDReusePolicy

from workflows import search_attributes
from workflows.domain.incident import Incident
from workflows.domain.inputs import IncidentInput
from workflows.domain.models import IncidentState
from workflows.domain.policy import Policy
from workflows.domain.tickets import REQUEST_KEY_MEMO, request_key
from workflows.domain.triage import triage
from workflows.presentation import static_details, static_summary


def _policy_of(input: IncidentInput, policy: Policy | None) -> Policy:
    """The policy the incident opens under: the intake's (in the input), or the one a client names by reference
    (its own copy: what it shows before the start; the incident corrects it on its first task if they differ)."""
    found = policy or input.policy
    if found is None:
        raise ValueError("the incident's policy is needed to compute its opening: pass the one policy_ref names")
    return found


def opening_state(input: IncidentInput, policy: Policy | None = None) -> IncidentState | None:
    """The incident exactly as it will open, when its opening time is known before the start."""
    if input.opened_at is None or input.carried is not None:
        return None
    incident, _ = Incident.open(
        input.ticket_id,
        input.request,
        _policy_of(input, policy),
        input.opened_at,
        input.opening_features(),
        previous_ticket=input.previous_ticket,
        outage=input.outage,
    )
    return incident.state


def start_options(
    input: IncidentInput, opening: IncidentState | None = None, policy: Policy | None = None
) -> dict[str, Any]:
    request = input.request
    severity = triage(request.category, _policy_of(input, policy)).severity.value
    opening = opening or opening_state(input, policy)
    memo = {REQUEST_KEY_MEMO: request_key(request.customer_id, request.request_id)} if request.request_id else None
    return {
        "id": input.ticket_id,
        # A ticket number names one incident forever, even after it closed.
        "id_reuse_policy": WorkflowIDReusePolicy.REJECT_DUPLICATE,
        # With the opening state known, the start carries every attribute (the SLA deadline too), so the
        # first task has nothing to upsert: one history event and one visibility write fewer.
        "search_attributes": search_attributes.as_typed(search_attributes.values_of(opening))
        if opening is not None
        else search_attributes.initial(severity, request.category, request.customer_id),
        # Which (customer, request id) this incident answers: how a colliding ticket number is told apart.
        "memo": memo,
        "static_summary": static_summary(severity, request.category, request.customer_id),
        "static_details": static_details(
            input.ticket_id, severity, request.category, request.customer_id, request.channel.value
        ),
    }
