"""The scheduled audit: find vanished incident executions and alert the SREs through the webhook."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from temporalio import activity
from temporalio.client import Client

from activities.audit_findings import count_closed, find_vanished, render
from activities.notifications import NotificationActivities
from workflows.contracts import AUDIT_INCIDENTS, AuditReport, Notification


class AuditActivities:
    def __init__(self, client: Client, notifier: NotificationActivities) -> None:
        self._client = client
        self._notifier = notifier

    @activity.defn(name=AUDIT_INCIDENTS)
    async def audit_incidents(self, grace_seconds: float) -> AuditReport:
        findings = await find_vanished(self._client, timedelta(seconds=grace_seconds))
        tally = await count_closed(self._client)
        tickets = list(dict.fromkeys(f.ticket_id for f in findings))
        if findings:
            # One alert per distinct set of findings per day: a retried activity does not page twice.
            problems = sorted(f"{f.ticket_id}/{f.run_id}:{f.kind}" for f in findings)
            fingerprint = hashlib.sha256(",".join(problems).encode()).hexdigest()[:12]
            await self._notifier.deliver(
                Notification(
                    id=f"audit:{datetime.now(UTC):%Y-%m-%d}:{fingerprint}",
                    ticket_id="audit",
                    recipient="sre",
                    kind="audit_alert",
                    message=render(findings, tally),
                )
            )
        return AuditReport(
            findings=len(findings),
            tickets=tickets,
            alerted=bool(findings),
            closed=tally.closed,
            self_resolved=tally.self_resolved,
        )
