"""`incidents dev` (what `make run` runs): everything comes up, Ctrl-C leaves nothing behind, and a
second start finds the incidents of the first."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from pathlib import Path

import httpx
import yaml

from infra.binaries import temporal_cli
from infra.processes import Child, Supervisor, listening
from tests.running_stack import (
    alive,
    cli,
    launch,
    listed,
    listening_ports,
    ports_listened,
    start,
    write_config,
)
from tests.sandbox_servers import free_port


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


def test_kill_9_of_the_supervisor_takes_the_whole_stack_with_it(tmp_path: Path):
    """The OOM killer or a stray `kill -9` gives `incidents dev` no chance to stop its children: they
    (and anything they started) must die with it, ports and all, so that the next `make run` starts."""
    config = write_config(tmp_path)
    stack = start(config)
    tree = stack.descendants()
    try:
        assert len(stack.children()) == 6, stack.output
        settings = stack.settings
        configured = {
            settings["temporal"]["port"],
            settings["temporal"]["ui_port"],
            settings["api"]["port"],
            settings["sandboxes"]["payments_port"],
            settings["sandboxes"]["notify_port"],
            settings["worker"]["metrics_port"],
            settings["codec_server"]["port"],
        }
        held = listening_ports(tree)
        assert configured <= held, f"the stack listens on every configured port: {sorted(configured - held)} missing"

        os.kill(stack.process.pid, signal.SIGKILL)
        stack.process.wait(10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and ([pid for pid in tree if alive(pid)] or configured & ports_listened()):
            time.sleep(0.1)
        left = [(Path("/proc") / str(pid) / "cmdline").read_bytes()[:60] for pid in tree if alive(pid)]
        assert not left, f"processes outlived their supervisor: {left}"
        # (Dead, they hold no port at all; the dev server's random internal ports may be anyone's by now.)
        assert not configured & ports_listened(), f"ports still held: {sorted(configured & ports_listened())}"
    finally:
        for pid in tree:  # on failure, leave nothing of ours running
            if alive(pid):
                os.kill(pid, signal.SIGKILL)

    again = start(config)
    assert "stack is up" in again.output
    assert again.interrupt() == 0, again.output


def test_a_taken_port_is_named(tmp_path: Path):
    config = write_config(tmp_path)
    api_port = int(yaml.safe_load(config.read_text())["api"]["port"])
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", api_port))
        holder.listen()
        result = cli(config, "dev")
    assert result.returncode == 1
    assert f"api.port {api_port}" in result.stderr and "already in use" in result.stderr


def test_a_configured_temporal_is_used_and_given_the_search_attributes(tmp_path: Path):
    """TEMPORAL_ADDRESS names a server (as a team's shared one or Temporal Cloud would be): no server is
    started, and the namespace learns the incidents' search attributes it lacked."""
    port = free_port()
    plain = [temporal_cli(), "server", "start-dev", "--headless", "--ip", "127.0.0.1", "--port", str(port)]
    with Supervisor(grace=20) as supervisor:
        server = supervisor.start(
            Child("plain dev server", plain, ready=listening("127.0.0.1", port), log=tmp_path / "plain.log")
        )
        supervisor.wait_ready(server, 30)
        stack = start(write_config(tmp_path), extra_env={"TEMPORAL_ADDRESS": f"127.0.0.1:{port}"})
        try:
            assert f"Temporal (configured, not started here): 127.0.0.1:{port}" in stack.output
            assert "registered the search attributes IncidentSeverity" in stack.output
            commands = [(Path("/proc") / str(pid) / "cmdline").read_bytes() for pid in stack.children()]
            # no server, and no codec server: a laptop's key has no business on a shared server
            assert len(commands) == 4 and not [c for c in commands if b"start-dev" in c or b"codec" in c], commands
            assert "Payloads are NOT encrypted: set INCIDENTS_CODEC_KEYS_FILE" in stack.output
            opened = cli(stack, "open", "--customer", "ext-1", "--category", "ui_typo", "--description", "typo")
            assert opened.returncode == 0, opened.stderr
            rows = listed(stack, "ext-1")
            assert [r["severity"] for r in rows] == ["convenience"], "found through the registered attributes"
        finally:
            assert stack.interrupt() == 0, stack.output


def test_an_unreachable_configured_temporal_is_named(tmp_path: Path):
    address = f"127.0.0.1:{free_port()}"
    result = cli(write_config(tmp_path), "dev", extra_env={"TEMPORAL_ADDRESS": address})
    assert result.returncode == 1
    assert f"cannot reach the configured Temporal at {address} (Connection refused)" in result.stderr


def test_ctrl_c_while_starting_stops_at_once(tmp_path: Path):
    stack = launch(write_config(tmp_path))
    started: list[int] = []
    deadline = time.monotonic() + 30
    while not started and time.monotonic() < deadline:  # the first child (the Temporal server) is up
        started = stack.children()
        time.sleep(0.05)
    assert started, "incidents dev started nothing"
    assert stack.interrupt(within=30) == 0, stack.output
    out = stack.output
    assert "interrupted while starting" in out and "stopped." in out and "stack is up" not in out
    assert not [pid for pid in started if alive(pid)], "no process is left behind"
