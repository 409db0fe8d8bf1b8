"""`make bench`: the incident system side by side with raw Temporal, measured in one run.

Starts its own dev servers (SQLite files in a temporary folder: one with
journal_mode=wal + synchronous=normal, one with SQLite's default pragmas), an
incident worker process, bare-Temporal worker processes, the sandboxes and the
HTTP API, all on free ports, then measures: (1) a bare workflow of the
incident's shape, completed per second; (2) incident lifecycles per second
through IncidentService; (3) an agent's action through the HTTP API until
GET shows it, against a raw signal-then-query; (4) escalation lag behind
line-1 deadlines due in the same second, against bare timers; (5) worker
memory per cached open incident, against a bare waiting workflow; (6) the
history of a full critical lifecycle; (7) the agent desk's queue page with 1,000 open incidents and
how soon an action shows on another agent's open desk; (8) escalation lag of incidents no longer in the
worker's cache (thousands open, a cache of 1,000), against bare timers evicted alike; and the SQLite
pragmas' effect. Prints a
table and one JSON document. `--quick` shrinks every count for a smoke run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

from bench.measures import FULL, QUICK, Bench, progress
from infra.binaries import temporal_cli
from infra.exiting import exit_process


@dataclass(frozen=True)
class Verdict:
    figure: str
    value: str
    target: str
    ratio: float | None  # the figure over its allowance: at most 1.0 passes (None: a reference figure)
    passed: bool | None


# (5): a cached open incident may cost at most this many times a bare waiting workflow, measured in the same run
# (issue 20: the SDK's own floor per cached run is about 50 KB here, so a fixed figure measured the machine).
MEMORY_RATIO = 1.25


def verdicts(f: dict[str, Any]) -> list[Verdict]:
    baseline, lifecycle = f["baseline_per_s"], f["lifecycle_per_s"]
    action_allowance = f["raw_signal_query_p95_ms"] + 50
    many, few = f["timers_many_count"], f["timers_few_count"]
    many_allowance = 1.5 * f["bare_timer_lag_many_p99_ms"]
    few_allowance = min(1000.0, 1.5 * f["bare_timer_lag_few_p99_ms"])
    memory_allowance = MEMORY_RATIO * f["memory_kb_per_bare_workflow"]
    rows = [
        Verdict("(1) baseline: bare incident shape", f"{baseline:.1f}/s", "reference", None, None),
        Verdict(
            "(2) incident lifecycles",
            f"{lifecycle:.1f}/s ({f['lifecycle_ratio']:.0%})",
            ">= 50% of (1)",
            0.5 / f["lifecycle_ratio"],
            f["lifecycle_ratio"] >= 0.5,
        ),
        Verdict(
            f"(3) action via HTTP, {f['latency_open_incidents']} open",
            f"p50 {f['action_p50_ms']:.0f} p95 {f['action_p95_ms']:.0f} p99 {f['action_p99_ms']:.0f} ms",
            f"p95 <= raw {f['raw_signal_query_p95_ms']:.0f} + 50 ms",
            f["action_p95_ms"] / action_allowance,
            f["action_p95_ms"] <= action_allowance,
        ),
        Verdict(
            f"(4) escalation lag, {many} due at once",
            f"p50 {f['escalation_lag_many_p50_ms']:.0f} p99 {f['escalation_lag_many_p99_ms']:.0f} ms",
            f"p99 <= 1.5 x bare p99 {f['bare_timer_lag_many_p99_ms']:.0f} ms",
            f["escalation_lag_many_p99_ms"] / many_allowance,
            f["escalation_lag_many_p99_ms"] <= many_allowance,
        ),
        Verdict(
            f"(4) escalation lag, {few} due at once",
            f"p50 {f['escalation_lag_few_p50_ms']:.0f} p99 {f['escalation_lag_few_p99_ms']:.0f} ms",
            f"p99 <= 1.5 x bare p99 {f['bare_timer_lag_few_p99_ms']:.0f} ms, <= 1 s",
            f["escalation_lag_few_p99_ms"] / few_allowance,
            f["escalation_lag_few_p99_ms"] <= few_allowance,
        ),
        Verdict(
            f"(4) raw Temporal woken into page, upsert, timer, {few} due",
            f"p99 {f['bare_escalation_lag_few_p99_ms']:.0f} ms"
            f" (incidents {f['escalation_lag_few_p99_ms'] / f['bare_escalation_lag_few_p99_ms']:.2f}x)",
            "reference: the commands' floor",
            None,
            None,
        ),
        Verdict(
            f"(5) worker memory, {f['memory_open_incidents']} open",
            f"{f['memory_kb_per_incident']:.1f} KB/incident (bare {f['memory_kb_per_bare_workflow']:.1f})",
            f"<= {MEMORY_RATIO} x bare {f['memory_kb_per_bare_workflow']:.1f} KB",
            f["memory_kb_per_incident"] / memory_allowance,
            f["memory_kb_per_incident"] <= memory_allowance,
        ),
        Verdict(
            "(6) full critical lifecycle",
            f"{f['history_events']} events, {f['history_payload_bytes']} payload B",
            "<= 60 events",
            f["history_events"] / 60,
            f["history_events"] <= 60,
        ),
        *outage_verdicts(f),
        Verdict(
            f"(7) desk queue page, {f['desk_open_incidents']} open",
            f"server p50 {f['desk_queue_server_p50_ms']:.0f} p95 {f['desk_queue_server_p95_ms']:.0f} ms",
            "p95 <= 300 ms",
            f["desk_queue_server_p95_ms"] / 300,
            f["desk_queue_server_p95_ms"] <= 300,
        ),
        Verdict(
            "(7) desk read model rebuilt from visibility",
            f"{f['desk_read_model_fed_s']:.1f} s for {f['desk_open_incidents']} open",
            "reference",
            None,
            None,
        ),
        Verdict(
            "(7) action until another desk shows it",
            f"p50 {f['desk_action_seen_p50_ms']:.0f} p95 {f['desk_action_seen_p95_ms']:.0f} ms",
            "p95 <= 2000 ms",
            f["desk_action_seen_p95_ms"] / 2000,
            f["desk_action_seen_p95_ms"] <= 2000,
        ),
        *evicted_verdicts(f),
        Verdict(
            "SQLite wal+normal vs defaults",
            f"{f['sqlite_wal_normal_per_s']:.1f} vs {f['sqlite_default_pragmas_per_s']:.1f}/s",
            "reference",
            None,
            None,
        ),
    ]
    return rows


# Declared, resolved, two link and two resolve fan-outs, pages and board posts: never a step per incident.
OUTAGE_HISTORY_EVENTS = 120


def outage_verdicts(f: dict[str, Any]) -> list[Verdict]:
    """(7) bench/outages.py: a major incident's linked incidents page nobody, and resolve together near raw speed."""
    if "outage_mass_resolve_s" not in f:
        return []
    count, pages = f["outage_linked_count"], f["outage_linked_line_pages"] + f["outage_linked_escalated"]
    allowance = 1.5 * f["outage_raw_batch_signal_s"]
    return [
        Verdict(
            f"(7) {count} linked, own deadlines in 1 ms",
            f"{f['outage_linked_line_pages']} line pages, {f['outage_linked_escalated']} escalated",
            "0 pages",
            None,
            pages == 0,
        ),
        Verdict(
            f"(7) mass resolve of {count} linked",
            f"{f['outage_mass_resolve_s']:.1f}s (raw batch signal {f['outage_raw_batch_signal_s']:.1f}s)",
            "<= 1.5 x raw",
            f["outage_mass_resolve_s"] / allowance,
            f["outage_mass_resolve_s"] <= allowance,
        ),
        Verdict(
            "(7) the major incident's own history",
            f"{f['outage_history_events']} events",
            f"<= {OUTAGE_HISTORY_EVENTS} whatever the count",
            f["outage_history_events"] / OUTAGE_HISTORY_EVENTS,
            f["outage_history_events"] <= OUTAGE_HISTORY_EVENTS,
        ),
    ]


# An evicted incident wakes by replaying its history: at most this many times the bare timer's lag under the same cache.
EVICTED_LAG_FACTOR = 2.0


def evicted_verdicts(f: dict[str, Any]) -> list[Verdict]:
    """(8) bench/evicted.py: deadlines of incidents no longer in the worker's cache, against bare timers alike."""
    if "evicted_escalation_lag_p99_ms" not in f:
        return []
    allowance = EVICTED_LAG_FACTOR * f["evicted_bare_timer_lag_p99_ms"]
    sizes = f"{f['evicted_due_count']} of {f['evicted_open_incidents']} open, cache {f['evicted_cache']}"
    return [
        Verdict(
            f"(8) evicted escalation lag, {sizes}",
            f"p50 {f['evicted_escalation_lag_p50_ms']:.0f} p99 {f['evicted_escalation_lag_p99_ms']:.0f} ms "
            f"(cached p99 {f['evicted_cached_escalation_lag_p99_ms']:.0f})",
            f"p99 <= {EVICTED_LAG_FACTOR:g} x evicted bare p99 {f['evicted_bare_timer_lag_p99_ms']:.0f} ms",
            f["evicted_escalation_lag_p99_ms"] / allowance,
            f["evicted_escalation_lag_p99_ms"] <= allowance,
        ),
        Verdict(
            "(8) worker CPU per woken incident",
            f"evicted {f['evicted_escalation_worker_cpu_ms']:.1f} ms, "
            f"cached {f['evicted_cached_escalation_worker_cpu_ms']:.1f} "
            f"(replay {f['evicted_replay_worker_cpu_ms']:.1f}; "
            f"bare evicted {f['evicted_bare_timer_worker_cpu_ms']:.1f})",
            "reference",
            None,
            None,
        ),
    ]


def warnings(f: dict[str, Any]) -> list[str]:
    """Where a comparison was not like for like: the starts of (4) ran past the shared deadline."""
    out = []
    for label in ("many", "few"):
        for key, what in (
            ("incidents_open_late_s", "incidents"),
            ("bare_started_late_s", "bare timers"),
            ("bare_escalation_started_late_s", "bare escalations"),
        ):
            late = f.get(f"timers_{label}_{key}", 0.0)
            if late > 0:
                out.append(
                    f"note: (4) {f[f'timers_{label}_count']} {what} were still starting {late:.1f}s after their "
                    "deadline; those waited less and their lag includes the delay, so that row is not like for like"
                )
    for label in ("many", "few"):
        incidents, bare = (
            f.get(f"timers_{label}_incidents_outwaited_sticky"),
            f.get(f"timers_{label}_bare_outwaited_sticky"),
        )
        if incidents or bare:
            count = f[f"timers_{label}_count"]
            out.append(
                f"note: (4) of {count} due, {incidents or 0:.0%} of the incidents' and {bare or 0:.0%} of the bare "
                "timers' wake-up tasks outwaited the sticky queue (5 s) and were sent again with their whole history; "
                "the side that pays it more is slowed by it, so the ratio moves with it between runs"
            )
    if f.get("outage_linked_started_late_s", 0.0) > 0:
        out.append(
            f"note: (7) the last linked incidents opened {f['outage_linked_started_late_s']:.1f}s after their shared "
            "deadline: theirs had passed when they opened (it still fell due, and paged nobody)"
        )
    swept = f.get("outage_fan_outs", {}).get("resolve 2")
    if swept:
        out.append(
            f"note: (7) the major incident's sweep signalled {swept} incidents after its first fan-out; any it "
            "reached a second time made the mass resolve slower"
        )
    for label, what in (("evicted_escalation", "incidents"), ("evicted_bare_timer", "bare timers")):
        if f.get(f"{label}_late_s", 0.0) > 0:
            out.append(
                f"note: (8) the evicted {what} were still opening or being pushed out of the cache "
                f"{f[f'{label}_late_s']:.1f}s after their deadline; that row is not like for like"
            )
        # Not the misses: a task that outwaited the sticky queue's schedule-to-start timeout comes again on the
        # shared queue with its whole history, and the SDK counts no miss for it (a full run: 361 misses, 1 hit,
        # 499 forced evictions for 500 wake-ups). A hit is a wake-up that found its run still cached.
        hits, due = f.get(f"{label}_hit"), f.get("evicted_due_count")
        if hits and due is not None:
            out.append(f"note: (8) {hits} of the {due} {what} were still cached as they woke")
    return out


def table(rows: list[Verdict]) -> str:
    header = Verdict("figure", "value", "target", None, None)
    widths = [max(len(getattr(r, name)) for r in [header, *rows]) for name in ("figure", "value", "target")]

    def line(row: Verdict, ratio: str, verdict: str) -> str:
        cells = [
            getattr(row, name).ljust(width) for name, width in zip(("figure", "value", "target"), widths, strict=True)
        ]
        return "  ".join([*cells, ratio.rjust(5), verdict])

    out = [line(header, "ratio", "pass")]
    for row in rows:
        ratio = "-" if row.ratio is None else f"{row.ratio:.2f}"
        verdict = "-" if row.passed is None else ("yes" if row.passed else "NO")
        out.append(line(row, ratio, verdict))
    return "\n".join(out)


def machine() -> dict[str, Any]:
    server = subprocess.run([temporal_cli(), "--version"], capture_output=True, text=True, check=False).stdout.strip()
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    total_kb = next((int(line.split()[1]) for line in meminfo if line.startswith("MemTotal:")), 0)
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "ram_gb": round(total_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "temporalio": version("temporalio"),
        "temporal_cli": server,
    }


async def run(quick: bool) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="incidents-bench-"))
    bench = Bench(QUICK if quick else FULL, folder)
    started = time.monotonic()
    progress(f"bench ({'quick' if quick else 'full'}), logs in {folder}")
    # Killed from outside (a CI timeout): cancel the run, so the children below are stopped too.
    main_task = asyncio.current_task()
    assert main_task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    try:
        await bench.start()
        progress(f"  stack up: {time.monotonic() - started:.1f}s")
        await bench.measure()
    except BaseException:
        progress(f"bench failed; the processes' logs stay in {folder}")
        bench.processes.stop()
        raise
    stopping = time.monotonic()
    bench.processes.stop()
    progress(f"  processes stopped: {time.monotonic() - stopping:.1f}s")
    shutil.rmtree(folder, ignore_errors=True)
    rows = verdicts(bench.figures)
    return {
        "mode": "quick" if quick else "full",
        "sizes": asdict(bench.sizes),
        "total_seconds": round(time.monotonic() - started, 1),
        "machine": machine(),
        "targets": [asdict(row) for row in rows],
        "figures": bench.figures,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small counts, under a minute: checks the bench works")
    parser.add_argument("--json-out", type=Path, help="also write the JSON document to this file")
    arguments = parser.parse_args(argv)
    document = asyncio.run(run(arguments.quick))
    rows = [Verdict(**row) for row in document["targets"]]
    print(table(rows))
    for line in warnings(document["figures"]):
        print(line)
    text = json.dumps(document, indent=2, default=str)
    print(text)
    if arguments.json_out is not None:
        arguments.json_out.write_text(text + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
    exit_process(0)
