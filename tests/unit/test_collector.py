"""The worker and the garbage collector: start-up objects frozen out of its walks, and the full collections'
pauses served on a real Temporal runtime's Prometheus endpoint."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import httpx
import pytest

from infra.telemetry import metrics_runtime
from tests.helpers import prometheus_sample as sample
from tests.sandbox_servers import free_port
from workers.collector import (
    FULL_PAUSE_BUCKETS_MS,
    FULL_PAUSE_METRIC,
    freeze_start_up_objects,
    full_collection_pauses_recorded,
)


@pytest.fixture
def no_automatic_collections() -> Iterator[None]:
    """Only the test's own collections run, so that they can be counted; whatever it froze is thawed after."""
    gc.disable()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.enable()


class Cycle:
    def __init__(self) -> None:
        self.me = self


def test_start_up_objects_leave_the_collectors_walks_and_garbage_is_collected_first(no_automatic_collections: None):
    kept = [[i] for i in range(20_000)]
    garbage = Cycle()
    dead = weakref.ref(garbage)
    del garbage
    walked_before = len(gc.get_objects())

    freeze_start_up_objects()

    assert dead() is None, "garbage in a cycle was frozen instead of collected"
    assert gc.get_freeze_count() >= len(kept)
    assert len(gc.get_objects()) <= walked_before - len(kept), "what was kept is still walked"
    assert not any(o is kept for o in gc.get_objects()), "the kept list is still walked"


def test_each_full_collections_pause_is_on_the_metrics_endpoint_and_young_ones_are_not(
    no_automatic_collections: None,
):
    port = free_port()
    runtime = metrics_runtime(port, "127.0.0.1", {FULL_PAUSE_METRIC: FULL_PAUSE_BUCKETS_MS})
    assert runtime is not None
    ballast = [{"n": i} for i in range(200_000)]  # a full collection walks these: a pause of some ms

    with full_collection_pauses_recorded(runtime.metric_meter):
        gc.collect()
        gc.collect()
        gc.collect(0)
        gc.collect(1)
    gc.collect()  # after the block: not recorded
    del ballast

    text = httpx.get(f"http://127.0.0.1:{port}/metrics").raise_for_status().text
    assert sample(text, f"{FULL_PAUSE_METRIC}_count") == 2
    assert sample(text, f"{FULL_PAUSE_METRIC}_sum") > 0
    # The pause's own buckets (ms), not the SDK's defaults: they start at 5 ms and reach 5 s.
    assert sample(text, f"{FULL_PAUSE_METRIC}_bucket", le="5000") == 2
    assert sample(text, f"{FULL_PAUSE_METRIC}_bucket", le="+Inf") == 2


def test_without_a_meter_nothing_is_hooked(no_automatic_collections: None):
    hooked = list(gc.callbacks)
    with full_collection_pauses_recorded(None):
        assert gc.callbacks == hooked
        gc.collect()
    assert gc.callbacks == hooked
