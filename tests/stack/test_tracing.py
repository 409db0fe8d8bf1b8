"""One trace from the HTTP request that opened an incident, through the workflows, to the activities
and their outbound HTTP calls (OpenTelemetry SDK with an in-memory exporter); and the exporter chosen
by the standard OTEL_* variables, received by a real OTLP/HTTP endpoint."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from pathlib import Path

import httpx
from fastapi import FastAPI, Request, Response
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from infra.connection import data_converter
from infra.telemetry import client_interceptors, instrument_http_client
from starter.api import create_app
from starter.auth import Role, load_tokens, write_dev_tokens
from starter.incidents import IncidentService
from tests.harness import Sandboxes, worker_settings
from tests.policies import KNOWN, fast_policy
from tests.sandbox_servers import serve
from workers.worker import build_worker


def parent_chain(span: ReadableSpan, by_id: dict[int, ReadableSpan]) -> list[str]:
    names = []
    while span.parent is not None and span.parent.span_id in by_id:
        span = by_id[span.parent.span_id]
        names.append(span.name)
    return names


async def test_one_trace_from_the_http_request_to_the_webhook(
    dev_env: WorkflowEnvironment, sandboxes: Sandboxes, tmp_path: Path
):
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    client = await Client.connect(
        dev_env.client.service_client.config.target_host,
        data_converter=data_converter(),
        interceptors=client_interceptors(provider.get_tracer("incidents")),
    )
    issued = write_dev_tokens(tmp_path / "tokens.yml")
    token = next(token for role, token in issued.values() if role == Role.service)
    task_queue = f"traced-{uuid.uuid4().hex[:6]}"
    service = IncidentService(client, policy=fast_policy(), task_queue=task_queue)
    async with instrument_http_client(httpx.AsyncClient(timeout=10), provider) as http:
        worker = build_worker(client, http, worker_settings(sandboxes), task_queue=task_queue, policies=KNOWN)
        async with worker, serve(create_app(service, load_tokens(tmp_path / "tokens.yml"), provider)) as api:
            response = await sandboxes.http.post(
                f"{api.url}/incidents",
                json={
                    "customer_id": "traced",
                    "category": "payment_not_refunded",
                    "description": "charged twice",
                    "channel": "app",
                    "refund": {"amount": "99.00", "currency": "RUB"},
                },
                headers={"Authorization": f"Bearer {token}"},
            )
            assert response.status_code == 201
            ticket = response.json()["ticket_id"]
            for _ in range(200):
                refund = (await service.state(ticket)).refund
                if len(await sandboxes.notifications(ticket_id=ticket)) >= 2 and refund and refund.status == "paid":
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)
            await client.get_workflow_handle(ticket).terminate(reason="test finished")

    spans = exporter.get_finished_spans()
    request = next(s for s in spans if s.kind == SpanKind.SERVER and s.name.startswith("POST /incidents"))
    trace = [s for s in spans if s.context.trace_id == request.context.trace_id]
    by_id = {s.context.span_id: s for s in trace}
    names = {s.name for s in trace}
    assert any(n.startswith("RunActivity:send_notifications") for n in names), names
    opened_by_the_request = ["StartChildWorkflow:IncidentWorkflow", "StartUpdateWithStartWorkflow:IncidentIntake"]
    run = next(s for s in trace if s.name == "RunWorkflow:IncidentWorkflow")
    assert parent_chain(run, by_id) == [*opened_by_the_request, request.name]
    # webhook POST <- the activity <- scheduled by the incident workflow <- started by the intake <- the request
    assert parent_chain(outbound(trace, "/notifications"), by_id) == [
        "RunActivity:send_notifications",
        "StartActivity:send_notifications",
        *opened_by_the_request,
        request.name,
    ]
    # the refund's call to the payment provider hangs under the same request
    assert parent_chain(outbound(trace, "/refunds"), by_id) == [
        "RunActivity:make_payment",
        "StartActivity:make_payment",
        *opened_by_the_request,
        request.name,
    ]


def outbound(trace: list[ReadableSpan], path: str) -> ReadableSpan:
    calls = [s for s in trace if s.kind == SpanKind.CLIENT and s.name.startswith("POST") and _url(s).endswith(path)]
    assert calls, f"no outbound POST {path} in {sorted(s.name for s in trace)}"
    return calls[0]


def _url(span: ReadableSpan) -> str:
    attributes = span.attributes or {}
    return str(attributes.get("url.full", attributes.get("http.url", "")))


EMIT_ONE_SPAN = """
from opentelemetry import trace
from infra.telemetry import configure_tracing
configure_tracing("incidents-worker")
with trace.get_tracer("incidents").start_as_current_span("one incident"):
    pass
provider = trace.get_tracer_provider()
print(type(provider).__name__)
getattr(provider, "shutdown", lambda: None)()
"""


async def test_spans_go_over_otlp_http_only_when_the_standard_variable_names_an_endpoint():
    received: list[ExportTraceServiceRequest] = []
    collector = FastAPI()

    @collector.post("/v1/traces")
    async def traces(request: Request) -> Response:
        received.append(ExportTraceServiceRequest.FromString(await request.body()))
        return Response(status_code=200)

    async def emit(**env: str) -> str:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            EMIT_ONE_SPAN,
            env={**{k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}, **env},
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode == 0
        return out.decode().strip()

    async with serve(collector) as otlp:
        assert await emit() == "ProxyTracerProvider", "no endpoint: no SDK provider, nothing exported"
        assert await emit(OTEL_EXPORTER_OTLP_ENDPOINT=otlp.url, OTEL_SERVICE_NAME="worker-a") == "TracerProvider"
    assert len(received) == 1
    (resource_spans,) = received[0].resource_spans
    attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
    assert attributes["service.name"] == "worker-a"
    assert [span.name for scope in resource_spans.scope_spans for span in scope.spans] == ["one incident"]
