"""How every process of the system reaches Temporal: one data converter, one way to connect.

Connection settings come from `temporalio.envconfig`: TEMPORAL_ADDRESS,
TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS*, or a profile in
`temporal.toml` (TEMPORAL_CONFIG_FILE / TEMPORAL_PROFILE); that is how the
same code reaches a laptop's dev server or Temporal Cloud.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Sequence
from typing import Any

from temporalio.client import Client, Interceptor
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter
from temporalio.envconfig import ClientConfig
from temporalio.runtime import Runtime

from infra.codec import payload_codec_from_env
from infra.telemetry import client_interceptors

DEFAULT_ADDRESS = "localhost:7233"


def data_converter() -> DataConverter:
    codec = payload_codec_from_env()
    if codec is None:
        return pydantic_data_converter
    return dataclasses.replace(pydantic_data_converter, payload_codec=codec)


def connect_config(target: str | None = None, namespace: str | None = None) -> dict[str, Any]:
    config: dict[str, Any] = dict(ClientConfig.load_client_connect_config())
    if target:
        config["target_host"] = target
    config.setdefault("target_host", DEFAULT_ADDRESS)
    if namespace:
        config["namespace"] = namespace
    return config


def temporal_configured() -> bool:
    """True when the environment or a temporal.toml profile names a server to use."""
    if os.environ.get("TEMPORAL_ADDRESS"):
        return True
    try:
        return bool(ClientConfig.load_client_connect_config(disable_env=True).get("target_host"))
    except Exception:  # an unreadable config file is reported when connecting, not here
        return False


async def connect(
    target: str | None = None,
    namespace: str | None = None,
    interceptors: Sequence[Interceptor] = (),
    runtime: Runtime | None = None,
) -> Client:
    return await Client.connect(
        **connect_config(target, namespace),
        data_converter=data_converter(),
        interceptors=[*client_interceptors(), *interceptors],
        runtime=runtime,
    )


def connection_reason(error: Exception) -> str:
    """The OS's words ("Connection refused") rather than the transport's whole error chain."""
    found = re.search(r'message: "([^"]+)"', str(error))
    return found.group(1) if found else str(error)
