"""Tracing and metrics wiring shared by every process (issue 4 fills these in).

Contract used elsewhere: `client_interceptors()` goes on every Temporal client
(see starter.connection.connect), `worker_interceptors()` on every worker, and
`instrument_fastapi(app)` on the HTTP API.
"""

from __future__ import annotations

from typing import Any

from temporalio.client import Interceptor as ClientInterceptor
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import Interceptor as WorkerInterceptor


def client_interceptors() -> list[ClientInterceptor]:
    return []


def worker_interceptors() -> list[WorkerInterceptor]:
    return []


def instrument_fastapi(app: Any) -> None:
    """Make each HTTP request a span that the workflow's spans hang under."""


def metrics_runtime(port: int | None, host: str = "0.0.0.0") -> Runtime | None:
    """A Temporal runtime serving the SDK's and the workflows' metrics on http://host:port/metrics."""
    if port is None:
        return None
    return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=f"{host}:{port}")))
