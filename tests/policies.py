from __future__ import annotations

from typing import Any

from workflows.domain.policy import Policy, default_policy, parse_policy


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
    return parse_policy(data, "fast policy")


def around_the_clock_policy() -> Policy:
    """The default policy with every severity on wall time, for tests about something other than calendars."""
    data = default_policy().model_dump(mode="json")
    for rules in data["severities"].values():
        rules["calendar"] = "24/7"
    return parse_policy(data, "default policy, 24/7")
