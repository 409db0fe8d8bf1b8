"""The worker's branch of the settings tree: its tuning from the environment, and where the sandboxes and
the task queue are from the process's settings (infra/settings.py: environment over temporal-dev.yml)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from activities.signing import SigningSecret, read_secret_file
from infra.customer_links import CustomerPages
from infra.settings import Settings
from workflows.domain.inputs import TASK_QUEUE
from workflows.domain.policy import default_policy, load_policy_file
from workflows.domain.policy_catalogue import PolicyCatalogue

# Public (it is in temporal-dev.yml and this file): a worker refuses it unless `incidents dev` started it.
DEV_WEBHOOK_SECRET = "dev-only-webhook-secret"
DEV_STACK_ENV = "INCIDENTS_DEV_STACK"  # set by `incidents dev` for the worker it starts, and by nothing else
MIN_WEBHOOK_SECRET_LENGTH = 16


class WorkerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    payments_url: str = Field(default="http://127.0.0.1:8081", alias="PAYMENTS_URL")
    notify_url: str = Field(default="http://127.0.0.1:8082/notifications", alias="NOTIFY_URL")
    webhook_secret: SecretStr = Field(default=SecretStr(DEV_WEBHOOK_SECRET), alias="WEBHOOK_SECRET")
    # A file holding the secret (wins over WEBHOOK_SECRET): re-read when it changes and when the receiver
    # answers 401/403, so a rotation needs no restart (docs/operating.md, "Rotating the webhook secret").
    webhook_secret_file: Path | None = Field(default=None, alias="WEBHOOK_SECRET_FILE")
    # The customer's ticket link in their "ticket opened" message: the API's public address and the desk's
    # secret file (the API's own, INCIDENTS_DESK_SECRET_FILE). Without both, the message has no link.
    public_url: str | None = Field(default=None, alias="INCIDENTS_PUBLIC_URL")
    desk_secret_file: Path | None = Field(default=None, alias="INCIDENTS_DESK_SECRET_FILE")
    started_by_dev_stack: bool = Field(default=False, alias=DEV_STACK_ENV)
    task_queue: str = Field(default=TASK_QUEUE, alias="INCIDENTS_TASK_QUEUE")
    # The policies incidents may name: the shipped default, INCIDENT_POLICY's, and INCIDENT_POLICIES' (several,
    # os.pathsep-separated: the demo's, a version clients still name while they move to a new one).
    # INCIDENT_POLICY's is also where open incidents' calendars are checked against (a new holiday).
    policy_file: Path | None = Field(default=None, alias="INCIDENT_POLICY")
    more_policy_files: str | None = Field(default=None, alias="INCIDENT_POLICIES")
    metrics_port: int | None = Field(default=None, alias="INCIDENTS_METRICS_PORT")
    # Loopback only unless told: the metrics name task queues and counts, and a Prometheus on another
    # host should be given an address deliberately (e.g. 0.0.0.0 or the host's own).
    metrics_host: str = Field(default="127.0.0.1", min_length=1, alias="INCIDENTS_METRICS_HOST")
    http_timeout_seconds: float = Field(default=10.0, alias="INCIDENTS_HTTP_TIMEOUT")
    # Outbound connections per worker (webhooks and payments). httpcore checks every pooled
    # connection on every request, so a larger pool costs CPU on each call (measured in a burst of
    # escalations: docs/performance.md).
    http_max_connections: int = Field(default=20, ge=1, alias="INCIDENTS_HTTP_MAX_CONNECTIONS")
    # Workflow-task pollers (4 in 5 poll the worker's sticky queue). The SDK's 5 pick up a burst of
    # escalations (SLA deadlines falling together) a poll round trip at a time while each escalation task
    # holds its slot through its notification POSTs; 20 shortened that tail (figures: docs/performance.md).
    workflow_task_pollers: int = Field(default=20, ge=2, alias="INCIDENTS_WORKFLOW_TASK_POLLERS")
    # How long a workflow task may wait on this worker's sticky queue before the server moves it to the shared
    # queue. The SDK's 5 s is kept: it is also how long a task or query for an incident cached on a worker that
    # stopped (a crash, a deploy) waits before another worker takes it. 20-30 s ended the timed-out tasks of a
    # 2,000-escalation burst (p99 17-23 -> 16-18 s), but at 20 s the bench's refill after a worker restart took
    # twice as long (docs/performance.md, "Sticky queue timeout").
    sticky_queue_timeout_seconds: float = Field(default=5.0, gt=0, alias="INCIDENTS_STICKY_QUEUE_TIMEOUT")
    # Open incidents wait for days; keeping them cached saves a replay on every signal and timer.
    max_cached_workflows: int = Field(default=10_000, ge=0, alias="INCIDENTS_MAX_CACHED_WORKFLOWS")

    def policy_catalogue(self) -> PolicyCatalogue:
        """The policies this worker knows; raises PolicyError (naming the file and field) for one it cannot read."""
        files = [self.policy_file] if self.policy_file else []
        files += [Path(part) for part in (self.more_policy_files or "").split(os.pathsep) if part.strip()]
        return PolicyCatalogue([default_policy(), *(load_policy_file(path) for path in files)])

    def customer_pages(self) -> CustomerPages | None:
        if self.public_url is None or self.desk_secret_file is None:
            return None
        return CustomerPages(self.public_url, self.desk_secret_file)

    def signing_secret(self) -> SigningSecret:
        """What the worker signs webhooks with: the file's secret, re-read as it changes, else the value."""
        if self.webhook_secret_file is not None:
            return SigningSecret(file=self.webhook_secret_file)
        return SigningSecret(value=self.webhook_secret.get_secret_value().encode())

    def webhook_secret_problem(self) -> str | None:
        """Why the worker must not start with this webhook secret, naming the setting; None when it may.

        The dev secret is public, so only a worker `incidents dev` started (it sets INCIDENTS_DEV_STACK)
        may sign with it; anywhere else a receiver would accept webhooks anyone can forge."""
        if self.webhook_secret_file is not None:
            name = f"WEBHOOK_SECRET_FILE ({self.webhook_secret_file})"
            try:
                value = read_secret_file(self.webhook_secret_file).decode()
            except (OSError, ValueError) as error:
                return f"{name}: cannot read a secret from it ({error})"
        else:
            name, value = "WEBHOOK_SECRET", self.webhook_secret.get_secret_value()
        if self.started_by_dev_stack:
            return None
        if value == DEV_WEBHOOK_SECRET:
            given = "is the public dev secret" if "webhook_secret" in self.model_fields_set else "is not set"
            return (
                f"{name} {given}: outside `incidents dev` the worker needs a secret of its own "
                f"(at least {MIN_WEBHOOK_SECRET_LENGTH} characters), shared with the notification receiver"
            )
        if len(value) < MIN_WEBHOOK_SECRET_LENGTH:
            return f"{name} is shorter than {MIN_WEBHOOK_SECRET_LENGTH} characters: too easy to guess"
        return None


def worker_settings(settings: Settings) -> WorkerSettings:
    """The worker's settings under the process's tree: its sandboxes, webhook secret and task queue."""
    given: dict[str, Any] = {
        "PAYMENTS_URL": settings.payments_url,
        "NOTIFY_URL": settings.notify_url,
        "WEBHOOK_SECRET": settings.webhook_secret,
        "WEBHOOK_SECRET_FILE": settings.webhook_secret_file,
        "INCIDENTS_TASK_QUEUE": settings.task_queue,
        "INCIDENT_POLICY": settings.policy_file,
        "INCIDENT_POLICIES": settings.more_policy_files,
        "INCIDENTS_PUBLIC_URL": settings.public_url,
        "INCIDENTS_DESK_SECRET_FILE": settings.desk_secret_file,
    }
    return WorkerSettings(**{name: value for name, value in given.items() if value is not None})
