"""How every process of the system reaches Temporal: one data converter, one way to connect.

Connection settings come from `temporalio.envconfig`: TEMPORAL_ADDRESS,
TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS*, or a profile in
`temporal.toml` (TEMPORAL_CONFIG_FILE / TEMPORAL_PROFILE); that is how the
same code reaches a laptop's dev server or Temporal Cloud.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from temporalio.client import Client, Interceptor
from temporalio.contrib.pydantic import PydanticPayloadConverter
from temporalio.converter import CompositePayloadConverter, DataConverter
from temporalio.envconfig import ClientConfig
from temporalio.runtime import Runtime

from infra.codec import payload_codec
from infra.telemetry import client_interceptors

if TYPE_CHECKING:
    from infra.settings import Settings

DEFAULT_ADDRESS = "localhost:7233"

_PYDANTIC_CONVERTERS = PydanticPayloadConverter().converters.values()


class SharedPydanticPayloadConverter(PydanticPayloadConverter):
    """temporalio's pydantic payload converter, its encoding converters made once per process.

    The SDK makes a payload converter for every workflow run and, inside a worker, for every activation
    and every completion (a data converter per serialization context, each building its own); the
    pydantic one builds a serializer and a fresh cache of type adapters each time, so every run built
    the type adapters of its input and results anew. Measured with bench/replay_probe.py. The encoding
    converters hold no state but that cache (thread-safe, bounded), so one set serves them all.
    """

    def __init__(self) -> None:
        CompositePayloadConverter.__init__(self, *_PYDANTIC_CONVERTERS)


_DATA_CONVERTER = DataConverter(payload_converter_class=SharedPydanticPayloadConverter)


def data_converter(keys_file: str | Path | None = None) -> DataConverter:
    """The converter every client and worker shares; payloads encrypted with the keys in `keys_file`."""
    codec = payload_codec(keys_file)
    if codec is None:
        return _DATA_CONVERTER
    return dataclasses.replace(_DATA_CONVERTER, payload_codec=codec)


def connect_config(target: str | None = None, namespace: str | None = None) -> dict[str, Any]:
    config: dict[str, Any] = dict(ClientConfig.load_client_connect_config())
    if target:
        config["target_host"] = target
    config.setdefault("target_host", DEFAULT_ADDRESS)
    if namespace:
        config["namespace"] = namespace
    return config


async def connect(
    target: str | None = None,
    namespace: str | None = None,
    interceptors: Sequence[Interceptor] = (),
    runtime: Runtime | None = None,
    *,
    settings: Settings | None = None,
) -> Client:
    """A client for the server `settings` name (their address, namespace and codec keys), or what
    temporalio.envconfig finds (TEMPORAL_* and temporal.toml) without encryption when given none."""
    if settings is not None:
        target = target or settings.temporal_address
        namespace = namespace or settings.temporal_namespace
    return await Client.connect(
        **connect_config(target, namespace),
        data_converter=data_converter(settings.codec_keys_file if settings is not None else None),
        interceptors=[*client_interceptors(), *interceptors],
        runtime=runtime,
    )


def connection_reason(error: Exception) -> str:
    """The OS's words ("Connection refused") rather than the transport's whole error chain."""
    found = re.search(r'message: "([^"]+)"', str(error))
    return found.group(1) if found else str(error)
