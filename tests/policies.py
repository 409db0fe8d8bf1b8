from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from workflows.domain.policy import Policy, default_policy, parse_policy
from workflows.domain.policy_catalogue import PolicyCatalogue

# The policies the tests' in-process workers know (tests/conftest.py): the shipped one and every policy a test
# makes with `fast_policy` or names with `known`, as an operator would give a worker the files. Any other is
# refused by them, as in production.
KNOWN = PolicyCatalogue([default_policy()])


def known(policy: Policy) -> Policy:
    KNOWN.add(policy)
    return policy


def fast_policy(**critical: Any) -> Policy:
    """The default rules in seconds instead of hours, for tests that run on the real dev server."""
    data = default_policy().model_dump(mode="json")
    data["name"] = "fast"
    data["severities"]["critical"].update(
        {
            "acknowledge_within": "1s",
            "line_timeouts": {"1": "2s", "2": "3s"},
            "renotify_every": "1s",
            "customer_updates_every": "2s",
            "callback_after": "2s",
            "feedback_window": "4s",
            **critical,
        }
    )
    data["severities"]["routine"].update(line_timeouts={"1": "2s", "2": "3s"}, renotify_every="1s")
    for rules in data["severities"].values():
        rules["calendar"] = "24/7"  # seconds of working time would wait for the office to open
    data["refund_give_up_after"] = "20s"
    return known(parse_policy(data, "fast policy"))


def around_the_clock_policy() -> Policy:
    """The default policy with every severity on wall time, for tests about something other than calendars."""
    data = default_policy().model_dump(mode="json")
    data["name"] = "default-24-7"
    for rules in data["severities"].values():
        rules["calendar"] = "24/7"
    return known(parse_policy(data, "default policy, 24/7"))


def policy_files(folder: Path, policies: list[Policy]) -> str:
    """`policies` written as files, for a worker process to know them (INCIDENT_POLICIES, os.pathsep-separated)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for n, policy in enumerate(policies):
        path = folder / f"{n}-{policy.name}.yml"
        path.write_text(yaml.safe_dump(policy.model_dump(mode="json"), sort_keys=False))
        paths.append(str(path))
    return os.pathsep.join(paths)
