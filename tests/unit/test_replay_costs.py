"""What a woken incident no longer rebuilds on every replay (bench/replay_probe.py measures the CPU)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.converter import CompositePayloadConverter, WorkflowSerializationContext

from infra.connection import data_converter
from workflows import presentation
from workflows.domain import policy as policies
from workflows.domain.policy import Policy, default_policy, shared, shared_from_json
from workflows.domain.sharing import Shared


def test_a_policy_is_parsed_once_per_worker_for_the_same_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(policies, "_PARSED", Shared())
    data = default_policy().model_dump_json().encode()
    parsed: list[bytes] = []

    def parse(json: bytes) -> Policy:
        parsed.append(json)
        return Policy.model_validate_json(json)

    first, second = shared_from_json(data, parse), shared_from_json(data, parse)
    assert first is second
    assert parsed == [data]
    # The same object `shared` hands every incident with these rules, whichever way they came.
    assert shared(Policy.model_validate_json(data)) is first


def test_other_json_is_another_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(policies, "_PARSED", Shared())
    policy = default_policy()
    renamed = policy.model_copy(update={"name": "other"})
    one = shared_from_json(policy.model_dump_json().encode(), Policy.model_validate_json)
    other = shared_from_json(renamed.model_dump_json().encode(), Policy.model_validate_json)
    assert (one.name, other.name) == (policy.name, "other")


def test_the_parsed_policies_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(policies, "_PARSED", Shared())
    policy = default_policy()
    for n in range(policies._PARSED.limit + 5):
        shared_from_json(
            policy.model_copy(update={"name": f"p{n}"}).model_dump_json().encode(), Policy.model_validate_json
        )
    assert len(policies._PARSED) == policies._PARSED.limit


def test_every_payload_converter_made_shares_one_set_of_pydantic_converters() -> None:
    """The SDK makes a payload converter per run, activation and serialization context, each from the class."""
    converter_class = data_converter().payload_converter_class
    one, another = converter_class(), converter_class()
    assert isinstance(one, CompositePayloadConverter) and isinstance(another, CompositePayloadConverter)
    in_context = one.with_context(WorkflowSerializationContext(namespace="default", workflow_id="INC-1"))
    assert isinstance(in_context, CompositePayloadConverter)
    assert one.converters[b"json/plain"] is another.converters[b"json/plain"] is in_context.converters[b"json/plain"]
    policy = default_policy()
    [payload] = another.to_payloads([policy])
    assert isinstance(payload, Payload)
    assert one.from_payloads([payload], [Policy]) == [policy]


@pytest.mark.parametrize(
    "at",
    [datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), datetime(2031, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)],
)
def test_the_details_write_moments_as_strftime_did(at: datetime) -> None:
    assert presentation._moment(at) == at.strftime("%Y-%m-%d %H:%M:%S UTC")
