"""Domain metrics from the incident's own events, through the replay-safe workflow metric meter.

The workflow calls `record(meter, state, new_events)` with the domain events it
recorded since the last call; the meter drops emissions during replay, so a
replayed incident is not counted twice. (Issue 4 fills this in.)
"""

from __future__ import annotations

from collections.abc import Sequence

from temporalio.common import MetricMeter

from workflows.domain.models import IncidentEvent, IncidentState


def record(meter: MetricMeter, state: IncidentState, new_events: Sequence[IncidentEvent]) -> None:
    return None
