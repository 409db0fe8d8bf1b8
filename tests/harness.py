"""What the tiers' tests run against, beside their Temporal server: the sandboxes on real sockets as a test
sees them, and a worker inside the test process on a task queue of its own."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from infra.binaries import temporal_cli
from infra.connection import data_converter
from sandboxes import notifications as notification_sink
from sandboxes import payments as payment_provider
from sandboxes.faults import Faults
from tests.policies import KNOWN
from tests.sandbox_servers import serve
from workers.settings import WorkerSettings
from workers.worker import build_worker
from workflows import search_attributes

WEBHOOK_SECRET = "test-webhook-secret"


async def register_search_attributes(env: WorkflowEnvironment) -> None:
    """An unregistered search attribute makes every workflow task fail and retry forever."""
    await env.client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=env.client.namespace,
            search_attributes={
                key.name: IndexedValueType.ValueType(key.indexed_value_type.value) for key in search_attributes.ALL_KEYS
            },
        )
    )


@dataclass
class Sandboxes:
    payments_url: str
    notify_url: str
    http: httpx.AsyncClient

    async def ledger(
        self, reference: str | None = None, charge: str | None = None, idempotency_key: str | None = None
    ) -> list[dict[str, Any]]:
        wanted = {"reference": reference, "charge": charge, "idempotency_key": idempotency_key}
        params = {name: value for name, value in wanted.items() if value}
        response = await self.http.get(f"{self.payments_url}/refunds", params=params)
        return list(response.json())

    async def attempts(self) -> dict[str, int]:
        return dict((await self.http.get(f"{self.payments_url}/_sandbox/attempts")).json())

    async def set_payment_faults(self, **faults: object) -> None:
        (await self.http.put(f"{self.payments_url}/_sandbox/faults", json=faults)).raise_for_status()

    async def set_notify_faults(self, **faults: object) -> None:
        base = self.notify_url.rsplit("/", 1)[0]
        (await self.http.put(f"{base}/_sandbox/faults", json=faults)).raise_for_status()

    async def notifications(self, ticket_id: str | None = None, recipient: str | None = None) -> list[dict[str, Any]]:
        params = {k: v for k, v in {"ticket_id": ticket_id, "recipient": recipient}.items() if v}
        return list((await self.http.get(self.notify_url, params=params)).json())


@asynccontextmanager
async def served_sandboxes() -> AsyncIterator[Sandboxes]:
    """The payment provider and the notification sink on free ports, without faults until a test sets them."""
    async with (
        serve(payment_provider.create_app(Faults())) as payments,
        serve(notification_sink.create_app(WEBHOOK_SECRET.encode(), Faults())) as sink,
        httpx.AsyncClient(timeout=10) as http,
    ):
        yield Sandboxes(payments.url, f"{sink.url}/notifications", http)


def worker_settings(boxes: Sandboxes) -> WorkerSettings:
    return WorkerSettings(PAYMENTS_URL=boxes.payments_url, NOTIFY_URL=boxes.notify_url, WEBHOOK_SECRET=WEBHOOK_SECRET)


@dataclass
class RunningWorker:
    client: Client
    task_queue: str
    worker: Worker
    started: list[WorkflowHandle[Any, Any]] = field(default_factory=list)

    async def terminate_running(self) -> None:
        """The time-skipping server stops skipping while any workflow waits for a worker: end them all."""
        for handle in self.started:
            with contextlib.suppress(RPCError):
                await handle.terminate(reason="test finished")


@asynccontextmanager
async def running_worker(
    client: Client,
    boxes: Sandboxes,
    task_queue: str | None = None,
    settings: WorkerSettings | None = None,
    **options: Any,
) -> AsyncIterator[RunningWorker]:
    """`settings`: the worker's own (default: the sandboxes' addresses and the tests' webhook secret)."""
    task_queue = task_queue or f"incidents-test-{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(timeout=10) as http:
        options.setdefault("policies", KNOWN)  # the policies the tests make (tests/policies.py)
        worker = build_worker(client, http, settings or worker_settings(boxes), task_queue=task_queue, **options)
        running = RunningWorker(client, task_queue, worker)
        async with worker:
            try:
                yield running
            finally:
                await running.terminate_running()


@asynccontextmanager
async def dev_server(database: Path) -> AsyncIterator[WorkflowEnvironment]:
    """The real dev server on a SQLite file, with every search attribute the incidents use registered."""
    env = await WorkflowEnvironment.start_local(
        data_converter=data_converter(),
        dev_server_existing_path=temporal_cli(),
        dev_server_database_filename=str(database),
        search_attributes=list(search_attributes.ALL_KEYS),
        dev_server_extra_args=[
            *["--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal"],
            *search_attributes.reported_problems_flags(),
            *search_attributes.batch_operation_flags(),
        ],
    )
    try:
        yield env
    finally:
        await env.shutdown()
