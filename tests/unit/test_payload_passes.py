"""workers/payload_passes.py: the worker walks a workflow's payloads for its codec only, and not at all without one."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import pytest
import temporalio.bridge.worker as bridge_worker
from temporalio.api.common.v1 import Payload
from temporalio.bridge.proto.workflow_activation import WorkflowActivation
from temporalio.bridge.proto.workflow_completion import WorkflowActivationCompletion
from temporalio.converter import DataConverter, PayloadCodec
from temporalio.converter._extstore import StorageOperationMetrics

from workers import payload_passes
from workers.worker import workflow_runner


class Marking(PayloadCodec):
    """A codec anyone can see at work: it marks what it encodes and unmarks what it decodes."""

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [Payload(metadata=dict(p.metadata), data=b"marked:" + p.data) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [Payload(metadata=dict(p.metadata), data=p.data.removeprefix(b"marked:")) for p in payloads]


WITH_CODEC = dataclasses.replace(DataConverter.default, payload_codec=Marking())


def signalled(data: bytes) -> WorkflowActivation:
    activation = WorkflowActivation(run_id="run")
    signal = activation.jobs.add().signal_workflow
    signal.input.add(data=data)
    signal.headers["trace"].data = data
    return activation


def completed_with(data: bytes) -> WorkflowActivationCompletion:
    completion = WorkflowActivationCompletion(run_id="run")
    completion.successful.commands.add().complete_workflow_execution.result.data = data
    return completion


def test_the_worker_installs_it_once_on_the_pinned_sdk() -> None:
    assert payload_passes.supported()
    workflow_runner()
    workflow_runner()
    decode = bridge_worker.decode_activation
    assert getattr(decode, "_incidents_walks_for_the_codec_only", False)
    assert not getattr(vars(decode)["__wrapped__"], "_incidents_walks_for_the_codec_only", False), "wrapped once"


@pytest.mark.parametrize(("decode_headers", "header"), [(True, b"hello"), (False, b"marked:hello")])
async def test_a_codec_still_decodes_every_activation_and_its_headers_when_the_worker_asks(
    decode_headers: bool, header: bytes
) -> None:
    payload_passes.install()
    activation = signalled(b"marked:hello")
    # As the SDK's workflow worker calls it.
    await bridge_worker.decode_activation(
        activation, WITH_CODEC, decode_headers=decode_headers, storage_concurrency_limit=1
    )
    signal = activation.jobs[0].signal_workflow
    assert (signal.input[0].data, signal.headers["trace"].data) == (b"hello", header)


async def test_a_codec_still_encodes_every_completion() -> None:
    payload_passes.install()
    completion = completed_with(b"done")
    await bridge_worker.encode_completion(completion, WITH_CODEC, encode_headers=True, storage_concurrency_limit=1)
    assert completion.successful.commands[0].complete_workflow_execution.result.data == b"marked:done"


async def test_without_storage_the_sdks_walks_are_not_taken_and_without_codec_nothing_changes() -> None:
    walked: list[DataConverter] = []

    async def sdk_walk(
        message: object, data_converter: DataConverter, *args: object, **kwargs: object
    ) -> StorageOperationMetrics:
        walked.append(data_converter)
        return StorageOperationMetrics()

    lean = payload_passes._codec_only(sdk_walk, "decode_activation")
    for converter in (DataConverter.default, WITH_CODEC):
        activation = signalled(b"hello")
        metrics = await lean(activation, converter, decode_headers=True, storage_concurrency_limit=1)
        assert metrics.payload_count == 0
        assert activation.jobs[0].signal_workflow.input[0].data == b"hello"
    assert walked == []
