"""The README's quick start, run as written: `make run`, then the walkthrough's commands.

The only liberties taken: the stack runs on free ports (so the default ports in the commands are
replaced by this run's), `INC-XXXXXX` becomes the ticket `open` printed, and `$SERVICE_TOKEN` is the
service token `make run` printed, as the README asks the reader to do.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

from infra.binaries import temporal_cli
from tests.running_stack import ROOT, RunningStack, start, write_config

README = (ROOT / "README.md").read_text()


def section(title: str) -> str:
    return README.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def code_blocks(title: str) -> list[list[str]]:
    blocks = re.findall(r"```sh\n(.*?)```", section(title), re.S)
    return [[line for line in block.replace("\\\n", " ").splitlines() if line.strip()] for block in blocks]


def web_ui_query() -> str:
    """The query the walkthrough tells the reader to type into the web UI's query box."""
    found = re.search(r"type\s+`([^`]+)`\s+into the query box", section("Using it"))
    assert found, "the walkthrough names the web UI query to type"
    return re.sub(r"\s+", " ", found.group(1))


def test_the_quick_start_has_exactly_the_two_commands():
    assert code_blocks("Quick start") == [["make run", "make test"]]
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def run_as_written(stack: RunningStack, command: str, **substitutions: str) -> str:
    ports = stack.settings
    defaults = {
        "localhost:8233": f"localhost:{ports['temporal']['ui_port']}",
        "127.0.0.1:8080": f"127.0.0.1:{ports['api']['port']}",
    }
    for old, new in {**defaults, **substitutions}.items():
        command = command.replace(old, new)
    env = {
        **stack.env,
        "PATH": f"{ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "SERVICE_TOKEN": stack.token("service"),
    }
    result = subprocess.run(
        ["bash", "-c", command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def listed_in_the_web_ui(stack: RunningStack, query: str) -> list[str]:
    """What the web UI lists for a query: the same visibility query, sent by the temporal CLI."""
    address = f"127.0.0.1:{stack.settings['temporal']['port']}"
    result = subprocess.run(
        [temporal_cli(), "workflow", "list", "--address", address, "--query", query, "--output", "json"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return [row["execution"]["workflowId"] for row in json.loads(result.stdout or "[]")]


def test_make_run_and_the_walkthrough_work_as_written(tmp_path: Path):
    open_block, act_block, *_ = code_blocks("Using it")
    curl_block = next(block for block in code_blocks("Using it") if block[0].startswith("curl"))
    assert len(open_block) == 1 and "incidents open" in open_block[0]
    stack = start(write_config(tmp_path), argv=["make", "--no-print-directory", "run"])
    try:
        opened = run_as_written(stack, open_block[0])
        ticket = re.search(r"opened (INC-[0-9A-Z]{6})", opened).group(1)  # type: ignore[union-attr]

        # "Within ten seconds the incident is listed there" (the web UI, with the README's query).
        query = web_ui_query()
        deadline = time.monotonic() + 60
        while ticket not in listed_in_the_web_ui(stack, query):
            assert time.monotonic() < deadline, f"{ticket} never matched {query!r}"
            time.sleep(1)

        outputs = [run_as_written(stack, command, **{"INC-XXXXXX": ticket}) for command in act_block]
        assert ticket in outputs[0], "incidents list shows the escalated incident"
        history = outputs[-1]
        for words in (
            "sla_breached",
            "Escalated from line 1 to line 2 (its time on the line ran out)",
            "acknowledged",
            "resolved",
        ):
            assert words in history, history
        # `--as ann` acted as ann, through the API with her token: the incident records her as the actor.
        state = json.loads(run_as_written(stack, f"incidents show {ticket} --json"))
        assert (state["assignee"], [e["by"] for e in state["events"] if e["type"] == "resolved"]) == ("ann", ["ann"])

        created = json.loads(run_as_written(stack, " ".join(curl_block)))
        assert created["ticket_id"].startswith("INC-") and created["severity"] == "critical", created
    finally:
        code = stack.interrupt()
    # make reports the Ctrl-C it passed on (killed by SIGINT); the stack itself stopped cleanly.
    assert code in (0, -signal.SIGINT) and "stopped." in stack.output
