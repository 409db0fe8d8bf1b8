"""schemathesis against the API's own OpenAPI spec, over a real socket to the API process of a
running stack: valid and invalid inputs alike, none makes it answer 5xx, and every 4xx says what the
problem is."""

from __future__ import annotations

from pathlib import Path

import httpx
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable

from tests.stack import start, write_config

EXAMPLES_PER_OPERATION = 12


def test_no_input_gets_a_5xx_and_every_4xx_names_the_problem(tmp_path: Path):
    stack = start(write_config(tmp_path))
    try:
        base = f"http://127.0.0.1:{stack.settings['api']['port']}"
        spec = httpx.get(f"{base}/openapi.json", timeout=30).json()
        schema = schemathesis.openapi.from_dict(spec)
        tokens = {role: stack.token(role) for role in ("service", "agent", "viewer")}
        tried = 0
        calls: list[str] = []
        for result in schema.get_all_operations():
            operation = result.ok()  # type: ignore[union-attr]  # an invalid spec fails here, loudly
            role = "viewer" if operation.method.upper() == "GET" else "agent"
            if operation.method.upper() == "POST" and operation.path == "/incidents":
                role = "service"
            for mode in schemathesis.GenerationMode:
                check_operation(operation, mode, base, {"Authorization": f"Bearer {tokens[role]}"}, calls)
            tried += 1
        assert tried >= 15, "every operation of the spec was fuzzed"
        assert len(calls) >= tried * 10, f"only {len(calls)} requests were generated"
    finally:
        stack.interrupt()


def check_operation(
    operation: object, mode: schemathesis.GenerationMode, base: str, headers: dict[str, str], calls: list[str]
) -> None:
    @settings(
        max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(case=operation.as_strategy(generation_mode=mode))  # type: ignore[attr-defined]
    def check(case: schemathesis.Case) -> None:
        calls.append(case.method)
        response = case.call(base_url=base, headers=headers, timeout=30)
        label = f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:300]}"
        assert response.status_code < 500, label
        if response.status_code >= 400:
            detail = response.json().get("detail")
            assert isinstance(detail, str) and detail.strip(), label

    try:
        check()
    except Unsatisfiable:
        # An operation without inputs (GET /healthz) has no invalid variants to generate.
        assert mode is schemathesis.GenerationMode.NEGATIVE
