"""The incident worker: the workflow and its activities, wired to real HTTP clients."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx
from temporalio.client import Client
from temporalio.worker import Interceptor, Worker

from activities.audit import AuditActivities
from activities.notifications import NotificationActivities
from activities.payments import PaymentActivities
from workers.settings import WorkerSettings
from workers.telemetry import instrument_http_client, worker_interceptors
from workflows.audit_workflow import IncidentAuditWorkflow
from workflows.incident_workflow import IncidentWorkflow
from workflows.intake_workflow import IncidentIntakeWorkflow


def build_worker(
    client: Client,
    http: httpx.AsyncClient,
    settings: WorkerSettings | None = None,
    *,
    task_queue: str | None = None,
    interceptors: Sequence[Interceptor] = (),
    **options: Any,
) -> Worker:
    settings = settings or WorkerSettings()
    notifications = NotificationActivities(
        http, settings.notify_url, settings.webhook_secret.get_secret_value().encode()
    )
    payments = PaymentActivities(http, settings.payments_url)
    audit = AuditActivities(client, notifications)
    return Worker(
        client,
        task_queue=task_queue or settings.task_queue,
        workflows=[IncidentWorkflow, IncidentIntakeWorkflow, IncidentAuditWorkflow],
        activities=[notifications.send_notifications, payments.make_payment, audit.audit_incidents],
        interceptors=[*worker_interceptors(), *interceptors],
        **{"max_cached_workflows": settings.max_cached_workflows, **options},
    )


def http_client(settings: WorkerSettings) -> httpx.AsyncClient:
    return instrument_http_client(httpx.AsyncClient(timeout=settings.http_timeout_seconds))
