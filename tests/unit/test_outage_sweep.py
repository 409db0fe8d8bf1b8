"""A major incident's sweep waits for the incidents its first fan-out signalled before it looks for the ones
that job missed: started at once, a sweep of 2,000 resolved incidents signalled 1,481 of them a second time."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

from activities.outages import left_to_reach

POLL = timedelta(milliseconds=5)
QUIET = timedelta(milliseconds=50)


def counts(*values: int) -> tuple[Callable[[], Awaitable[int]], list[int]]:
    """A visibility count that answers `values` in turn (the last one from then on), and the answers given."""
    given: list[int] = []

    async def count() -> int:
        given.append(values[min(len(given), len(values) - 1)])
        return given[-1]

    return count, given


async def test_a_sweep_has_none_left_once_the_first_jobs_incidents_have_all_acted_on_it():
    count, given = counts(2000, 1500, 900, 300, 0)
    assert await left_to_reach(count, lambda left: None, POLL, QUIET) == 0
    assert given == [2000, 1500, 900, 300, 0], "it asked until none was left, and no longer"


async def test_a_sweep_reaches_those_left_once_the_count_stops_falling():
    count, given = counts(2000, 1000, 40)
    beats: list[int] = []
    assert await left_to_reach(count, beats.append, POLL, QUIET) == 40
    assert given[:3] == [2000, 1000, 40] and len(given) >= 3 + QUIET / POLL / 2, "it waited QUIET at the lowest"
    assert beats[:3] == [2000, 1000, 40], "it heartbeats what is left while it waits"


async def test_a_count_that_keeps_falling_is_waited_for_at_most_so_long():
    falling = iter(range(10**6, 0, -1))

    async def count() -> int:
        return next(falling)

    left = await left_to_reach(count, lambda left: None, POLL, quiet=timedelta(hours=1), at_most=QUIET)
    assert 0 < left < 10**6


async def test_none_to_reach_from_the_start_asks_once():
    count, given = counts(0)
    assert await left_to_reach(count, lambda left: None, POLL, QUIET) == 0
    assert given == [0]
