"""The bench's verdict rows judge the figures they print against the targets they print."""

from __future__ import annotations

from typing import Any

from bench.run import MEMORY_RATIO, Verdict, verdicts, warnings


class Figures(dict[str, Any]):
    """A run's figures: those a test gives, and 1.0 for every other one a row reads."""

    def __missing__(self, key: str) -> float:
        return 1.0


def memory_row(kb_per_incident: float, kb_per_bare: float) -> Verdict:
    figures = Figures(
        memory_kb_per_incident=kb_per_incident, memory_kb_per_bare_workflow=kb_per_bare, memory_open_incidents=5000
    )
    return next(row for row in verdicts(figures) if row.figure.startswith("(5)"))


def test_memory_is_judged_against_the_bare_workflow_of_the_same_run() -> None:
    row = memory_row(kb_per_incident=60.0, kb_per_bare=50.0)
    assert row.target == f"<= {MEMORY_RATIO} x bare 50.0 KB"
    assert row.ratio == 60.0 / (MEMORY_RATIO * 50.0)
    assert row.passed is True


def test_memory_above_the_allowance_fails_with_its_ratio() -> None:
    row = memory_row(kb_per_incident=97.3, kb_per_bare=54.2)
    assert row.ratio is not None and round(row.ratio, 2) == 1.44
    assert row.passed is False
    # The same figure passes beside a bare workflow that costs as much: the row follows the run's bare figure.
    assert memory_row(kb_per_incident=97.3, kb_per_bare=80.0).passed is True


def test_the_evicted_round_is_flagged_by_wake_ups_that_found_their_run_cached_not_by_misses() -> None:
    # As a full run counted them: tasks that outwaited the sticky queue came back on the shared queue, no misses.
    counted = {"evicted_due_count": 500, "evicted_escalation_miss": 361, "evicted_escalation_forced_eviction": 499}
    assert not [note for note in warnings({**counted, "evicted_escalation_hit": 0}) if note.startswith("note: (8)")]
    assert "note: (8) 12 of the 500 incidents were still cached as they woke" in warnings(
        {**counted, "evicted_escalation_hit": 12}
    )
