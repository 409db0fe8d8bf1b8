"""The `incidents` CLI as an agent uses it, against a stack started by `incidents dev`."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.stack import RunningStack, cli, listed, start, write_config


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    running = start(write_config(tmp_path_factory.mktemp("cli-stack")))
    yield running
    running.interrupt()


def opened(stack: RunningStack, *args: str) -> dict:
    """The state `open --json` prints, with what happened (said on stderr) as "outcome"."""
    result = cli(stack, "open", "--json", *args)
    assert result.returncode == 0, result.stderr
    state = dict(json.loads(result.stdout))
    said = {"opened": "created", "joined the open incident": "joined", "already opened as": "existing"}
    outcome = next(kind for words, kind in said.items() if result.stderr.startswith(f"{words} {state['ticket_id']}"))
    return {**state, "outcome": outcome}


def test_open_show_act_and_history(stack: RunningStack):
    state = opened(
        stack,
        "--customer",
        "cli-1",
        "--category",
        "speed_drop",
        "--description",
        "slow since Monday",
        "--contact",
        "cli@example.com",
    )
    ticket = state["ticket_id"]
    assert state["outcome"] == "created" and state["severity"] == "critical"
    plain = cli(stack, "open", "--customer", "cli-1b", "--category", "ui_typo", "--description", "typo")
    assert plain.returncode == 0 and plain.stdout.startswith("opened INC-")
    show = cli(stack, "show", ticket)
    assert show.returncode == 0 and ticket in show.stdout and "critical" in show.stdout and "nobody yet" in show.stdout
    shown = json.loads(cli(stack, "show", ticket, "--json").stdout)
    assert shown["ticket_id"] == ticket
    assert set(shown) == set(state) - {"outcome"}, "open --json prints the same state query as show --json"
    for args in (
        ("ack", ticket, "--agent", "boris"),
        ("assign", ticket, "--agent", "duty", "--assignee", "ann"),
        ("note", ticket, "--agent", "ann", "--text", "checking the port"),
        ("escalate", ticket, "--agent", "ann", "--reason", "needs the fibre team"),
        ("resolve", ticket, "--agent", "boris", "--resolution", "port replaced"),
    ):
        result = cli(stack, *args)
        assert result.returncode == 0 and "recorded" in result.stdout, result.stderr
    history = cli(stack, "history", ticket)
    assert history.returncode == 0
    for words in ("opened", "assigned", "acknowledged", "note_added", "line 1 -> 2 (manual)", "resolved"):
        assert words in history.stdout
    events = json.loads(cli(stack, "history", ticket, "--json").stdout)
    assert [e["type"] for e in events][:1] == ["opened"]


def test_exit_codes_and_messages(stack: RunningStack):
    missing = cli(stack, "show", "INC-ZZZZZZ")
    assert missing.returncode == 1 and "no incident INC-ZZZZZZ" in missing.stderr
    invalid = cli(stack, "open", "--customer", "c", "--category", "other", "--description", "", "--channel", "fax")
    assert invalid.returncode == 2 and "description" in invalid.stderr and "channel" in invalid.stderr
    bad_refund = cli(
        stack,
        "open",
        "--customer",
        "c",
        "--category",
        "other",
        "--description",
        "d",
        "--refund",
        "ten",
        "--currency",
        "RUB",
    )
    assert bad_refund.returncode == 2 and "refund.amount" in bad_refund.stderr
    ticket = opened(stack, "--customer", "cli-2", "--category", "tariff_change", "--description", "night")["ticket_id"]
    early = cli(stack, "feedback", ticket, "--score", "5")
    assert early.returncode == 1 and "refused feedback" in early.stderr and "after resolution" in early.stderr
    score = cli(stack, "feedback", ticket, "--score", "9")
    assert score.returncode == 2 and "score" in score.stderr
    empty = cli(stack, "ack", ticket, "--agent", " ")
    assert empty.returncode == 2 and "agent" in empty.stderr
    usage = cli(stack, "ack", ticket)
    assert usage.returncode == 2 and "--agent" in usage.stderr


def test_request_ids_and_recontacts_give_the_same_ticket(stack: RunningStack):
    first = opened(stack, "--customer", "cli-3", "--category", "other", "--description", "iPhone", "--request-id", "r1")
    again = opened(stack, "--customer", "cli-3", "--category", "other", "--description", "iPhone", "--request-id", "r1")
    joined = opened(stack, "--customer", "cli-3", "--category", "other", "--description", "calling again")
    new = opened(stack, "--customer", "cli-3", "--category", "other", "--description", "new one", "--new")
    assert first["ticket_id"] == again["ticket_id"] == joined["ticket_id"] != new["ticket_id"]
    assert (again["outcome"], joined["outcome"], new["outcome"]) == ("existing", "joined", "created")


def test_list_filters_through_visibility(stack: RunningStack):
    ticket = opened(stack, "--customer", "cli-4", "--category", "social_login", "--description", "login")["ticket_id"]
    rows = listed(stack, "cli-4")
    assert [(r["ticket_id"], r["severity"], r["line"]) for r in rows] == [(ticket, "convenience", 1)]
    table = cli(stack, "list", "--severity", "convenience")
    assert table.returncode == 0 and ticket in table.stdout
    assert cli(stack, "list", "--line", "7").returncode == 2


def test_refund_commands(stack: RunningStack):
    state = opened(
        stack,
        "--customer",
        "cli-5",
        "--category",
        "payment_not_refunded",
        "--description",
        "charged",
        "--refund",
        "7000.00",
        "--currency",
        "RUB",
    )
    ticket = state["ticket_id"]
    assert state["refund"]["status"] == "awaiting_approval"
    low = cli(stack, "refund", "approve", ticket, "--agent", "ann", "--line", "1")
    assert low.returncode == 1 and "line-1 approval limit" in low.stderr
    ok = cli(stack, "refund", "approve", ticket, "--agent", "boris", "--line", "2")
    assert ok.returncode == 0, ok.stderr
    for _ in range(50):
        refund = json.loads(cli(stack, "show", ticket, "--json").stdout)["refund"]
        if refund["status"] == "paid":
            break
        time.sleep(0.2)
    assert refund["status"] == "paid"


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("api: {port: not-a-port}\n", "api.port"),
        ("temporal: {sqlite_pragmas: {journal_mod: wal}}\n", "temporal.sqlite_pragmas.journal_mod"),
        ("temporal: {sqlite_pragmas: {synchronous: sometimes}}\n", "temporal.sqlite_pragmas.synchronous"),
        ("log_level: loud\n", "log_level"),
        ("webhook_secret: short\n", "webhook_secret"),
        ("- a list\n", "mapping at the top level"),
    ],
)
def test_a_bad_dev_config_names_the_field(tmp_path: Path, text: str, field: str):
    config = tmp_path / "temporal-dev.yml"
    config.write_text(text)
    for command in ("dev", "list"):  # the stack refuses to start; the CLI refuses to guess where it is
        result = cli(config, command)
        assert result.returncode == 2 and field in result.stderr and "Traceback" not in result.stderr, result.stderr


def test_demo_plays_the_three_stories(stack: RunningStack):
    result = cli(stack, "demo", timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "now on line 2" in out and "RUB credited" in out and "score 5: closed" in out
    assert "refund paid after 4 attempts" in out and "ledger holds 1 payment" in out
    calls = re.findall(r"call \d: (\w+) (INC-\w+)", out)
    assert [outcome for outcome, _ in calls] == ["created", "joined", "joined"]
    assert len({ticket for _, ticket in calls}) == 1
    ui_port = stack.settings["temporal"]["ui_port"]
    assert f"http://localhost:{ui_port}/namespaces/default/workflows/{calls[0][1]}" in out
    faults = httpx.get(f"http://127.0.0.1:{stack.settings['sandboxes']['payments_port']}/_sandbox/faults", timeout=5)
    assert faults.json()["fail_first"] == 0, "the demo lifts the faults it injected"


def test_demo_without_a_stack_says_so(tmp_path: Path):
    result = cli(write_config(tmp_path), "demo")
    assert result.returncode == 1 and "cannot reach Temporal" in result.stderr and "Traceback" not in result.stderr
