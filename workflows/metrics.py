"""Domain metrics from the incident's own events, through the replay-safe workflow metric meter.

The workflow hands each batch of newly recorded domain events to
`IncidentMetrics.record`; the workflow metric meter drops emissions while a
history is being replayed, so an incident picked up again by another worker
is not counted twice. They are served with Temporal's own SDK metrics on the
worker's Prometheus endpoint.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from temporalio.common import MetricMeter

from workflows.domain.models import EventType, IncidentEvent, IncidentState

PREFIX = "incidents_"
NAMES = {
    "opened": f"{PREFIX}opened",
    "escalations": f"{PREFIX}escalations",
    "sla_breaches": f"{PREFIX}sla_breaches",
    "time_to_acknowledge": f"{PREFIX}time_to_acknowledge",
    "time_to_resolve": f"{PREFIX}time_to_resolve",
    "refunds": f"{PREFIX}refunds",
    "compensations": f"{PREFIX}compensations",
    "callbacks": f"{PREFIX}callbacks",
    "feedback": f"{PREFIX}feedback",
    "reopened": f"{PREFIX}reopened",
    "closed": f"{PREFIX}closed",
    "recontacts": f"{PREFIX}recontacts",
    "rejected_actions": f"{PREFIX}rejected_actions",
    "notifications_failed": f"{PREFIX}notifications_failed",
}
# An SLA is minutes to days; the SDK's default buckets stop at 10 s and would put every incident in +Inf.
_SECOND_MS = 1000.0
DURATION_BUCKETS_MS = tuple(
    _SECOND_MS * seconds
    for seconds in (
        1,
        10,
        60,
        5 * 60,
        15 * 60,
        30 * 60,
        3600,
        2 * 3600,
        4 * 3600,
        8 * 3600,
        86400,
        3 * 86400,
        7 * 86400,
    )
)
HISTOGRAM_BUCKETS = {NAMES["time_to_acknowledge"]: DURATION_BUCKETS_MS, NAMES["time_to_resolve"]: DURATION_BUCKETS_MS}
_REFUND_OUTCOMES = {
    EventType.refund_requested: "requested",
    EventType.refund_succeeded: "succeeded",
    EventType.refund_failed: "failed",
    EventType.refund_settled: "settled_by_hand",
}


class IncidentMetrics:
    """The instruments of one workflow run, created once from its meter."""

    def __init__(self, meter: MetricMeter) -> None:
        self._opened = meter.create_counter(NAMES["opened"], "incidents opened, by severity")
        self._escalations = meter.create_counter(NAMES["escalations"], "escalations, by line and reason")
        self._breaches = meter.create_counter(NAMES["sla_breaches"], "SLA breaches, by clock")
        self._to_ack = meter.create_histogram_timedelta(
            NAMES["time_to_acknowledge"], "from opening to the first acknowledgement", "ms"
        )
        self._to_resolve = meter.create_histogram_timedelta(
            NAMES["time_to_resolve"], "from opening (or reopening) to resolution", "ms"
        )
        self._refunds = meter.create_counter(NAMES["refunds"], "refund payment rounds and their outcomes")
        self._compensations = meter.create_counter(NAMES["compensations"], "goodwill credits, by outcome")
        self._callbacks = meter.create_counter(NAMES["callbacks"], "satisfaction callbacks asked")
        self._feedback = meter.create_counter(NAMES["feedback"], "feedback answers, by score")
        self._reopened = meter.create_counter(NAMES["reopened"], "incidents reopened")
        self._closed = meter.create_counter(NAMES["closed"], "incidents closed, by severity")
        self._recontacts = meter.create_counter(NAMES["recontacts"], "customers who got in touch again")
        self._rejected = meter.create_counter(NAMES["rejected_actions"], "actions the incident refused, by action")
        self._notify_failed = meter.create_counter(NAMES["notifications_failed"], "notifications given up")

    def record(self, state: IncidentState, events: Sequence[IncidentEvent]) -> None:
        severity = {"severity": state.severity.value}
        for event in events:
            data = event.data
            match event.type:
                case EventType.opened:
                    self._opened.add(1, severity)
                case EventType.escalated:
                    self._escalations.add(
                        1,
                        {
                            **severity,
                            "from_line": str(data.get("from_line")),
                            "to_line": str(data.get("to_line")),
                            "reason": str(data.get("reason")),
                        },
                    )
                case EventType.sla_breached:
                    self._breaches.add(1, {**severity, "clock": str(data.get("clock"))})
                case EventType.acknowledged if "took_over_from" not in data and state.acknowledged_at == event.at:
                    self._to_ack.record(event.at - state.opened_at, severity)
                case EventType.resolved:
                    self._to_resolve.record(event.at - _open_since(state, event), severity)
                case (
                    EventType.refund_requested
                    | EventType.refund_succeeded
                    | EventType.refund_failed
                    | (EventType.refund_settled)
                ):
                    self._refunds.add(1, {"outcome": _REFUND_OUTCOMES[event.type]})
                case EventType.compensation_granted:
                    self._compensations.add(1, {"outcome": "granted"})
                case EventType.compensation_failed:
                    self._compensations.add(1, {"outcome": "failed"})
                case EventType.feedback_requested:
                    self._callbacks.add(1, severity)
                case EventType.feedback_received:
                    self._feedback.add(1, {"score": str(data.get("score"))})
                case EventType.reopened:
                    self._reopened.add(1, severity)
                case EventType.closed:
                    self._closed.add(1, severity)
                case EventType.customer_recontacted:
                    self._recontacts.add(1, severity)
                case EventType.action_rejected:
                    self._rejected.add(1, {"action": str(data.get("action"))})
                case EventType.notification_failed:
                    self._notify_failed.add(1)
                case _:
                    pass


def _open_since(state: IncidentState, resolved: IncidentEvent) -> datetime:
    """When the stretch of work this resolution ends began: the opening, or the latest reopening."""
    start = state.opened_at
    for event in state.events:
        if event.seq >= resolved.seq:
            break
        if event.type is EventType.reopened:
            start = event.at
    return start
