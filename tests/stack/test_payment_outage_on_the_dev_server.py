"""A payment provider slower than an attempt, on the dev server (real seconds: each attempt times out):
the refund becomes a line-2 task and the incident never wedges (tests/workflow/test_payment_outage.py
has the provider down for days, time-skipped)."""

from __future__ import annotations

from temporalio.testing import WorkflowEnvironment

from tests.harness import Sandboxes, running_worker
from tests.helpers import start_incident, until
from tests.policies import fast_policy


async def test_a_provider_slower_than_an_attempt_never_wedges_the_incident(
    dev_env: WorkflowEnvironment, sandboxes: Sandboxes
):
    """Every attempt times out (the provider answers after 12 s, an attempt may take 10 s): the refund
    becomes a line-2 task at the give-up time, and the incident's workflow task never fails on the way."""
    await sandboxes.set_payment_faults(delay_seconds=12)
    try:
        async with running_worker(dev_env.client, sandboxes) as running:
            handle = await start_incident(
                running,
                policy=fast_policy(line_timeouts={"1": "1h", "2": "1h"}),
                category="payment_not_refunded",
                refund={"amount": "100.00", "currency": "RUB"},
            )
            state = await until(handle, lambda s: s.refund is not None and s.refund.status == "failed", within=60)
            assert state.refund is not None and "timeout" in (state.refund.failure or "")
            history = await handle.fetch_history()
            assert not any(e.HasField("workflow_task_failed_event_attributes") for e in history.events)
    finally:
        await sandboxes.set_payment_faults(delay_seconds=0)
