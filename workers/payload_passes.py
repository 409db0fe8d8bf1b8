"""The SDK's payload passes over each workflow activation and completion, skipped when they can change nothing.

temporalio 1.35 walks every activation three times before the workflow sees it (reference payloads, external
storage, the codec) and every completion three times after (the same, the other way), each walk a tree of
coroutines over the protobuf messages, whatever the data converter has. With neither a payload codec nor
external storage every walk returns what it was given. `python -m bench.replay_probe --profile` put the six
walks at about a fifth of the worker's CPU per replay of an escalated incident: what an evicted incident pays
each time it wakes, and each state query of one.

Skipped only when the converter the SDK hands over has no codec and no external storage. With a codec (the dev
stack's encryption keys, `INCIDENTS_CODEC_KEYS_FILE`) every walk runs as the SDK's.

One thing the skip changes: a payload that was stored externally (a reference, from a client configured with
external storage) reaches a worker without storage undecoded, and fails its workflow task with the converter's
error instead of the SDK's TMPRL1105; this project configures no external storage anywhere.

It replaces two functions of `temporalio.bridge.worker`, which the pinned temporalio's workflow worker looks up
at each call; `install()` checks their signatures and leaves them alone (with a warning) if they changed.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import temporalio.bridge.worker as bridge_worker
from temporalio.converter import DataConverter
from temporalio.converter._extstore import StorageOperationMetrics

logger = logging.getLogger(__name__)

_PARAMETERS = {
    "decode_activation": ["activation", "data_converter", "decode_headers", "storage_concurrency_limit"],
    "encode_completion": ["completion", "data_converter", "encode_headers", "storage_concurrency_limit"],
}
_SKIPPING = "_incidents_skips_idle_passes"

Passes = Callable[..., Awaitable[StorageOperationMetrics]]


def passes_have_effect(converter: DataConverter) -> bool:
    return converter.payload_codec is not None or converter.external_storage is not None


def _skipping_when_idle(walk: Passes) -> Passes:
    async def walk_unless_idle(message: Any, data_converter: DataConverter, *args: Any, **kwargs: Any) -> Any:
        if passes_have_effect(data_converter):
            return await walk(message, data_converter, *args, **kwargs)
        return StorageOperationMetrics()

    setattr(walk_unless_idle, _SKIPPING, True)
    walk_unless_idle.__wrapped__ = walk  # type: ignore[attr-defined]
    return walk_unless_idle


def supported() -> bool:
    """Both functions are there, with the parameters this module passes on."""
    for name, parameters in _PARAMETERS.items():
        function = getattr(bridge_worker, name, None)
        if function is None:
            return False
        function = getattr(function, "__wrapped__", function)
        if list(inspect.signature(function).parameters) != parameters:
            return False
    return DataConverter.__dataclass_fields__.keys() >= {"payload_codec", "external_storage"}


def install() -> bool:
    """Skip the idle passes in this process from now on; True if they are skipped. Idempotent."""
    if not supported():
        logger.warning("temporalio's payload passes changed: the worker walks every activation as the SDK does")
        return False
    for name in _PARAMETERS:
        function = getattr(bridge_worker, name)
        if not getattr(function, _SKIPPING, False):
            setattr(bridge_worker, name, _skipping_when_idle(function))
    return True
