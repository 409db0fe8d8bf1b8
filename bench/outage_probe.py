"""A focused look at (7): N incidents linked to one major incident, resolved together, against raw Temporal's
batch signal to N bare workflows.

    python -m bench.outage_probe [--count 2000]

Starts the bench's stack, runs only its (7) phase (bench/outages.py) and prints the figures, among them each
process's CPU seconds over the raw batch signal and over the mass resolve: where the incident side's extra
seconds go. Quicker to iterate on than `make bench`, whose (7) row stays the figure of record.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import shutil
import tempfile
from pathlib import Path

from bench import outages
from bench.measures import FULL, Bench, progress
from infra.exiting import exit_process


async def probe(count: int) -> dict[str, object]:
    folder = Path(tempfile.mkdtemp(prefix="incidents-outage-probe-"))
    bench = Bench(dataclasses.replace(FULL, outage_linked=count), folder)
    progress(f"outage probe ({count} linked), logs in {folder}")
    try:
        await bench.start()
        progress(f"  worker pid {bench.worker.pid}, dev server pid {bench.server.pid}")
        await outages.measure(bench)
        if bench.outage_ended is not None:
            await bench.outage_ended
    finally:
        bench.processes.stop()
    shutil.rmtree(folder, ignore_errors=True)
    return {name: value for name, value in bench.figures.items() if name.startswith("outage_")}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.outage_probe", description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--count", type=int, default=FULL.outage_linked, help="incidents linked to the outage")
    arguments = parser.parse_args(argv)
    print(json.dumps(asyncio.run(probe(arguments.count)), indent=2, default=str))


if __name__ == "__main__":
    main()
    exit_process(0)
