"""What `incidents dev` shows to other users of the machine and to the terminal: no secret on any
process's command line (`ps`), none handed out by the web UI, metrics on loopback only, and customer or
agent text printed by the CLI as written, never as terminal control or rich markup."""

from __future__ import annotations

import base64
import contextlib
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.running_stack import RunningStack, cli, start, write_config

ROLES = ("service", "agent", "viewer", "sre")
ESC = "\x1b"
# What a customer or an agent might type, on purpose or by pasting: rich markup, a closing tag with no
# opening one (rich refuses it), a clear-screen escape and a carriage return that rewrites the line.
NASTY = f"x[/bold]y [red]x[/red] wipe{ESC}[2Jafter back\rover"
NASTY_AGENT = f"ann[/bold]{ESC}[31m"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    folder = tmp_path_factory.mktemp("surfaces")
    config = write_config(folder)
    settings = yaml.safe_load(config.read_text())
    settings["webhook_secret"] = f"whsec-{secrets.token_urlsafe(18)}"
    config.write_text(yaml.safe_dump(settings))
    running = start(config)
    try:
        yield running
    finally:
        running.interrupt()


def _secrets_of(stack: RunningStack) -> dict[str, str]:
    found = {f"{role} token": stack.token(role) for role in ROLES}
    found["webhook secret"] = stack.settings["webhook_secret"]
    data = Path(stack.settings["data_dir"])
    for key_id, key in yaml.safe_load((data / "codec-keys.yml").read_text())["keys"].items():
        assert len(base64.b64decode(key)) == 32
        found[f"codec key {key_id}"] = key
    return found


def test_no_process_of_the_stack_has_a_secret_on_its_command_line(stack: RunningStack):
    known = _secrets_of(stack)
    commands = {}
    for pid in [stack.process.pid, *stack.descendants()]:
        with contextlib.suppress(OSError):
            commands[pid] = (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    assert len(commands) >= 7, f"the supervisor and its six children at least: {commands}"
    assert any("start-dev" in c for c in commands.values()) and any("codec-server" in c for c in commands.values())
    leaks = [
        (what, command[:120]) for what, value in known.items() for command in commands.values() if value in command
    ]
    assert not leaks, f"secrets on a command line, for any user's `ps` to read: {leaks}"


def test_the_web_ui_hands_no_token_to_whoever_opens_it(stack: RunningStack):
    # Whatever the dev server's UI is configured with, it serves to every browser that reaches it.
    settings = httpx.get(f"http://127.0.0.1:{stack.settings['temporal']['ui_port']}/api/v1/settings", timeout=10)
    assert settings.status_code == 200
    leaked = [what for what, value in _secrets_of(stack).items() if value in settings.text]
    assert not leaked, f"the web UI's settings carry {leaked}: {settings.text[:300]}"
    # The SRE gets the codec endpoint from the banner, to set in their own browser.
    sre = stack.token("sre")
    assert f"http://127.0.0.1:{stack.settings['codec_server']['port']}/sre/{sre}" in stack.output


def _listening(port: int) -> list[str]:
    """The local addresses (hex, as the kernel writes them) of every TCP socket listening on `port`."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                address, hex_port = fields[1].rsplit(":", 1)
                if fields[3] == "0A" and int(hex_port, 16) == port:
                    found.append(address)
    return found


def test_the_worker_metrics_listen_on_loopback_only(stack: RunningStack):
    port = stack.settings["worker"]["metrics_port"]
    assert httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).status_code == 200
    addresses = _listening(port)
    # 127.0.0.1 in /proc/net/tcp's little-endian hex; 0.0.0.0 would be 00000000 (every interface).
    assert addresses == ["0100007F"], f"metrics listen on {addresses}, not on 127.0.0.1 alone"


# --- terminal safety, through the real CLI ---


def _opened(stack: RunningStack, customer: str) -> str:
    opened = cli(stack, "open", "--customer", customer, "--category", "speed_drop", "--description", NASTY)
    assert opened.returncode == 0, opened.stderr
    found = re.search(r"INC-[0-9A-Z]+", opened.stdout)
    assert found, opened.stdout
    return found.group()


def _assert_shown_literally(output: str, *texts: str) -> None:
    assert ESC not in output, f"a raw escape character reached the terminal: {output!r}"
    assert "\r" not in output, f"a raw carriage return reached the terminal: {output!r}"
    for text in texts:
        written = text.replace(ESC, "\\x1b").replace("\r", "\\r")
        assert written in output, f"{written!r} is not shown as written in:\n{output}"


def test_show_prints_markup_and_control_characters_as_written(stack: RunningStack):
    ticket = _opened(stack, "term-1")
    # The CLI acts as the token's person (ann); agent text typed by someone is the assignee's name.
    for step in (
        ("--as", "ann", "assign", ticket, "--assignee", NASTY_AGENT),
        ("--as", "ann", "note", ticket, "--text", NASTY),
    ):
        done = cli(stack, *step)
        assert done.returncode == 0, done.stderr
    shown = cli(stack, "show", ticket)
    assert shown.returncode == 0, shown.stderr
    _assert_shown_literally(shown.stdout, NASTY, NASTY_AGENT)
    assert ticket in shown.stdout


def test_history_and_list_print_markup_and_control_characters_as_written(stack: RunningStack):
    ticket = _opened(stack, "term-2")
    for step in (
        ("--as", "ann", "assign", ticket, "--assignee", NASTY_AGENT),
        ("--as", "ann", "note", ticket, "--text", NASTY),
        ("--as", "ann", "resolve", ticket, "--resolution", NASTY),
    ):
        done = cli(stack, *step)
        assert done.returncode == 0, done.stderr
        _assert_shown_literally(done.stdout)
    history = cli(stack, "history", ticket)
    assert history.returncode == 0, history.stderr
    _assert_shown_literally(history.stdout, NASTY, NASTY_AGENT)
    for _ in range(50):  # visibility catches up with the assignee
        listed = cli(stack, "list", "--customer", "term-2")
        if "ann" in listed.stdout:
            break
    assert listed.returncode == 0, listed.stderr
    _assert_shown_literally(listed.stdout, NASTY_AGENT)


def test_an_error_quoting_what_was_typed_prints_it_as_written(stack: RunningStack):
    typed = f"INC-{ESC}[2J\rX"
    missing = cli(stack, "show", typed)
    assert missing.returncode == 1
    _assert_shown_literally(missing.stderr, typed)
