"""The worker's branch of the settings tree: its tuning from the environment, and where the sandboxes and
the task queue are from the process's settings (infra/settings.py: environment over temporal-dev.yml)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from infra.settings import Settings
from workflows.domain.inputs import TASK_QUEUE

DEV_WEBHOOK_SECRET = "dev-only-webhook-secret"


class WorkerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    payments_url: str = Field(default="http://127.0.0.1:8081", alias="PAYMENTS_URL")
    notify_url: str = Field(default="http://127.0.0.1:8082/notifications", alias="NOTIFY_URL")
    webhook_secret: SecretStr = Field(default=SecretStr(DEV_WEBHOOK_SECRET), alias="WEBHOOK_SECRET")
    task_queue: str = Field(default=TASK_QUEUE, alias="INCIDENTS_TASK_QUEUE")
    metrics_port: int | None = Field(default=None, alias="INCIDENTS_METRICS_PORT")
    # Loopback only unless told: the metrics name task queues and counts, and a Prometheus on another
    # host should be given an address deliberately (e.g. 0.0.0.0 or the host's own).
    metrics_host: str = Field(default="127.0.0.1", min_length=1, alias="INCIDENTS_METRICS_HOST")
    http_timeout_seconds: float = Field(default=10.0, alias="INCIDENTS_HTTP_TIMEOUT")
    # Outbound connections per worker (webhooks and payments). httpcore checks every pooled
    # connection on every request, so a larger pool costs CPU on each call: in a burst of 1,000
    # escalations the worker spent 15.2 CPU-s with 20 connections, 16.2 with httpx's default 100.
    http_max_connections: int = Field(default=20, ge=1, alias="INCIDENTS_HTTP_MAX_CONNECTIONS")
    # Workflow-task pollers (4 in 5 poll the worker's sticky queue). The SDK's 5 pick up a burst of
    # escalations, SLA deadlines falling together, a poll round trip at a time while each escalation
    # task holds its slot through the notification POSTs: 50 deadlines in one millisecond were picked
    # up with p99 511-793 ms at 5 pollers and 411-535 ms at 20 (the benchmark's (4), four rounds each).
    # The SDK's autoscaling pollers (start at 5) did no better on such a burst (496-822 ms).
    workflow_task_pollers: int = Field(default=20, ge=2, alias="INCIDENTS_WORKFLOW_TASK_POLLERS")
    # Open incidents wait for days; keeping them cached saves a replay on every signal and timer.
    max_cached_workflows: int = Field(default=10_000, ge=0, alias="INCIDENTS_MAX_CACHED_WORKFLOWS")


def worker_settings(settings: Settings) -> WorkerSettings:
    """The worker's settings under the process's tree: its sandboxes, webhook secret and task queue."""
    given: dict[str, Any] = {
        "PAYMENTS_URL": settings.payments_url,
        "NOTIFY_URL": settings.notify_url,
        "WEBHOOK_SECRET": settings.webhook_secret,
        "INCIDENTS_TASK_QUEUE": settings.task_queue,
    }
    return WorkerSettings(**{name: value for name, value in given.items() if value is not None})
