"""The worker process and CPython's garbage collector: start-up objects kept out of its walks, and the
pauses of its full collections on the metrics endpoint.

A full collection walks every object the collector tracks and holds the interpreter while it does, so no
workflow task, query or activity of the worker moves meanwhile. A worker's cached incidents are most of
what it walks (about 190 objects each), so the pause grows with the cache: docs/sizing.md has the figures.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from temporalio.common import MetricMeter

FULL_PAUSE_METRIC = "incidents_worker_gc_full_pause"
# Milliseconds: the SDK's default buckets are coarse where these pauses fall (tens to thousands of ms).
FULL_PAUSE_BUCKETS_MS = (5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0)
FULL = 2  # the oldest generation: a collection of it walks everything tracked


def freeze_start_up_objects() -> None:
    """Move what the process built before its first task (modules, the SDK, the policy catalogue) out of
    the collector's walks: they live as long as the process. Collected first, so that only what is still
    in use is frozen; a frozen object that dies later is still freed by its reference count.
    """
    gc.collect()
    gc.freeze()


class FullCollectionPauses:
    """A `gc.callbacks` entry recording how long each full collection held the interpreter.

    Young collections are left out: they come thousands of times a second under load and take well under
    a millisecond each, while a full one takes a tenth of a second to seconds with a large cache.
    """

    def __init__(self, meter: MetricMeter) -> None:
        self._pauses = meter.create_histogram_timedelta(
            FULL_PAUSE_METRIC, "how long each full garbage collection held the worker's interpreter", "ms"
        )
        self._started: float | None = None

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if info["generation"] != FULL:
            return
        if phase == "start":
            self._started = time.perf_counter()
        elif self._started is not None:
            self._pauses.record(timedelta(seconds=time.perf_counter() - self._started))
            self._started = None


@contextmanager
def full_collection_pauses_recorded(meter: MetricMeter | None) -> Iterator[None]:
    """Record full collections' pauses on `meter` while in the block (nothing without a meter)."""
    if meter is None:
        yield
        return
    callback = FullCollectionPauses(meter)
    gc.callbacks.append(callback)
    try:
        yield
    finally:
        gc.callbacks.remove(callback)
