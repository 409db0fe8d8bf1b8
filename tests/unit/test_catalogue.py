"""The action catalogue is the one list of actions: the state machine, the API and the CLI all follow it."""

from __future__ import annotations

import argparse

from starter.api import create_app
from starter.auth import TokenStore
from starter.cli import build_parser
from workflows.domain.actions import CATALOGUE
from workflows.domain.incident import unhandled_actions


def test_every_action_has_a_handler_in_the_state_machine():
    assert unhandled_actions() == set()


def test_every_action_is_a_route_of_the_api_with_its_summary():
    app = create_app(service=None, tokens=TokenStore({}))  # type: ignore[arg-type]
    paths = app.openapi()["paths"]
    for model in CATALOGUE.values():
        route = paths[f"/incidents/{{ticket}}/{model.meta.path}"]["post"]
        assert route["summary"] == model.summary()
        body = route["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        assert body.endswith(f"/{model.__name__}")


def test_every_action_is_a_command_of_the_cli():
    parser = build_parser()
    for model in CATALOGUE.values():
        level: argparse.ArgumentParser = parser
        for word in model.meta.cli:
            (commands,) = (a for a in level._actions if isinstance(a, argparse._SubParsersAction))
            assert word in commands.choices, f"{model.action_name()}: no `{' '.join(model.meta.cli)}` command"
            level = commands.choices[word]


def test_message_customer_reaches_every_surface_from_its_catalogue_entry_alone():
    """Issue 16's promise, kept by issue 17's action: one model and one handler, no route or command written."""
    from starter.cli import _action_payload
    from workflows.domain.actions import MessageCustomer
    from workflows.domain.core import HANDLERS

    assert CATALOGUE["message_customer"] is MessageCustomer and "message_customer" in HANDLERS
    app = create_app(service=None, tokens=TokenStore({}))  # type: ignore[arg-type]
    assert "post" in app.openapi()["paths"]["/incidents/{ticket}/customer-messages"]
    args = build_parser().parse_args(["message", "INC-7F3K2Q", "--text", "restart the router"])
    assert args.ticket == "INC-7F3K2Q"
    assert _action_payload(MessageCustomer, args) == {"type": "message_customer", "text": "restart the router"}
