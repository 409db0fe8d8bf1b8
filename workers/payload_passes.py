"""The SDK's payload passes over each workflow activation and completion, cut to those that can change something.

temporalio 1.35 walks every activation three times before the workflow sees it (external-storage references,
external storage, the codec) and every completion three times after (the codec, external storage, references),
each walk a tree of coroutines over the protobuf messages, whatever the data converter has. Without external
storage the two storage walks return what they were given, and without a codec the third does too.
`python -m bench.replay_probe --profile` put the six walks at a third of the event loop's Python calls per
replay of an escalated incident: what an evicted incident pays each time it wakes, and each state query of one.

So, without external storage (this project configures none), the worker walks once, for the codec, when there
is one (the dev stack's encryption keys, `INCIDENTS_CODEC_KEYS_FILE`), and not at all when there is none (the
bench's workers). With external storage every walk runs as the SDK's.

One thing this changes: a payload stored externally (a reference, from a client configured with external
storage) reaches a worker without storage undecoded and fails its workflow task with the converter's error
instead of the SDK's TMPRL1105.

It replaces two functions of `temporalio.bridge.worker`, which the pinned temporalio's workflow worker looks up
at each call, and walks with that module's own visitor; `install()` checks the parts it relies on and leaves the
SDK's functions alone (with a warning) if they changed.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import temporalio.bridge.worker as bridge_worker
from temporalio.api.common.v1 import Payload
from temporalio.converter import DataConverter
from temporalio.converter._extstore import StorageOperationMetrics
from temporalio.worker._command_aware_visitor import CommandAwarePayloadVisitor

logger = logging.getLogger(__name__)

_PARAMETERS = {
    "decode_activation": ["activation", "data_converter", "decode_headers", "storage_concurrency_limit"],
    "encode_completion": ["completion", "data_converter", "encode_headers", "storage_concurrency_limit"],
}
_CODEC_PASSES = {"decode_activation": "_decode_payload_sequence", "encode_completion": "_encode_payload_sequence"}
_LEAN = "_incidents_walks_for_the_codec_only"

Walk = Callable[..., Awaitable[StorageOperationMetrics]]
CodecPass = Callable[[Sequence[Payload]], Awaitable[list[Payload]]]


def _codec_only(walk: Walk, name: str) -> Walk:
    codec_pass, headers_parameter = _CODEC_PASSES[name], _PARAMETERS[name][2]

    async def walk_for_the_codec(
        message: Any, data_converter: DataConverter, *args: Any, **kwargs: Any
    ) -> StorageOperationMetrics:
        if data_converter.external_storage is not None:
            return await walk(message, data_converter, *args, **kwargs)
        if data_converter.payload_codec is not None:
            headers = bool(kwargs[headers_parameter] if headers_parameter in kwargs else args[0])
            codec: CodecPass = getattr(data_converter, codec_pass)
            visitor = CommandAwarePayloadVisitor(skip_search_attributes=True, skip_headers=not headers)
            await visitor.visit(bridge_worker._Visitor(codec), message)
        return StorageOperationMetrics()

    setattr(walk_for_the_codec, _LEAN, True)
    walk_for_the_codec.__wrapped__ = walk  # type: ignore[attr-defined]
    return walk_for_the_codec


def supported() -> bool:
    """The functions, the visitor and the codec passes are there, with the parameters this module passes on."""
    for name, parameters in _PARAMETERS.items():
        function = getattr(bridge_worker, name, None)
        if function is None:
            return False
        function = getattr(function, "__wrapped__", function)
        if list(inspect.signature(function).parameters) != parameters:
            return False
        if not callable(getattr(DataConverter, _CODEC_PASSES[name], None)):
            return False
    fields = DataConverter.__dataclass_fields__.keys()
    return hasattr(bridge_worker, "_Visitor") and fields >= {"payload_codec", "external_storage"}


def install() -> bool:
    """Walk for the codec only in this process from now on; True if so. Idempotent."""
    if not supported():
        logger.warning("temporalio's payload passes changed: the worker walks every activation as the SDK does")
        return False
    for name in _PARAMETERS:
        function = getattr(bridge_worker, name)
        if not getattr(function, _LEAN, False):
            setattr(bridge_worker, name, _codec_only(function, name))
    return True
