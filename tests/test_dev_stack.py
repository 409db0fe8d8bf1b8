"""`incidents dev` (what `make run` runs): everything comes up, Ctrl-C leaves nothing behind, and a
second start finds the incidents of the first."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import httpx
import yaml

from tests.stack import alive, cli, start, write_config


def test_the_stack_starts_serves_stops_cleanly_and_keeps_incidents(tmp_path: Path):
    config = write_config(tmp_path)
    stack = start(config)
    try:
        ports = stack.settings
        for url in (
            f"http://127.0.0.1:{ports['api']['port']}/healthz",
            f"http://127.0.0.1:{ports['sandboxes']['payments_port']}/healthz",
            f"http://127.0.0.1:{ports['sandboxes']['notify_port']}/healthz",
            f"http://127.0.0.1:{ports['worker']['metrics_port']}/metrics",
            f"http://127.0.0.1:{ports['temporal']['ui_port']}/",
        ):
            assert httpx.get(url, timeout=10).status_code == 200, url
        assert "web UI http://localhost:" in stack.output and "API tokens for this run" in stack.output
        token = stack.token("service")
        created = httpx.post(
            f"http://127.0.0.1:{ports['api']['port']}/incidents",
            json={"customer_id": "dev-1", "category": "connection_lost", "description": "down", "channel": "chat"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        assert created.status_code == 201, created.text
        ticket = created.json()["ticket_id"]
        children = stack.children()
        assert len(children) == 6, stack.output
    finally:
        code = stack.interrupt()
    assert code == 0, stack.output
    assert "stopped." in stack.output
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in children if alive(pid)], "no process is left behind"

    again = start(config)
    try:
        shown = cli(again, "show", ticket, "--json")
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout)["description"] == "down", "the second start finds the first's incident"
    finally:
        again.interrupt()


def test_a_taken_port_is_named(tmp_path: Path):
    config = write_config(tmp_path)
    api_port = int(yaml.safe_load(config.read_text())["api"]["port"])
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", api_port))
        holder.listen()
        result = cli(config, "dev")
    assert result.returncode == 1
    assert f"api.port {api_port}" in result.stderr and "already in use" in result.stderr
