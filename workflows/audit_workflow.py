"""IncidentAudit: what the `incidents-audit` Schedule starts; the audit itself is an activity."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from workflows.contracts import AUDIT_INCIDENTS, AuditReport


@workflow.defn(name="IncidentAudit")
class IncidentAuditWorkflow:
    @workflow.run
    async def run(self, grace_seconds: float) -> AuditReport:
        report: AuditReport = await workflow.execute_activity(
            AUDIT_INCIDENTS,
            grace_seconds,
            result_type=AuditReport,
            start_to_close_timeout=timedelta(minutes=2),
            retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=1), maximum_attempts=10),
            summary="audit: incidents that ended unclosed or run past their deadline",
        )
        return report
