"""workers/payload_passes.py: the SDK's payload passes are skipped only where they could change nothing."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

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


def signalled(data: bytes) -> WorkflowActivation:
    activation = WorkflowActivation(run_id="run")
    activation.jobs.add().signal_workflow.input.add(data=data)
    return activation


def completed_with(data: bytes) -> WorkflowActivationCompletion:
    completion = WorkflowActivationCompletion(run_id="run")
    completion.successful.commands.add().complete_workflow_execution.result.data = data
    return completion


def test_the_worker_installs_the_skip_once_on_the_pinned_sdk() -> None:
    assert payload_passes.supported()
    workflow_runner()
    workflow_runner()
    decode = bridge_worker.decode_activation
    assert getattr(decode, "_incidents_skips_idle_passes", False)
    assert not getattr(vars(decode)["__wrapped__"], "_incidents_skips_idle_passes", False), "wrapped once, not twice"


async def test_a_codec_still_decodes_every_activation_and_encodes_every_completion() -> None:
    payload_passes.install()
    converter = dataclasses.replace(DataConverter.default, payload_codec=Marking())
    activation = signalled(b"marked:hello")
    await bridge_worker.decode_activation(activation, converter, decode_headers=True, storage_concurrency_limit=1)
    assert activation.jobs[0].signal_workflow.input[0].data == b"hello"
    completion = completed_with(b"done")
    await bridge_worker.encode_completion(completion, converter, encode_headers=True, storage_concurrency_limit=1)
    assert completion.successful.commands[0].complete_workflow_execution.result.data == b"marked:done"


async def test_the_walk_is_skipped_only_without_codec_and_storage() -> None:
    walked: list[DataConverter] = []

    async def walk(
        message: object, data_converter: DataConverter, *args: object, **kwargs: object
    ) -> StorageOperationMetrics:
        walked.append(data_converter)
        return StorageOperationMetrics()

    skipping = payload_passes._skipping_when_idle(walk)
    metrics = await skipping(
        signalled(b"hello"), DataConverter.default, decode_headers=True, storage_concurrency_limit=1
    )
    assert walked == [] and metrics.payload_count == 0
    with_codec = dataclasses.replace(DataConverter.default, payload_codec=Marking())
    await skipping(signalled(b"hello"), with_codec, decode_headers=True, storage_concurrency_limit=1)
    assert walked == [with_codec]
