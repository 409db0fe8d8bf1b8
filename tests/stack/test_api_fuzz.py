"""schemathesis against the API's own OpenAPI spec, over a real socket to the API process of a
running stack (dev server, worker, sandboxes): valid and invalid inputs alike, none makes it answer
5xx, and every 4xx says what the problem is."""

from __future__ import annotations

import importlib
import time
import uuid
from pathlib import Path

import httpx
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable

from tests.running_stack import start, write_config

EXAMPLES_PER_OPERATION = 15


def _import_what_fuzzing_needs_now() -> None:
    """Run schemathesis once on a tiny spec while the test module is collected.

    pytest rewrites (parses) every module of a plugin's package when it is first imported, and
    schemathesis imports most of its modules lazily. Parsed during the test, next to the stack's
    threads, CPython 3.11.7 sometimes fails with "AST constructor recursion depth mismatch"
    (python/cpython#106905); at collection time nothing else runs.
    """
    spec = {
        "openapi": "3.1.0",
        "info": {"title": "warm-up", "version": "1"},
        "paths": {
            "/things/{id}": {
                "post": {
                    "parameters": [
                        {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}},
                        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1}},
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"type": "object", "required": ["a"]}}},
                    },
                    "responses": {"200": {"description": "ok"}},
                }
            }
        },
    }
    for result in schemathesis.openapi.from_dict(spec).get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]
        for mode in schemathesis.GenerationMode:

            @settings(max_examples=2, deadline=None, database=None, suppress_health_check=list(HealthCheck))
            @given(case=operation.as_strategy(generation_mode=mode))
            def generate(case: schemathesis.Case) -> None:
                case.as_transport_kwargs(base_url="http://127.0.0.1:1")

            generate()
    for name in (
        "schemathesis.transport.requests",
        "hypothesis.strategies._internal.regex",
        "hypothesis.internal.conjecture.optimiser",
    ):
        importlib.import_module(name)


_import_what_fuzzing_needs_now()


def test_no_input_gets_a_5xx_and_every_4xx_names_the_problem(tmp_path: Path):
    stack = start(write_config(tmp_path))
    try:
        base = f"http://127.0.0.1:{stack.settings['api']['port']}"
        spec = httpx.get(f"{base}/openapi.json", timeout=30).json()
        schema = schemathesis.openapi.from_dict(spec)
        tokens = {role: stack.token(role) for role in ("service", "agent", "viewer")}
        started = time.monotonic()
        tried = 0
        calls: list[tuple[str, str, int]] = []
        for result in schema.get_all_operations():
            operation = result.ok()  # type: ignore[union-attr]  # an invalid spec fails here, loudly
            method, path = operation.method.upper(), operation.path
            role = "service" if (method, path) == ("POST", "/incidents") else "viewer" if method == "GET" else "agent"
            # Half the cases name a real, open incident, so fuzzed actions reach the workflow's Update.
            ticket = open_incident(base, tokens["service"]) if "{ticket}" in path else None
            for mode in schemathesis.GenerationMode:
                check_operation(operation, mode, base, {"Authorization": f"Bearer {tokens[role]}"}, ticket, calls)
            tried += 1
        assert tried >= 15, "every operation of the spec was fuzzed"
        assert len(calls) >= tried * 10, f"only {len(calls)} requests were generated"
        acted = {status for method, path, status in calls if method == "POST" and "{ticket}" in path}
        assert {200, 409, 422} <= acted, f"fuzzed actions reached real incidents (accepted and refused): {acted}"
        print(f"{len(calls)} fuzzed requests over {tried} operations in {time.monotonic() - started:.1f}s")
    finally:
        stack.interrupt()


def open_incident(base: str, token: str) -> str:
    response = httpx.post(
        f"{base}/incidents",
        json={
            "customer_id": f"fuzz-{uuid.uuid4().hex[:8]}",
            "category": "card_charged_not_bound",
            "description": "charged while binding the card",
            "channel": "app",
            "refund": {"amount": "990.00", "currency": "RUB"},
        },
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["ticket_id"])


def check_operation(
    operation: object,
    mode: schemathesis.GenerationMode,
    base: str,
    headers: dict[str, str],
    ticket: str | None,
    calls: list[tuple[str, str, int]],
) -> None:
    @settings(
        max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(case=operation.as_strategy(generation_mode=mode), real_ticket=st.booleans())  # type: ignore[attr-defined]
    def check(case: schemathesis.Case, real_ticket: bool) -> None:
        if ticket is not None and real_ticket and mode is schemathesis.GenerationMode.POSITIVE:
            case.path_parameters = {**(case.path_parameters or {}), "ticket": ticket}
        response = case.call(base_url=base, headers=headers, timeout=30)
        calls.append((case.method.upper(), case.path, response.status_code))
        label = f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:300]}"
        assert response.status_code < 500, label
        if response.status_code >= 400:
            detail = response.json().get("detail")
            assert isinstance(detail, str) and detail.strip(), label
        if response.status_code == 422:
            # Each invalid field is named in the readable detail, not only in the structured errors.
            for error in response.json()["errors"]:
                named = [str(part) for part in error["loc"] if part not in ("body", "query", "path")]
                assert not named or named[-1] in detail, label

    try:
        check()
    except Unsatisfiable:
        # An operation without inputs (GET /healthz) has no invalid variants to generate.
        assert mode is schemathesis.GenerationMode.NEGATIVE
