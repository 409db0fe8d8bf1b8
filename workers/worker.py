"""The incident worker: the workflow and its activities, wired to real HTTP clients."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import httpx
from temporalio.client import Client
from temporalio.worker import Interceptor, PollerBehaviorSimpleMaximum, Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.audit import AuditActivities
from activities.calendars import CalendarActivities
from activities.charges import ChargeActivities
from activities.intake import IntakeActivities
from activities.notifications import NotificationActivities
from activities.outages import OutageActivities
from activities.payments import PaymentActivities
from activities.policies import PolicyActivities
from infra.codec import EncryptionCodec
from infra.telemetry import instrument_http_client, worker_interceptors
from workers import payload_passes
from workers.sandbox_runner import sandboxed_runner
from workers.settings import WorkerSettings
from workflows.audit_workflow import IncidentAuditWorkflow
from workflows.charge_workflow import ChargeRefundWorkflow
from workflows.domain.policy_catalogue import PolicyCatalogue
from workflows.incident_workflow import IncidentWorkflow
from workflows.intake_workflow import IncidentIntakeWorkflow
from workflows.outage_board_workflow import OutageBoardWorkflow
from workflows.outage_workflow import MajorIncidentWorkflow

PASSED_THROUGH = (
    "workflows",
    "infra.payloads",
    "infra.errors",
    "pydantic",
    "pydantic_core",
    "pydantic_extra_types",
    "yaml",
)


def build_worker(
    client: Client,
    http: httpx.AsyncClient,
    settings: WorkerSettings | None = None,
    *,
    task_queue: str | None = None,
    interceptors: Sequence[Interceptor] = (),
    policies: PolicyCatalogue | None = None,
    **options: Any,
) -> Worker:
    """`policies`: the policies incidents may name (default: those the settings name, and the shipped one)."""
    settings = settings or WorkerSettings()
    client = with_tolerant_codec(client)
    notifications = NotificationActivities(
        http, settings.notify_url, settings.signing_secret(), customer_pages=settings.customer_pages()
    )
    payments = PaymentActivities(http, settings.payments_url)
    audit = AuditActivities(client, notifications)
    intake = IntakeActivities(client)
    charges = ChargeActivities(client)
    known = PolicyActivities(policies if policies is not None else settings.policy_catalogue())
    calendars = CalendarActivities(settings.policy_file)
    outages = OutageActivities(client, notifications)
    return Worker(
        client,
        workflow_runner=workflow_runner(),
        task_queue=task_queue or settings.task_queue,
        workflows=[
            IncidentWorkflow,
            IncidentIntakeWorkflow,
            IncidentAuditWorkflow,
            ChargeRefundWorkflow,
            MajorIncidentWorkflow,
            OutageBoardWorkflow,
        ],
        activities=[
            notifications.send_notifications,
            payments.make_payment,
            payments.find_payment,
            charges.claim_charge,
            known.resolve_policy,
            audit.audit_incidents,
            intake.deliver_contact,
            intake.request_key_of,
            intake.incident_is_running,
            calendars.current_calendars,
            outages.fan_out_to_incidents,
            outages.post_outage_notice,
            outages.find_outages,
            outages.tell_area,
        ],
        interceptors=[*worker_interceptors(), *interceptors],
        **{
            "max_cached_workflows": settings.max_cached_workflows,
            "workflow_task_poller_behavior": PollerBehaviorSimpleMaximum(settings.workflow_task_pollers),
            "sticky_queue_schedule_to_start_timeout": timedelta(seconds=settings.sticky_queue_timeout_seconds),
            **options,
        },
    )


def with_tolerant_codec(client: Client) -> Client:
    """The worker's client decodes what any other client sent without ever raising.

    A payload its keys cannot open reaches the workflow marked (infra/payloads.py) and is refused
    there as a rejected action; a raising codec would fail the workflow task on every retry.
    """
    converter = client.data_converter
    if not isinstance(converter.payload_codec, EncryptionCodec):
        return client
    tolerant = dataclasses.replace(converter, payload_codec=converter.payload_codec.tolerant())
    config = client.config()
    config["data_converter"] = tolerant
    return Client(**config)


def workflow_runner() -> SandboxedWorkflowRunner:
    """The sandbox, with this project's workflow code passed through: imported once per process.

    Without this the sandbox re-imports the workflow modules for every workflow run and keeps
    that copy while the run is cached: most of a cached incident's memory. The passed-through
    modules are deterministic and free of import-time side effects and global mutable state;
    the replay tests hold them to it. The lean runner (workers/sandbox_runner.py) spares the
    sandbox's per-payload round trips, and the process skips the SDK's payload passes over each
    activation and completion while they can change nothing (workers/payload_passes.py).
    """
    payload_passes.install()
    return sandboxed_runner(restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSED_THROUGH))


def http_client(settings: WorkerSettings) -> httpx.AsyncClient:
    limits = httpx.Limits(
        max_connections=settings.http_max_connections, max_keepalive_connections=settings.http_max_connections
    )
    return instrument_http_client(httpx.AsyncClient(timeout=settings.http_timeout_seconds, limits=limits))
