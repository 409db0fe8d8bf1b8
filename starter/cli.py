"""`incidents`: the command line for agents and operators, and the entry point of every process.

Exit codes: 0 done; 1 the incident does not exist, it or the API refused the action, or Temporal or
the API is unreachable; 2 the input was invalid (the message names the field).

Agent actions go through the HTTP API with the acting agent's bearer token (`--as PERSON` under the dev
stack, else the file INCIDENTS_TOKEN_FILE names), so the API alone decides who acts and what they may;
reading commands (show, history, list) and `open` (a service's action) talk to Temporal directly.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Sequence
from enum import Enum
from pathlib import Path
from typing import Any, NoReturn, get_args

from pydantic import ValidationError
from pydantic.fields import FieldInfo
from rich.console import Console

from infra.errors import describe_validation_error
from workflows.domain.actions import ACTOR_FIELDS, ACTOR_LINE, CATALOGUE, ActionModel
from workflows.domain.models import Channel, Language, Money, OpenIncident, Refund, Severity, Status

EXIT_REFUSED = 1
EXIT_INVALID = 2
_AGENT_HELP = "who does it: the token's person (the default); any other name is refused"
_CHARGE_HELP = "the charge the refund reverses (the provider's reference): a charge is refunded once, across incidents"
_AS_HELP = (
    "act as this dev agent (ann, boris, vera): their token from what `incidents dev` wrote; elsewhere set "
    "INCIDENTS_TOKEN_FILE"
)


class CliError(Exception):
    def __init__(self, message: str, code: int = EXIT_REFUSED) -> None:
        super().__init__(message)
        self.code = code


def _console() -> Console:
    # Piped output is read by scripts and people alike: do not wrap tables at 80 columns there.
    return Console(highlight=False, width=None if sys.stdout.isatty() else 160)


def _fail(message: str, code: int) -> NoReturn:
    from starter.render import visible

    # The message may quote what someone typed (a ticket number, a reason): no control character of it
    # reaches the terminal as one.
    print(f"incidents: {visible(message)}", file=sys.stderr)
    raise SystemExit(code)


# --- talking to the stack ---


def _load_settings(args: argparse.Namespace) -> Any:
    """The process's settings, read once here and passed down: the environment over temporal-dev.yml (in a
    checkout the commands find the `make run` stack through it, unless another server is named)."""
    from infra.devconfig import DevConfigError
    from infra.settings import Settings

    try:
        return Settings.load(config_file=getattr(args, "config", None))
    except DevConfigError as error:
        if args.command == "dev":
            print(f"incidents dev: {error}", file=sys.stderr)
            raise SystemExit(EXIT_INVALID) from None
        _fail(str(error), EXIT_INVALID)


async def _service(settings: Any, policy: Any = None) -> Any:
    from infra.connection import connect, connect_config, connection_reason
    from starter.incidents import IncidentService
    from workflows.domain.policy import PolicyError, policy_from

    try:
        policy = policy if policy is not None else policy_from(settings.policy_file)
    except PolicyError as error:
        raise CliError(f"INCIDENT_POLICY: {error}", EXIT_INVALID) from None
    try:
        client = await connect(settings=settings)
    except RuntimeError as error:
        target = connect_config(settings.temporal_address).get("target_host")
        raise CliError(
            f"cannot reach Temporal at {target} ({connection_reason(error)}); is `make run` running?"
        ) from None
    return IncidentService(client, policy=policy)


def _run(work: Callable[[Any], Any], args: argparse.Namespace, policy: Any = None) -> int:
    from temporalio.service import RPCError

    from starter.incidents import ActionRejected, IncidentNotFound, PolicyRefused

    async def main() -> int:
        try:
            service = await _service(args.settings, policy)
            await work(service)
        except IncidentNotFound as error:
            raise CliError(str(error)) from None
        except ActionRejected as error:
            raise CliError(f"{error.ticket_id} refused {error.action}: {error.reason}") from None
        except PolicyRefused as error:
            raise CliError(f"not opened: {error.reason}") from None
        except RPCError as error:
            raise CliError(f"Temporal refused the call: {error.message}") from None
        except KeyError as error:
            if "binary/encrypted" not in str(error):
                raise
            raise CliError(
                "the incident's payloads are encrypted and this shell has no key for them: set "
                "INCIDENTS_CODEC_KEYS_FILE to the key file the workers use"
            ) from None
        return 0

    try:
        return asyncio.run(main())
    except CliError as error:
        _fail(str(error), error.code)


def _emit(args: argparse.Namespace, value: Any, human: Callable[[Console], None]) -> None:
    if args.json:
        print(json.dumps(value, indent=2, default=str))
    else:
        human(_console())


# --- incident commands ---


def _open(args: argparse.Namespace) -> int:
    fields: dict[str, Any] = {
        "customer_id": args.customer,
        "category": args.category,
        "description": args.description,
        "channel": args.channel,
        "contact": args.contact,
        "request_id": args.request_id,
        "new_incident": args.new,
        "language": args.language,
        "time_zone": args.time_zone,
    }
    if args.refund is not None or args.currency is not None or args.charge is not None:
        given = {"amount": args.refund, "currency": args.currency, "charge": args.charge}
        fields["refund"] = {name: value for name, value in given.items() if value is not None}
    if args.region is not None or args.city is not None or args.segment is not None:
        fields["area"] = {"region": args.region, "city": args.city, "segment": args.segment}
    request = _validated(lambda: OpenIncident.model_validate(fields))

    async def work(service: Any) -> None:
        opened = await service.open(request)
        verb = {"created": "opened", "joined": "joined the open incident", "existing": "already opened as"}
        if args.json:
            # stdout is exactly the workflow's `state` query, as `show --json` prints it; what happened
            # (a new incident, a recontact joined, a repeated request id) goes to stderr.
            print(json.dumps(opened.state.model_dump(mode="json"), indent=2))
            print(f"{verb[opened.outcome]} {opened.ticket_id}", file=sys.stderr)
            return
        _console().print(f"{verb[opened.outcome]} [bold]{opened.ticket_id}[/]")

    return _run(work, args)


def _show(args: argparse.Namespace) -> int:
    from starter import render

    async def work(service: Any) -> None:
        state = await service.state(args.ticket)
        _emit(args, state.model_dump(mode="json"), lambda c: render.show(c, state))

    return _run(work, args)


def _history(args: argparse.Namespace) -> int:
    from starter import render

    async def work(service: Any) -> None:
        state = await service.state(args.ticket)
        _emit(
            args,
            [e.model_dump(mode="json") for e in state.events],
            lambda c: render.timeline(c, state.events, state.events_compacted),
        )

    return _run(work, args)


def _list(args: argparse.Namespace) -> int:
    from starter import render

    async def work(service: Any) -> None:
        rows = await service.search(
            args.status, args.severity, args.line, args.customer, args.category, args.limit, outage_id=args.outage
        )
        _emit(args, [r.model_dump(mode="json") for r in rows], lambda c: render.table(c, rows))

    return _run(work, args)


def _action_commands(commands: Any, command: Callable[..., argparse.ArgumentParser]) -> None:
    """One subcommand per catalogue action (workflows/domain/actions.py): its words, help and options."""
    models = [model for model in CATALOGUE.values() if model.meta.role != "outage"]  # the major incident's own
    groups: dict[str, list[type[ActionModel]]] = {}
    for model in models:
        groups.setdefault(model.meta.cli[0], []).append(model)
    steps: dict[str, Any] = {}
    for model in models:
        first, *rest = model.meta.cli
        if not rest:
            sub = command(first, _act(model), model.summary())
        else:
            if first not in steps:
                words = ", ".join(m.meta.cli[1] for m in groups[first])
                steps[first] = command(first, lambda a: 0, f"{first}: {words}").add_subparsers(
                    dest="step", required=True
                )
            sub = steps[first].add_parser(rest[0], help=model.summary(), description=model.summary())
            sub.set_defaults(handler=_act(model))
        _ticket(sub)
        sub.add_argument("--as", dest="as_person", metavar="PERSON", default=argparse.SUPPRESS, help=_AS_HELP)
        for flags, options in _action_options(model):
            sub.add_argument(*flags, **options)


def _action_options(model: type[ActionModel]) -> list[tuple[list[str], dict[str, Any]]]:
    """argparse options from the action's fields: --agent (optional) names the actor, who must be the token's
    person; money is --amount and --currency."""
    found: list[tuple[list[str], dict[str, Any]]] = []
    defaults = model.meta.cli_defaults
    for name, field in model.model_fields.items():
        if name == "type":
            continue
        required = field.is_required() and name not in defaults
        kinds = _field_kinds(field)
        if name == ACTOR_LINE or name in model.meta.filled:
            continue  # the acting agent's authority: the API takes it from the token; the service fills the rest
        if name in ACTOR_FIELDS:
            found.append((["--agent"], {"dest": name, "metavar": "NAME", "help": _AGENT_HELP}))
        elif name == model.meta.own_line:
            found.append(([f"--{name}"], {"dest": name, "type": int, "help": "your line: the token's (optional)"}))
        elif _money_kind(field) is not None:
            found.append((["--amount"], {"required": required, "help": 'e.g. "1500.00"'}))
            found.append((["--currency"], {"required": required, "help": "ISO currency, e.g. RUB"}))
            if _money_kind(field) is Refund:
                found.append((["--charge"], {"help": _CHARGE_HELP}))
        else:
            options: dict[str, Any] = {"dest": name, "required": required, "help": field.description or name}
            if name in defaults:
                options["default"] = defaults[name]
            kind = kinds[0]
            if isinstance(kind, type) and issubclass(kind, Enum):
                options["choices"] = [member.value for member in kind]
            elif kind is int:
                options["type"] = int
            found.append(([f"--{name.replace('_', '-')}"], options))
    return found


def _field_kinds(field: FieldInfo) -> tuple[Any, ...]:
    """The types a field takes (the members of `X | None`, or the one type)."""
    return get_args(field.annotation) or (field.annotation,)


def _money_kind(field: FieldInfo) -> type[Money] | None:
    """Money or a refund (money and the charge it reverses) when the field takes one: --amount, --currency."""
    return next((kind for kind in _field_kinds(field) if isinstance(kind, type) and issubclass(kind, Money)), None)


def _action_payload(model: type[ActionModel], args: argparse.Namespace) -> dict[str, Any]:
    payload: dict[str, Any] = {"type": model.action_name()}
    for name, field in model.model_fields.items():
        if name == "type":
            continue
        if _money_kind(field) is not None:
            if args.amount is not None or args.currency is not None:
                payload[name] = {"amount": args.amount, "currency": args.currency}
                if getattr(args, "charge", None) is not None:
                    payload[name]["charge"] = args.charge
        elif getattr(args, name, None) is not None:
            payload[name] = getattr(args, name)
    return payload


def _act(model: type[ActionModel]) -> Callable[[argparse.Namespace], int]:
    """The action goes through the HTTP API with the acting agent's token: the API names the actor from the
    token, checks their authority, and refuses a body naming someone else (403, saying whose the token is)."""

    def command(args: argparse.Namespace) -> int:
        from starter.render import visible

        body = {name: value for name, value in _action_payload(model, args).items() if name != "type"}
        url, token = _credentials(args)

        async def work() -> None:
            from starter.http_client import IncidentsHttpClient

            async with IncidentsHttpClient(url, token) as api:
                acted = await api.send(args.ticket, model, body)
            if args.json:
                print(json.dumps(acted.answer))
            else:
                recorded = f"{args.ticket}: {model.action_name().replace('_', ' ')} recorded (event {acted.event_seq})"
                _console().print(visible(recorded), markup=False)

        return _through_api(work, args, model, url)

    return command


def _credentials(args: argparse.Namespace) -> tuple[str, str]:
    """The API's address and the acting agent's token: `--as PERSON` picks a dev agent's token from what
    `incidents dev` wrote beside its token file; else the file INCIDENTS_TOKEN_FILE names holds it."""
    from infra.config_files import ConfigFileError
    from starter.auth import dev_credential, dev_credentials_file

    settings = args.settings
    person = getattr(args, "as_person", None)
    try:
        if person is not None:
            token = dev_credential(dev_credentials_file(settings.config.tokens_file), person)
        elif settings.token_file is not None:
            token = _token_in(settings.token_file)
        else:
            _fail(
                "who acts? an action is sent as a named agent: `incidents --as PERSON ...` (the dev stack's agents: "
                "ann, boris, vera) or INCIDENTS_TOKEN_FILE naming a file that holds your agent token",
                EXIT_INVALID,
            )
    except ConfigFileError as error:
        _fail(str(error), EXIT_INVALID)
    if not settings.api_url:
        _fail("INCIDENTS_API_URL is not set: name the HTTP API the actions go to (e.g. http://127.0.0.1:8080)", 2)
    return str(settings.api_url), token


def _token_in(path: Path) -> str:
    from starter.auth import TokenConfigError

    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError as error:
        raise TokenConfigError(f"INCIDENTS_TOKEN_FILE: cannot read {path} ({error.strerror})") from None
    if not token or len(token.split()) != 1:
        raise TokenConfigError(f"INCIDENTS_TOKEN_FILE: {path} should hold one bearer token")
    return token


def _through_api(work: Callable[[], Any], args: argparse.Namespace, model: type[ActionModel], url: str) -> int:
    import httpx

    from starter import http_client as api

    async def main() -> None:
        try:
            await work()
        except api.Rejected as error:
            raise CliError(f"{args.ticket} refused {model.action_name()}: {error.detail}") from None
        except api.InvalidRequest as error:
            raise CliError(error.detail, EXIT_INVALID) from None
        except api.Unauthorized as error:
            raise CliError(f"the API at {url} refused the token ({error.detail})") from None
        except api.ApiError as error:  # 403 (says whose the token is), 404, 503, ...
            raise CliError(error.detail) from None
        except httpx.HTTPError as error:
            raise CliError(f"cannot reach the HTTP API at {url} ({error!r}); is `make run` running?") from None

    try:
        asyncio.run(main())
    except CliError as error:
        _fail(str(error), error.code)
    return 0


def _validated(build: Callable[[], Any]) -> Any:
    try:
        return build()
    except ValidationError as error:
        _fail(describe_validation_error(error), EXIT_INVALID)


# --- processes ---


def _dev(args: argparse.Namespace) -> int:
    from starter.dev_stack import run_dev_stack

    return run_dev_stack(args.settings)


def _worker(args: argparse.Namespace) -> int:
    from workers.main import main as worker_main

    worker_main(args.settings)
    return 0


def _api(args: argparse.Namespace) -> int:
    from starter.api import run

    run(args.host, args.port, args.settings)
    return 0


def _codec_server(args: argparse.Namespace) -> int:
    from starter.codec_server import run

    run(args.host, args.port, args.settings, args.ui_origin)
    return 0


def _sandbox(args: argparse.Namespace) -> int:
    import uvicorn

    from activities.signing import AcceptedSecrets
    from sandboxes import notifications, payments
    from workers.settings import worker_settings

    if args.which == "payments":
        app = payments.create_app(ledger_file=args.ledger_file)
    else:
        # The secrets a receiver accepts: the worker's current one (WEBHOOK_SECRET_FILE or WEBHOOK_SECRET) and,
        # during a rotation, the previous one (WEBHOOK_PREVIOUS_SECRET_FILE or WEBHOOK_PREVIOUS_SECRET).
        settings = args.settings
        previous = settings.webhook_previous_secret
        app = notifications.create_app(
            AcceptedSecrets(
                worker_settings(settings).signing_secret(),
                previous=previous.get_secret_value().encode() if previous is not None else None,
                previous_file=settings.webhook_previous_secret_file,
            )
        )
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", log_config=None)
    return 0


def _audit(args: argparse.Namespace) -> int:
    from starter.audit import main as audit_main

    return audit_main(args.rest, args.settings)


def _demo(args: argparse.Namespace) -> int:
    from starter.demo import DemoError, demo_policy, play

    async def work(service: Any) -> None:
        try:
            await play(service, _console(), args.speed, args.settings)
        except DemoError as error:
            raise CliError(str(error)) from None

    return _run(work, args, policy=demo_policy())


# --- the parser ---


def _limit(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 1000:
        raise argparse.ArgumentTypeError(f"expected a whole number from 1 to 1000, got {text!r}")
    return value


def _ticket(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("ticket", help="ticket number, e.g. INC-7F3K2Q")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="incidents",
        description="Customer incidents that never silently vanish.",
        epilog="Exit codes: 0 done; 1 no such incident, the incident or the API refused the action (the message says "
        "why: e.g. the token is another person's), or Temporal or the API unreachable; 2 invalid input (the message "
        "names the field). Actions go through the HTTP API as a named agent: --as PERSON picks a dev agent's token "
        "(`make run`), INCIDENTS_TOKEN_FILE names a file holding yours (INCIDENTS_API_URL the API, else the dev "
        "stack's). In this checkout the commands find the `make run` stack through temporal-dev.yml; "
        "TEMPORAL_ADDRESS or a temporal.toml profile names another Temporal.",
    )
    parser.add_argument("--as", dest="as_person", metavar="PERSON", help=_AS_HELP)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler: Callable[[argparse.Namespace], int], help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        sub.set_defaults(handler=handler)
        return sub

    dev = command("dev", _dev, "run the whole local stack in the foreground (what `make run` does)")
    dev.add_argument("--config", help="settings file (default: INCIDENTS_DEV_CONFIG or temporal-dev.yml)")
    command("worker", _worker, "run a worker on the incidents task queue")
    api = command("api", _api, "serve the HTTP API")
    api.add_argument("--host", default="127.0.0.1")
    api.add_argument("--port", type=int, default=8080)
    codec = command("codec-server", _codec_server, "serve the codec server that decrypts payloads for SREs")
    codec.add_argument("--host", default="127.0.0.1")
    codec.add_argument("--port", type=int, default=8083)
    codec.add_argument("--ui-origin", action="append", default=[], help="web UI origin allowed to call it")
    sandbox = command("sandbox", _sandbox, "serve a sandbox standing in for a third party")
    sandbox.add_argument("which", choices=["payments", "notify"])
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--port", type=int, required=True)
    sandbox.add_argument("--ledger-file", help="keep the payment ledger in this file across restarts")

    opening = command("open", _open, "open an incident; prints the ticket number")
    opening.add_argument("--customer", required=True, help="customer id")
    opening.add_argument("--category", required=True, help="e.g. connection_lost, tariff_change, ui_typo")
    opening.add_argument("--description", required=True)
    opening.add_argument("--channel", default="phone", help=f"one of {', '.join(c.value for c in Channel)}")
    opening.add_argument("--contact", help="the customer's e-mail or phone")
    opening.add_argument("--request-id", help="the caller's id for this request: repeating it opens nothing new")
    opening.add_argument("--refund", metavar="AMOUNT", help='money owed back, e.g. "1500.00"')
    opening.add_argument("--currency", help="ISO currency of the refund, e.g. RUB")
    opening.add_argument("--charge", help=_CHARGE_HELP)
    opening.add_argument("--new", action="store_true", help="a new incident even if one is open for this problem")
    opening.add_argument(
        "--language", help=f"the customer's: {', '.join(lang.value for lang in Language)} (default: the policy's)"
    )
    opening.add_argument(
        "--time-zone", help="the customer's IANA time zone, e.g. Europe/Moscow (default: the policy's)"
    )
    opening.add_argument("--region", help="where the customer is: region (a major incident there links it)")
    opening.add_argument("--city", help="where the customer is: city within the region")
    opening.add_argument("--segment", help="where the customer is: network segment within the city")
    opening.add_argument("--json", action="store_true", help="print the incident state as JSON")

    _ticket(command("show", _show, "the incident as the workflow sees it"))
    _ticket(command("history", _history, "the incident's domain event log as a timeline"))
    listing = command("list", _list, "find incidents (Temporal visibility)")
    listing.add_argument("--status", choices=[s.value for s in Status])
    listing.add_argument("--severity", choices=[s.value for s in Severity])
    listing.add_argument("--line", type=int, choices=[1, 2, 3])
    listing.add_argument("--customer")
    listing.add_argument("--category")
    listing.add_argument("--outage", metavar="OUT-...", help="linked to this major incident")
    listing.add_argument("--limit", type=_limit, default=50, help="at most this many (1-1000, default 50)")
    listing.add_argument("--json", action="store_true")

    _action_commands(commands, command)
    from starter.outage_cli import add_commands as add_outage_commands

    add_outage_commands(command)

    audit = command("audit", _audit, "list incident executions that vanished (ended unclosed or stalled)")
    audit.add_argument("rest", nargs=argparse.REMAINDER, help="--grace 5m | --schedule 15m | --json")
    demo = command("demo", _demo, "play the three stories of the seeds against a running stack")
    demo.add_argument("--speed", type=float, default=1.0, help=argparse.SUPPRESS)
    return parser


# Long-running processes log structured lines; the interactive commands stay quiet but for warnings.
_PROCESSES = frozenset({"dev", "worker", "api", "codec-server", "sandbox"})


def main(argv: Sequence[str] | None = None) -> None:
    from infra.exiting import exit_process
    from infra.logging_setup import configure_logging

    args = build_parser().parse_args(argv)
    try:
        args.settings = settings = _load_settings(args)
        configure_logging(settings.log_format, settings.log_level if args.command in _PROCESSES else "WARNING")
        code = args.handler(args)
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    except KeyboardInterrupt:
        code = 130
    exit_process(code)


if __name__ == "__main__":
    main()
