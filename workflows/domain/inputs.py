"""The incident workflow's input: the request, the policy it runs under, and what continue-as-new carries."""

from __future__ import annotations

from pydantic import BaseModel

from workflows.domain.models import IncidentState, OpenIncident
from workflows.domain.policy import Policy

TASK_QUEUE = "incidents"
WORKFLOW_TYPE = "IncidentWorkflow"


class IncidentInput(BaseModel):
    ticket_id: str
    request: OpenIncident
    policy: Policy
    carried: IncidentState | None = None
