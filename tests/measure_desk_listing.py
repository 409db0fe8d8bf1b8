"""How long one reconciliation of the desk's queue takes to list N running incidents on the dev server:
`flock /tmp/bench.lock python -m tests.measure_desk_listing 1000` (docs/operating.md, The agent desk).

The incidents are started with no worker serving them: visibility holds the same rows as for real ones,
and the listing is the desk's own (`starter.desk.app._listing`)."""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from temporalio.common import SearchAttributePair, TypedSearchAttributes

from starter.desk.app import _listing
from starter.incidents import IncidentService
from tests.harness import dev_server
from workflows import search_attributes as sa
from workflows.domain.inputs import WORKFLOW_TYPE


async def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async with dev_server(Path(tmp) / "t.sqlite") as env:
            client = env.client
            sem = asyncio.Semaphore(50)

            async def start(i: int) -> None:
                async with sem:
                    attrs = TypedSearchAttributes(
                        [
                            SearchAttributePair(sa.STATUS, "open"),
                            SearchAttributePair(sa.LINE, 1),
                            SearchAttributePair(sa.SEVERITY, "critical"),
                            SearchAttributePair(sa.ASSIGNEE, "ann"),
                            SearchAttributePair(sa.CUSTOMER, f"c{i}"),
                            SearchAttributePair(sa.CATEGORY, "connection_lost"),
                            SearchAttributePair(sa.NEXT_DEADLINE, datetime.now(UTC)),
                        ]
                    )
                    await client.start_workflow(
                        WORKFLOW_TYPE, id=f"INC-M{i:05d}", task_queue="nobody-serves-it", search_attributes=attrs
                    )

            await asyncio.gather(*(start(i) for i in range(n)))
            list_incidents = _listing(IncidentService(client))
            for _ in range(600):  # visibility shows the starts a little later
                if len(await list_incidents("ExecutionStatus = 'Running'")) >= n:
                    break
                await asyncio.sleep(0.5)
            times = []
            for _ in range(20):
                t = time.perf_counter()
                rows = await list_incidents("ExecutionStatus = 'Running'")
                times.append((time.perf_counter() - t) * 1000)
            assert len(rows) == n
            times.sort()
            print(
                f"{n} running incidents: one reconciliation's listing p50 {statistics.median(times):.0f} ms,"
                f" max {times[-1]:.0f} ms ({len(times)} runs)"
            )


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000))
