"""Major incidents as line 2 and operators run them (issue 18): the `incidents outage` commands and the HTTP
API's /outages routes, against a stack started by `incidents dev`, with its own worker and dev server."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.running_stack import RunningStack, cli, start, write_config


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    running = start(write_config(tmp_path_factory.mktemp("outage-stack")))
    yield running
    running.interrupt()


def declared(stack: RunningStack, *args: str, person: str = "boris") -> dict[str, Any]:
    result = cli(stack, "--as", person, "outage", "declare", "--json", *args)
    assert result.returncode == 0, result.stderr
    state = dict(json.loads(result.stdout))
    assert result.stderr.startswith(f"declared {state['outage_id']}")
    return state


def opened(stack: RunningStack, customer: str, *area: str, category: str = "connection_lost") -> dict[str, Any]:
    result = cli(
        stack, "open", "--json", "--customer", customer, "--category", category, "--description", "no internet", *area
    )
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def eventually(check: Any, within: float = 30.0) -> Any:
    deadline = time.monotonic() + within
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, "not within the time"
        time.sleep(0.3)


KHIMKI = ("--region", "moscow", "--city", "khimki")


def test_line_two_declares_the_area_links_at_once_and_resolving_resolves_them(stack: RunningStack):
    outage = declared(
        stack,
        *KHIMKI,
        "--category",
        "connection_lost",
        "--summary",
        "A cable was cut in Khimki.",
        "--owner",
        "boris",
        "--fix-by",
        "3h",
    )
    outage_id = outage["outage_id"]
    assert outage["declared_by"] == "boris" and outage["line"] == 2 and outage["status"] == "active"

    def on_the_board() -> dict[str, Any] | None:
        state = opened(stack, f"cli-out-{time.monotonic_ns()}", *KHIMKI, "--segment", "n-7")
        return state if state["outage"] else None

    incident = eventually(on_the_board)  # the board has the notice a moment after the declaration
    ticket = incident["ticket_id"]
    assert incident["outage"]["notice"]["outage_id"] == outage_id
    show = cli(stack, "show", ticket)
    assert show.returncode == 0 and f"linked to {outage_id}" in show.stdout
    listed = eventually(lambda: json.loads(cli(stack, "list", "--outage", outage_id, "--json").stdout))
    assert ticket in {row["ticket_id"] for row in listed}
    assert all(row["outage_id"] == outage_id for row in listed)
    linked = json.loads(cli(stack, "outage", "incidents", outage_id, "--json").stdout)
    assert {row["ticket_id"] for row in linked} == {row["ticket_id"] for row in listed}
    shown = cli(stack, "outage", "show", outage_id)
    assert shown.returncode == 0 and "A cable was cut in Khimki." in shown.stdout and "moscow/khimki" in shown.stdout
    assert outage_id in cli(stack, "outage", "list").stdout

    moved = cli(stack, "--as", "boris", "outage", "update", outage_id, "--news", "Splicing now.", "--fix-by", "4h")
    assert moved.returncode == 0 and "updates recorded" in moved.stdout, moved.stderr
    resolved = cli(stack, "--as", "vera", "outage", "resolve", outage_id, "--resolution", "The cable is spliced.")
    assert resolved.returncode == 0, resolved.stderr
    after = eventually(lambda: _state_if(stack, ticket, lambda s: s["status"] != "open"))
    assert after["outage"]["ended"] == "resolved together" and after["resolution"] == "The cable is spliced."
    again = cli(stack, "--as", "boris", "outage", "resolve", outage_id, "--resolution", "twice")
    assert again.returncode == 1 and "resolved" in again.stderr


def test_who_may_declare_and_what_is_refused_by_name(stack: RunningStack):
    args = ("--region", "tver", "--summary", "Works.", "--owner", "boris", "--fix-by", "2h")
    line_one = cli(stack, "--as", "ann", "outage", "declare", *args)
    assert line_one.returncode == 1 and "line 2 or above" in line_one.stderr, line_one.stderr
    no_zone = cli(stack, "--as", "boris", "outage", "declare", *args[:-1], "2026-12-02T18:00")
    assert no_zone.returncode == 2 and "--fix-by" in no_zone.stderr and "time zone" in no_zone.stderr
    segment = cli(stack, "--as", "boris", "outage", "declare", *args, "--segment", "n-1")
    assert segment.returncode == 2 and "segment" in segment.stderr
    planned = cli(stack, "--as", "boris", "outage", "declare", *args, "--planned")
    assert planned.returncode == 2 and "started_at" in planned.stderr
    missing = cli(stack, "outage", "show", "OUT-000000")
    assert missing.returncode == 1 and "no major incident OUT-000000" in missing.stderr
    unknown = cli(stack, "--as", "boris", "outage", "resolve", "OUT-000000", "--resolution", "x")
    assert unknown.returncode == 1 and "OUT-000000" in unknown.stderr


def test_the_http_api_declares_for_line_two_and_operators_links_and_unlinks(stack: RunningStack):
    api = f"http://127.0.0.1:{stack.settings['api']['port']}"
    tokens = {person: _agent_token(stack, person) for person in ("ann", "boris")}
    sre, viewer, service = stack.token("sre"), stack.token("viewer"), stack.token("service")
    body = {
        "area": {"region": "moscow", "city": "dolgoprudny"},
        "categories": ["speed_drop"],
        "summary": "A switch failed in Dolgoprudny.",
        "owner": "boris",
        "expected_fix_by": (datetime.now(UTC) + timedelta(hours=2)).isoformat(),
        "request_id": f"ops-{time.monotonic_ns()}",
    }
    with httpx.Client(base_url=api, timeout=30) as http:
        assert http.post("/outages", json=body, headers=_bearer(tokens["ann"])).status_code == 403
        assert http.post("/outages", json=body, headers=_bearer(viewer)).status_code == 403
        forged = http.post("/outages", json={**body, "declared_by": "vera"}, headers=_bearer(tokens["boris"]))
        assert forged.status_code == 403 and "belongs to boris" in forged.json()["detail"]
        first = http.post("/outages", json=body, headers=_bearer(sre))
        assert first.status_code == 201, first.text
        outage_id = first.json()["outage_id"]
        assert first.headers["Location"] == f"/outages/{outage_id}" and first.json()["declared_by"] == "dev-sre"
        again = http.post("/outages", json=body, headers=_bearer(sre))
        assert again.status_code == 200 and again.json()["outage_id"] == outage_id
        bad = http.post("/outages", json={**body, "area": {"region": "x", "segment": "y"}}, headers=_bearer(sre))
        assert bad.status_code == 422 and "segment" in bad.json()["detail"]

        # An incident opened before the major incident was declared elsewhere: an agent links it by hand.
        incident = http.post(
            "/incidents",
            json={
                "customer_id": f"api-out-{time.monotonic_ns()}",
                "category": "speed_drop",
                "description": "slow",
                "channel": "app",
                "new_incident": True,
            },
            headers=_bearer(service),
        ).json()
        ticket = incident["ticket_id"]
        link = http.post(
            f"/incidents/{ticket}/outage-link", json={"outage_id": outage_id}, headers=_bearer(tokens["boris"])
        )
        assert link.status_code == 200, link.text
        assert link.json()["state"]["outage"]["notice"]["outage_id"] == outage_id
        nowhere = http.post(
            f"/incidents/{ticket}/outage-link", json={"outage_id": "OUT-000000"}, headers=_bearer(tokens["boris"])
        )
        assert nowhere.status_code == 409 and "no major incident OUT-000000" in nowhere.json()["detail"]
        twice = http.post(
            f"/incidents/{ticket}/outage-link", json={"outage_id": outage_id}, headers=_bearer(tokens["boris"])
        )
        assert twice.status_code == 409 and f"already linked to {outage_id}" in twice.json()["detail"]
        shown = http.get(f"/outages/{outage_id}/incidents", headers=_bearer(viewer))
        assert shown.status_code == 200
        unlink = http.post(
            f"/incidents/{ticket}/outage-unlink", json={"reason": "its own router"}, headers=_bearer(tokens["ann"])
        )
        assert unlink.status_code == 200 and unlink.json()["state"]["outage"] is None
        update = http.post(f"/outages/{outage_id}/updates", json={}, headers=_bearer(tokens["boris"]))
        assert update.status_code == 422 and "news" in update.json()["detail"]
        resolved = http.post(
            f"/outages/{outage_id}/resolve", json={"resolution": "Switch replaced."}, headers=_bearer(tokens["boris"])
        )
        assert resolved.status_code == 200 and resolved.json()["state"]["status"] == "resolved"
        refused = http.post(
            f"/outages/{outage_id}/resolve", json={"resolution": "again"}, headers=_bearer(tokens["boris"])
        )
        assert refused.status_code == 409 and "resolved" in refused.json()["detail"]
        assert http.get("/outages/OUT-000000", headers=_bearer(viewer)).status_code == 404
        assert http.get("/outages", headers=_bearer(viewer)).status_code == 200


def _state_if(stack: RunningStack, ticket: str, predicate: Any) -> dict[str, Any] | None:
    state = dict(json.loads(cli(stack, "show", ticket, "--json").stdout))
    return state if predicate(state) else None


def _agent_token(stack: RunningStack, person: str) -> str:
    from pathlib import Path

    import yaml

    credentials = Path(stack.settings["data_dir"]) / "agent-credentials.yml"
    return str(yaml.safe_load(credentials.read_text())[person])


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_the_python_client_runs_a_major_incident(stack: RunningStack):
    from starter.http_client import IncidentsHttpClient, NotFound, Rejected
    from workflows.domain.outage import DeclareOutage

    api = f"http://127.0.0.1:{stack.settings['api']['port']}"
    async with IncidentsHttpClient(api, _agent_token(stack, "vera")) as client:
        state = await client.declare_outage(
            DeclareOutage.model_validate(
                {
                    "area": {"region": "moscow", "city": "zelenograd"},
                    "summary": "Planned works on the exchange.",
                    "owner": "vera",
                    "kind": "planned_works",
                    "started_at": (datetime.now(UTC) + timedelta(days=2)).isoformat(),
                    "expected_fix_by": (datetime.now(UTC) + timedelta(days=2, hours=4)).isoformat(),
                }
            )
        )
        outage_id = state.outage_id
        assert (
            state.status == "announced"
            and state.line == 3
            and state.ahead_pending == [timedelta(days=1), timedelta(hours=1)]
        )
        assert outage_id in {row.outage_id for row in await client.outages(running=True)}
        later = datetime.now(UTC) + timedelta(days=2, hours=6)
        moved = await client.update_outage(outage_id, news="Longer than planned.", expected_fix_by=later)
        assert moved.expected_fix_by == later and moved.updates == 1
        assert await client.outage_incidents(outage_id) == []
        done = await client.resolve_outage(outage_id, "Called off.")
        assert done.status == "resolved" and (await client.outage(outage_id)).resolution == "Called off."
        with pytest.raises(Rejected, match="is over"):  # called off before it began: nothing left to follow
            await client.escalate_outage(outage_id, "too late")
        with pytest.raises(NotFound):
            await client.outage("OUT-000000")
