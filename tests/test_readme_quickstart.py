"""The README's quick start, run as written: `make run`, then the walkthrough's commands."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
from pathlib import Path

from tests.stack import ROOT, stack_env, start, write_config

README = (ROOT / "README.md").read_text()


def code_blocks(section: str) -> list[list[str]]:
    body = README.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", body, re.S)
    return [[line for line in block.replace("\\\n", " ").splitlines() if line.strip()] for block in blocks]


def test_the_quick_start_has_exactly_the_two_commands():
    assert code_blocks("Quick start")[0] == ["make run", "make test"]
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_make_run_and_the_walkthrough_work_as_written(tmp_path: Path):
    commands = code_blocks("Using it")[0]
    assert commands[0].startswith("incidents open")
    stack = start(write_config(tmp_path), argv=["make", "--no-print-directory", "run"])
    try:
        env = {**stack_env(stack.config), "PATH": f"{ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}"}
        ticket = None
        for command in commands:
            if ticket:
                command = command.replace("INC-XXXXXX", ticket)
            result = subprocess.run(
                shlex.split(command), cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
            )
            assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
            if ticket is None:
                ticket = re.search(r"INC-[0-9A-Z]{6}", result.stdout).group(0)  # type: ignore[union-attr]
        assert "resolved" in result.stdout and "acknowledged" in result.stdout
    finally:
        code = stack.interrupt()
    # make reports the Ctrl-C it passed on (killed by SIGINT); the stack itself stopped cleanly.
    assert code in (0, -signal.SIGINT) and "stopped." in stack.output
