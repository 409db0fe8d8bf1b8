"""Tracing and metrics wiring shared by every process.

Traces: OpenTelemetry through temporalio's TracingInterceptor on every client
(workers built from a client inherit it), so one trace runs from the HTTP
request that opened an incident through the workflow to its activities, and
the activities' outbound HTTP calls are child spans (httpx instrumentation).
The exporter comes from the standard OTEL_* variables: OTLP over HTTP when
OTEL_EXPORTER_OTLP_ENDPOINT (or ..._TRACES_ENDPOINT) is set, nothing otherwise.

Metrics: the Temporal runtime serves the SDK's metrics and the workflows'
domain metrics (workflows/metrics.py) on a Prometheus endpoint.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import httpx
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from temporalio.client import Interceptor as ClientInterceptor
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import Interceptor as WorkerInterceptor

if TYPE_CHECKING:
    from infra.settings import Settings

_configured = False


def configure_tracing(service_name: str = "incidents", settings: Settings | None = None) -> None:
    """Install the process's tracer provider once; export only when the settings name an OTLP endpoint.

    A process's entry point passes its settings; a script that passes none gets its environment's.
    """
    global _configured
    if _configured:
        return
    _configured = True
    if settings is None:
        from infra.settings import Settings

        settings = Settings()
    if not settings.tracing_endpoint:
        return
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    # The exporter reads the rest of the standard OTEL_EXPORTER_OTLP_* variables itself.
    provider = TracerProvider(resource=Resource.create({"service.name": settings.otel_service_name or service_name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)


def client_interceptors(tracer: trace.Tracer | None = None) -> list[ClientInterceptor]:
    return [TracingInterceptor(tracer)]


def worker_interceptors() -> list[WorkerInterceptor]:
    # The client's TracingInterceptor is a worker interceptor too, and workers inherit it.
    return []


def instrument_fastapi(app: Any, tracer_provider: Any = None) -> None:
    """Each HTTP request becomes the root span the workflow's spans hang under."""
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(app, tracer_provider=tracer_provider, excluded_urls="healthz")


def instrument_http_client(client: httpx.AsyncClient, tracer_provider: Any = None) -> httpx.AsyncClient:
    """Outbound calls (webhooks, payments) as child spans of the activity that makes them."""
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    HTTPXClientInstrumentor.instrument_client(client, tracer_provider=tracer_provider)
    return client


def metrics_runtime(
    port: int | None, host: str = "127.0.0.1", histogram_buckets: Mapping[str, Sequence[float]] | None = None
) -> Runtime | None:
    """A Temporal runtime serving the SDK's and the workflows' metrics on http://host:port/metrics.

    `host` is the address the endpoint binds (INCIDENTS_METRICS_HOST for the worker): loopback by default;
    `histogram_buckets` overrides the buckets of named histograms (the workflows' domain metrics).
    """
    if port is None:
        return None
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"  # an IPv6 address goes in brackets
    prometheus = PrometheusConfig(bind_address=address, histogram_bucket_overrides=dict(histogram_buckets or {}))
    return Runtime(telemetry=TelemetryConfig(metrics=prometheus))
