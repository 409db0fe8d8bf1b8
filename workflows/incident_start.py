"""How an incident execution is started, shared by the client and the intake workflow:
its id, task queue, initial search attributes and the summary the web UI shows."""

from __future__ import annotations

from typing import Any

from temporalio.common import WorkflowIDReusePolicy

from workflows import search_attributes
from workflows.domain.inputs import IncidentInput
from workflows.domain.triage import triage
from workflows.presentation import static_details, static_summary


def start_options(input: IncidentInput) -> dict[str, Any]:
    request = input.request
    severity = triage(request.category, input.policy).severity.value
    return {
        "id": input.ticket_id,
        # A ticket number names one incident forever, even after it closed.
        "id_reuse_policy": WorkflowIDReusePolicy.REJECT_DUPLICATE,
        "search_attributes": search_attributes.initial(severity, request.category, request.customer_id),
        "static_summary": static_summary(severity, request.category, request.customer_id),
        "static_details": static_details(
            input.ticket_id, severity, request.category, request.customer_id, request.channel.value
        ),
    }
