"""ChargeRefund: one execution per charge a refund reverses; its workflow id, `refund-<charge>`, is the claim.

Temporal starts one execution per workflow id, atomically, whoever asks: of two incidents refunding the
same charge at the same moment (the customer called twice, two agents on two tickets), one starts it
and pays; the other learns which ticket holds the charge and pays nothing (activities/charges.py). The
execution ends at once: its id stays taken for as long as the namespace keeps closed executions (its
retention); beyond that, the refund's idempotency key, derived from the charge alone, has the provider
refuse a second payment of it.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.contracts import CHARGE_REFUND_WORKFLOW_TYPE, ChargeClaim


@workflow.defn(name=CHARGE_REFUND_WORKFLOW_TYPE)
class ChargeRefundWorkflow:
    @workflow.run
    async def run(self, claim: ChargeClaim) -> ChargeClaim:
        return claim
