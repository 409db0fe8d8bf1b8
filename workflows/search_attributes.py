"""The incident's custom search attributes: how SREs and `incidents list` find incidents.

Search attributes are never encrypted, so nothing here may carry customer
contact data; the customer id is an opaque identifier and is allowed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from temporalio.common import (
    SearchAttributeIndexedValueType,
    SearchAttributeKey,
    SearchAttributePair,
    SearchAttributeUpdate,
    TypedSearchAttributes,
)

from workflows.domain.linking import outage_id_of
from workflows.domain.models import IncidentState

SEVERITY = SearchAttributeKey.for_keyword("IncidentSeverity")
STATUS = SearchAttributeKey.for_keyword("IncidentStatus")
LINE = SearchAttributeKey.for_int("IncidentLine")
CATEGORY = SearchAttributeKey.for_keyword("IncidentCategory")
CUSTOMER = SearchAttributeKey.for_keyword("CustomerId")
SLA_DEADLINE = SearchAttributeKey.for_datetime("SlaDeadline")
ASSIGNEE = SearchAttributeKey.for_keyword("Assignee")
# The earliest deadline of any clock: an incident that is not closed always has one, so the audit can
# find every incident whose next deadline is long gone (frozen, or no worker serving it).
NEXT_DEADLINE = SearchAttributeKey.for_datetime("NextDeadline")
# How many notifications gave up (a customer or a line never told): the audit finds them by `> 0`.
NOTIFICATIONS_FAILED = SearchAttributeKey.for_int("NotificationsFailed")
# How a closed incident ended (resolved, self_resolved, no_reply): the audit counts those that needed no agent.
CLOSED_AS = SearchAttributeKey.for_keyword("IncidentClosedAs")
# The major incident (OUT-...) an incident belongs to, and the major incident's own id on its workflow:
# `OutageId = 'OUT-...'` lists a major incident with its incidents; its fan-outs select by it.
OUTAGE_ID = SearchAttributeKey.for_keyword("OutageId")
# Where the customer is, as every enclosing area (`moscow`, `moscow/khimki`, ...): `IncidentArea = 'moscow'`
# finds every incident in Moscow. Area names only, never contact data.
AREA = SearchAttributeKey.for_keyword_list("IncidentArea")

ALL_KEYS: tuple[SearchAttributeKey[Any], ...] = (
    SEVERITY,
    STATUS,
    LINE,
    CATEGORY,
    CUSTOMER,
    SLA_DEADLINE,
    ASSIGNEE,
    NEXT_DEADLINE,
    NOTIFICATIONS_FAILED,
    CLOSED_AS,
    OUTAGE_ID,
    AREA,
)

# System attributes the server keeps by itself; the audit reads them, nothing here writes them.
# Set after N consecutive workflow task failures or timeouts (N: the dynamic config below), cleared by
# the next task that succeeds. Values like "category=WorkflowTaskFailed", "cause=...".
REPORTED_PROBLEMS = SearchAttributeKey.for_keyword_list("TemporalReportedProblems")
# The build ids of the workers that completed a workflow task of the execution: empty (IS NULL) as long
# as no worker has ever completed one.
BUILD_IDS = SearchAttributeKey.for_keyword_list("BuildIds")
# After how many consecutive failures the server sets TemporalReportedProblems: Server 1.32's default is 5
# (0 turns it off). Its retries back off, so 5 took ~55 s on the dev server; the dev stack and the tests
# ask for 2 (~10 s).
REPORTED_PROBLEMS_CONFIG = "system.numConsecutiveWorkflowTaskProblemsToTriggerSearchAttribute"
REPORTED_PROBLEMS_AFTER = 2

_INDEXED_TYPE_NAMES = {
    SearchAttributeIndexedValueType.KEYWORD: "Keyword",
    SearchAttributeIndexedValueType.INT: "Int",
    SearchAttributeIndexedValueType.DATETIME: "Datetime",
    SearchAttributeIndexedValueType.KEYWORD_LIST: "KeywordList",
}


def dev_server_flags() -> list[str]:
    """`--search-attribute Name=Type` pairs that register every key on `temporal server start-dev`."""
    flags: list[str] = []
    for key in ALL_KEYS:
        flags += ["--search-attribute", f"{key.name}={_INDEXED_TYPE_NAMES[key.indexed_value_type]}"]
    return flags


def reported_problems_flags(after: int = REPORTED_PROBLEMS_AFTER) -> list[str]:
    """`temporal server start-dev` flags that make the server flag executions whose workflow task keeps failing."""
    return ["--dynamic-config-value", f"{REPORTED_PROBLEMS_CONFIG}={after}"]


# A major incident's fan-outs are the server's batch jobs (workflows/outage_workflow.py). The dev server runs one
# batch job per namespace at a time and signals 50 workflows a second by default: two major incidents resolving at
# once would queue, and 2,000 linked incidents would take 40 s to reach.
BATCH_DYNAMIC_CONFIG = {
    "frontend.MaxConcurrentBatchOperationPerNamespace": 4,
    "worker.batcherRPS": 500,
}


def batch_operation_flags() -> list[str]:
    """`temporal server start-dev` flags that let several major incidents fan out at once, at a brisker pace."""
    flags: list[str] = []
    for key, value in BATCH_DYNAMIC_CONFIG.items():
        flags += ["--dynamic-config-value", f"{key}={value}"]
    return flags


def values_of(state: IncidentState) -> dict[str, object]:
    deadline: datetime | None = state.sla_deadline
    return {
        SEVERITY.name: state.severity.value,
        STATUS.name: state.status.value,
        LINE.name: state.line,
        CATEGORY.name: state.category,
        CUSTOMER.name: state.customer_id,
        SLA_DEADLINE.name: deadline,
        ASSIGNEE.name: state.assignee,
        NEXT_DEADLINE.name: state.next_deadline,
        NOTIFICATIONS_FAILED.name: state.notifications_failed,
        CLOSED_AS.name: state.closed_as.value if state.closed_as is not None else None,
        OUTAGE_ID.name: outage_id_of(state),
        AREA.name: state.area.prefixes() if state.area is not None else None,
    }


def from_typed(attributes: TypedSearchAttributes) -> dict[str, object]:
    """What the execution already carries (set at start, or before continue-as-new, and every upsert since).

    As `attributes.get(key)` answers for each key (the first pair with an equal key), in one pass instead of a
    scan per key: the incident reads this on every pass of its loop, replays included."""
    found: dict[SearchAttributeKey[Any], object] = {}
    for key, value in attributes:
        found.setdefault(key, value)
    return {key.name: found.get(key) for key in ALL_KEYS}


def as_typed(values: dict[str, object]) -> TypedSearchAttributes:
    return TypedSearchAttributes(
        [SearchAttributePair(key, values[key.name]) for key in ALL_KEYS if values[key.name] is not None]
    )


def updates(previous: dict[str, object] | None, current: dict[str, object]) -> list[SearchAttributeUpdate[Any]]:
    """Only the attributes that changed: each upsert is one event in the incident's history."""
    result: list[SearchAttributeUpdate[Any]] = []
    for key in ALL_KEYS:
        value = current[key.name]
        if previous is not None and previous.get(key.name) == value:
            continue
        if value is None:
            if previous is None or previous.get(key.name) is None:
                continue
            result.append(key.value_unset())
        else:
            result.append(key.value_set(value))
    return result


def initial(state_severity: str, category: str, customer_id: str) -> TypedSearchAttributes:
    """What an incident carries from its start, before its first workflow task runs."""
    return as_typed(
        {
            SEVERITY.name: state_severity,
            STATUS.name: "open",
            LINE.name: 1,
            CATEGORY.name: category,
            CUSTOMER.name: customer_id,
            SLA_DEADLINE.name: None,
            ASSIGNEE.name: None,
            NEXT_DEADLINE.name: None,
            NOTIFICATIONS_FAILED.name: 0,
            CLOSED_AS.name: None,
            OUTAGE_ID.name: None,
            AREA.name: None,
        }
    )
