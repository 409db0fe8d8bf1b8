"""structlog, configured once per process: JSON lines in production, a readable console under
`incidents dev` (INCIDENTS_LOG_FORMAT=console|json).

Temporal's `workflow.logger` and `activity.logger` are stdlib loggers that put
the workflow's or activity's info into the record's `extra`; the stdlib records
pass through structlog's ProcessorFormatter, which flattens that info into
`ticket_id`, `workflow_id`, `run_id`, `activity` and `attempt` on every line.
Workflow code never calls structlog: `workflow.logger` stays silent during
replay, so a replayed incident does not log twice.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog
import temporalio.activity
import temporalio.workflow

FORMAT_ENV = "INCIDENTS_LOG_FORMAT"
LEVEL_ENV = "INCIDENTS_LOG_LEVEL"
_SECRET_WORDS = ("secret", "token", "password", "authorization", "api_key", "apikey")
_INCIDENT_WORKFLOWS = ("IncidentWorkflow",)


def _temporal_context(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    workflow_info = event.pop("temporal_workflow", None)
    if isinstance(workflow_info, dict):
        event.setdefault("workflow_id", workflow_info.get("workflow_id"))
        event.setdefault("run_id", workflow_info.get("run_id"))
        event.setdefault("workflow_type", workflow_info.get("workflow_type"))
    activity_info = event.pop("temporal_activity", None)
    if isinstance(activity_info, dict):
        event.setdefault("workflow_id", activity_info.get("workflow_id"))
        event.setdefault("run_id", activity_info.get("workflow_run_id"))
        event.setdefault("workflow_type", activity_info.get("workflow_type"))
        event.setdefault("activity", activity_info.get("activity_type"))
        event.setdefault("attempt", activity_info.get("attempt"))
    if event.get("workflow_type") in _INCIDENT_WORKFLOWS:
        event.setdefault("ticket_id", event.get("workflow_id"))
    return event


def _redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event):
        if any(word in key.lower() for word in _SECRET_WORDS):
            event[key] = "[redacted]"
    return event


def _shared_processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def configure_logging(fmt: str | None = None, level: str | int | None = None, stream: TextIO | None = None) -> None:
    """`fmt` and `level` come from the process's settings (INCIDENTS_LOG_FORMAT, INCIDENTS_LOG_LEVEL or
    temporal-dev.yml); JSON at INFO when they say nothing."""
    fmt = fmt or "json"
    level = level or "INFO"
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=(stream or sys.stderr).isatty())
        if fmt == "console"
        else structlog.processors.JSONRenderer()
    )
    post: list[Any] = [_temporal_context, _redact, structlog.processors.format_exc_info]
    structlog.configure(
        processors=[*_shared_processors(), *post, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*_shared_processors(), structlog.stdlib.ExtraAdder(), *post],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    # The info travels as structured fields; repeating it inside the message would only add noise.
    temporalio.workflow.logger.workflow_info_on_message = False
    temporalio.activity.logger.activity_info_on_message = False
    for noisy in ("httpx", "httpcore", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
