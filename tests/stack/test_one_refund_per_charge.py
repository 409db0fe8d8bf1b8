"""One refund per charge (issue 15): two incidents race to refund the same charge on the real dev server.

Each incident claims the charge by starting its workflow `refund-<charge>` (activities/charges.py) before it
pays; Temporal grants the id once, so one incident pays and the other records the refund refused, naming the
first. The payment sandbox's ledger, over real HTTP, holds one payment for the charge.
"""

from __future__ import annotations

import asyncio
import uuid

from temporalio.testing import WorkflowEnvironment

from tests.harness import Sandboxes, running_worker
from tests.helpers import event_types, events_of, start_incident, until
from tests.policies import fast_policy
from workflows.contracts import charge_workflow_id
from workflows.domain.models import FINISHED_REFUND, IncidentState


def refund_done(state: IncidentState) -> bool:
    return state.refund is not None and state.refund.status in FINISHED_REFUND


async def test_two_incidents_racing_to_refund_one_charge_pay_it_once(
    dev_env: WorkflowEnvironment, sandboxes: Sandboxes
):
    charge = f"ch_{uuid.uuid4().hex[:10]}"
    refund = {"amount": "1200.00", "currency": "RUB", "charge": charge}
    policy = fast_policy(line_timeouts={"1": "1h", "2": "1h"})
    # The provider answers slowly, so both incidents are at the charge at the same time whoever claims first.
    await sandboxes.set_payment_faults(delay_seconds=1)
    try:
        async with running_worker(dev_env.client, sandboxes) as running:
            first, second = await asyncio.gather(
                *(
                    start_incident(
                        running, policy=policy, customer_id=customer, category="payment_not_refunded", refund=refund
                    )
                    for customer in ("42", "43")
                )
            )
            states = [await until(handle, refund_done, within=30) for handle in (first, second)]
    finally:
        await sandboxes.set_payment_faults(delay_seconds=0)
    paid = [s for s in states if s.refund is not None and s.refund.status == "paid"]
    refused = [s for s in states if s.refund is not None and s.refund.status == "refused"]
    assert len(paid) == 1 and len(refused) == 1, [s.refund for s in states]
    winner, loser = paid[0], refused[0]
    assert loser.refund is not None and loser.refund.refunded_by == winner.ticket_id
    [event] = events_of(loser, "refund_refused")
    assert winner.ticket_id in event.data["reason"] and event.data["charge"] == charge
    assert "refund_succeeded" not in event_types(loser)
    ledger = await sandboxes.ledger(charge=charge)
    assert [(e["reference"], e["amount"]) for e in ledger] == [(winner.ticket_id, "1200.00")]
    # The claim is the charge's own execution, naming the ticket that holds it.
    description = await dev_env.client.get_workflow_handle(charge_workflow_id(charge)).describe()
    assert await description.memo_value("ticket_id") == winner.ticket_id
