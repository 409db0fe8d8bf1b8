"""Claim a charge for the incident that refunds it: one refund per charge, across all incidents.

The claim is the start of the charge's own workflow (`refund-<charge>`, workflows/charge_workflow.py),
which Temporal grants once per id, atomically: the incident that starts it refunds the charge, and any
other learns its ticket from the execution's memo. Asking again for the same incident (a retried
activity, a retried refund, a run continued as new) finds its own claim.
"""

from __future__ import annotations

from temporalio import activity
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from workflows.contracts import CHARGE_REFUND_WORKFLOW_TYPE, CLAIM_CHARGE, ChargeClaim, charge_workflow_id

HOLDER_MEMO = "ticket_id"


class ChargeActivities:
    def __init__(self, client: Client) -> None:
        self._client = client

    @activity.defn(name=CLAIM_CHARGE)
    async def claim_charge(self, claim: ChargeClaim) -> str:
        """The ticket that holds the charge: this claim's own, or the one that claimed it first."""
        workflow_id = charge_workflow_id(claim.charge)
        money = f"{claim.money.amount:.2f} {claim.money.currency}"
        try:
            await self._client.start_workflow(
                CHARGE_REFUND_WORKFLOW_TYPE,
                claim,
                id=workflow_id,
                task_queue=activity.info().task_queue,
                # Never a second execution for the charge: not while one runs, nor after it completed.
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                memo={HOLDER_MEMO: claim.ticket_id},
                static_summary=f"refund of charge {claim.charge}: {money} by {claim.ticket_id}",
            )
        except WorkflowAlreadyStartedError:
            description = await self._client.get_workflow_handle(workflow_id).describe()
            holder: str = await description.memo_value(HOLDER_MEMO, type_hint=str)
            return holder
        return claim.ticket_id
