"""The worker's settings: read from the environment, refused by name when out of range, used by the worker."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import PollerBehaviorSimpleMaximum

from workers.settings import WorkerSettings
from workers.worker import build_worker, http_client


def test_workflow_task_pollers_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("INCIDENTS_WORKFLOW_TASK_POLLERS", raising=False)
    assert WorkerSettings().workflow_task_pollers == 20
    monkeypatch.setenv("INCIDENTS_WORKFLOW_TASK_POLLERS", "32")
    assert WorkerSettings().workflow_task_pollers == 32


def test_too_few_workflow_task_pollers_are_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    # One poller cannot serve both the sticky queue and the shared one.
    monkeypatch.setenv("INCIDENTS_WORKFLOW_TASK_POLLERS", "1")
    with pytest.raises(ValidationError) as refused:
        WorkerSettings()
    assert "INCIDENTS_WORKFLOW_TASK_POLLERS" in str(refused.value)
    assert "greater than or equal to 2" in str(refused.value)


async def test_the_worker_polls_with_the_configured_pollers(
    dev_env: WorkflowEnvironment, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INCIDENTS_WORKFLOW_TASK_POLLERS", "12")
    settings = WorkerSettings()
    async with http_client(settings) as http:
        worker = build_worker(dev_env.client, http, settings, task_queue="worker-settings")
        assert worker.config()["workflow_task_poller_behavior"] == PollerBehaviorSimpleMaximum(12)


def test_the_sticky_queue_timeout_is_the_sdks_unless_the_environment_says(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("INCIDENTS_STICKY_QUEUE_TIMEOUT", raising=False)
    assert WorkerSettings().sticky_queue_timeout_seconds == 5
    monkeypatch.setenv("INCIDENTS_STICKY_QUEUE_TIMEOUT", "7.5")
    assert WorkerSettings().sticky_queue_timeout_seconds == 7.5


def test_a_sticky_queue_timeout_of_zero_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INCIDENTS_STICKY_QUEUE_TIMEOUT", "0")
    with pytest.raises(ValidationError) as refused:
        WorkerSettings()
    assert "INCIDENTS_STICKY_QUEUE_TIMEOUT" in str(refused.value)
    assert "greater than 0" in str(refused.value)


async def test_the_worker_uses_the_configured_sticky_queue_timeout(
    dev_env: WorkflowEnvironment, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INCIDENTS_STICKY_QUEUE_TIMEOUT", "45")
    settings = WorkerSettings()
    async with http_client(settings) as http:
        worker = build_worker(dev_env.client, http, settings, task_queue="worker-settings-sticky")
        assert worker.config()["sticky_queue_schedule_to_start_timeout"] == timedelta(seconds=45)
