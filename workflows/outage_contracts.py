"""What the major incident's workflows send to their activities and get back, the workflows' inputs, and the
visibility queries its fan-outs select incidents by.

Kept apart from the activity code (which talks to Temporal and HTTP) so the
workflows import these models through the sandbox without any I/O library.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, Field

from workflows import search_attributes as sa
from workflows.domain.areas import Area
from workflows.domain.inputs import WORKFLOW_TYPE
from workflows.domain.messages import Message, render_for_customer
from workflows.domain.notice import OutageNotice
from workflows.domain.outage import DeclareOutage, OutagePolicy, OutageState

FAN_OUT = "fan_out_to_incidents"
TELL_AREA = "tell_area"
POST_NOTICE = "post_outage_notice"
FIND_OUTAGES = "find_outages"
# The server offers no batch operations (the time-skipping test server): retrying cannot help.
FAN_OUT_UNAVAILABLE = "FanOutUnavailable"

DEFAULT_OUTAGE_HISTORY_LIMIT = 2_000
DEFAULT_BOARD_HISTORY_LIMIT = 2_000


class OutageInput(BaseModel):
    outage_id: str
    request: DeclareOutage
    policy: OutagePolicy
    owner_line: int = Field(default=2, ge=2, le=3, description="the declaring line: the major incident starts there")
    carried: OutageState | None = Field(default=None, description="the whole major incident, after continue-as-new")
    history_limit: int = Field(default=DEFAULT_OUTAGE_HISTORY_LIMIT, ge=50)


class OutageActionResult(BaseModel):
    accepted: bool
    reason: str | None = None
    event_seq: int
    state: OutageState


class BoardInput(BaseModel):
    notices: list[OutageNotice] = Field(default_factory=list)
    history_limit: int = Field(default=DEFAULT_BOARD_HISTORY_LIMIT, ge=50)


class FanOutRequest(BaseModel):
    job_id: str
    outage_id: str
    operation: Literal["link", "update", "resolve"]
    query: str
    signal: str
    payload: dict[str, Any]
    # A sweep: the job it follows (see activities/outages.py). Absent in requests scheduled before sweeps waited.
    follows: str | None = None


class FanOutReport(BaseModel):
    job_id: str
    total: int
    reached: int
    failures: int


class AreaNotice(BaseModel):
    """A planned-works notice for the customers with recent incidents in the area (each told once)."""

    notice_id: str
    outage_id: str
    area: Area
    kind: str
    message: str = Field(description="in English with UTC times: for a customer whose language is unknown")
    recent_since: datetime
    # Each customer's own text: `template` in their language, `times` on their clock. None: a notice scheduled
    # before notices were written per customer, sent as `message`.
    template: Message | None = None
    texts: dict[str, str] = Field(default_factory=dict)
    times: dict[str, AwareDatetime] = Field(default_factory=dict)

    def text_for(self, language: str | None, time_zone: str | None) -> str:
        if self.template is None:
            return self.message
        return render_for_customer(self.template, {**self.texts, **self.times}, language, time_zone)


class AreaReport(BaseModel):
    notice_id: str
    customers: int
    unreachable: int = Field(default=0, description="incidents whose contact could not be read (nobody serves them)")


class OutageLookup(BaseModel):
    area: Area
    category: str


def _quoted(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def incidents_to_link(notice: OutageNotice) -> str:
    """Open incidents in the notice's area and categories, not linked to any major incident."""
    clauses = [
        f"WorkflowType = '{WORKFLOW_TYPE}'",
        "ExecutionStatus = 'Running'",
        f"{sa.STATUS.name} = 'open'",
        f"{sa.OUTAGE_ID.name} IS NULL",
        f"{sa.AREA.name} = '{_quoted(notice.area.path)}'",
    ]
    if notice.categories:
        listed = ", ".join(f"'{_quoted(c)}'" for c in notice.categories)
        clauses.append(f"{sa.CATEGORY.name} IN ({listed})")
    return " AND ".join(clauses)


def linked_incidents(outage_id: str, open_only: bool = True) -> str:
    """The incidents of a major incident (open ones: those its update or resolution still concerns)."""
    clauses = [f"WorkflowType = '{WORKFLOW_TYPE}'", f"{sa.OUTAGE_ID.name} = '{_quoted(outage_id)}'"]
    if open_only:
        clauses += ["ExecutionStatus = 'Running'", f"{sa.STATUS.name} = 'open'"]
    return " AND ".join(clauses)


def fan_out_query(operation: str, notice: OutageNotice) -> str:
    return incidents_to_link(notice) if operation == "link" else linked_incidents(notice.outage_id)
