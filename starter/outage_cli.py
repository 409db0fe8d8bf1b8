"""`incidents outage ...`: declare and run major incidents (issue 18) from the command line.

Acting (declare, update, escalate, hand-over, resolve) goes through the HTTP API with the acting agent's
token (line 2 or above, or an operator's), like every action; reading (show, list, incidents) talks to
Temporal directly, like `incidents show`. Times are ISO 8601 with a time zone, or a duration from now
(`--fix-by 3h`). Exit codes as for every command: 1 refused or unreachable, 2 invalid input.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

EXIT_INVALID = 2
_AS_HELP = "act as this dev agent (boris, vera: line 2 and 3); elsewhere set INCIDENTS_TOKEN_FILE"


def add_commands(command: Callable[..., argparse.ArgumentParser]) -> None:
    outage = command(
        "outage", lambda a: 0, "major incidents: declare, update, escalate, hand-over, resolve, show, list"
    )
    steps = outage.add_subparsers(dest="step", required=True, metavar="STEP")

    def step(
        name: str, handler: Callable[[argparse.Namespace], int], help: str, acting: bool
    ) -> argparse.ArgumentParser:
        sub = steps.add_parser(name, help=help, description=help)
        sub.set_defaults(handler=handler)
        if acting:
            sub.add_argument("--as", dest="as_person", metavar="PERSON", default=argparse.SUPPRESS, help=_AS_HELP)
        sub.add_argument("--json", action="store_true", help="machine-readable output")
        return sub

    declare = step("declare", _declare, "declare a major incident (or --planned works): prints its id", True)
    declare.add_argument("--region", required=True, help="the area: region")
    declare.add_argument("--city", help="the area: city within the region")
    declare.add_argument("--segment", help="the area: network segment within the city")
    declare.add_argument("--category", action="append", default=[], help="a category it causes (repeat; none: all)")
    declare.add_argument("--summary", required=True, help="what every affected customer is told")
    declare.add_argument("--description", help="for the lines only")
    declare.add_argument("--owner", required=True, help="who owns it (line 2 or above)")
    declare.add_argument("--fix-by", required=True, help="expected fix time (planned works: their end): ISO or 3h")
    declare.add_argument("--started-at", help="when it began (default now); planned works: their start")
    declare.add_argument("--planned", action="store_true", help="planned works, announced ahead")
    declare.add_argument("--request-id", help="repeating it declares nothing new")

    update = step("update", _action("updates"), "post news for the linked customers, or a new fix time", True)
    _outage_id(update)
    update.add_argument("--news", help="what the linked customers are told")
    update.add_argument("--fix-by", help="a new expected fix time: ISO or a duration from now")
    escalate = step("escalate", _action("escalate"), "hand the major incident to the next line", True)
    _outage_id(escalate)
    escalate.add_argument("--reason", required=True)
    hand_over = step("hand-over", _action("hand-over"), "give it a new owner", True)
    _outage_id(hand_over)
    hand_over.add_argument("--owner", required=True)
    hand_over.add_argument("--owner-line", type=int, choices=[2, 3], default=2)
    resolve = step("resolve", _action("resolve"), "resolve it: every linked incident is resolved with it", True)
    _outage_id(resolve)
    resolve.add_argument("--resolution", required=True, help="what was done: every linked customer is told")

    _outage_id(step("show", _show, "the major incident as its workflow sees it", False))
    listing = step("list", _list, "the major incidents (Temporal visibility)", False)
    listing.add_argument("--running", action="store_true", help="only those still running")
    _outage_id(step("incidents", _incidents, "the incidents linked to it", False))


def _outage_id(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("outage_id", metavar="OUTAGE", help="the major incident, e.g. OUT-7F3K2Q")


def parse_time(text: str, field: str) -> datetime:
    """ISO 8601 with a time zone, or a duration from now (`3h`, `1d2h`)."""
    from workflows.domain.durations import parse_duration

    try:
        return datetime.now(UTC) + parse_duration(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{field}: {text!r} is neither a time (2026-12-02T18:00+03:00) nor a duration (3h)") from None
    if moment.tzinfo is None:
        raise ValueError(f"{field}: {text!r} has no time zone; add one (+03:00, Z)")
    return moment


def _fail(message: str, code: int) -> Any:
    from starter.cli import _fail as fail

    fail(message, code)


def _declare(args: argparse.Namespace) -> int:
    from workflows.domain.outage import DeclareOutage

    try:
        fields: dict[str, Any] = {
            "kind": "planned_works" if args.planned else "outage",
            "area": {"region": args.region, "city": args.city, "segment": args.segment},
            "categories": args.category,
            "summary": args.summary,
            "description": args.description,
            "owner": args.owner,
            "expected_fix_by": parse_time(args.fix_by, "--fix-by"),
            "started_at": parse_time(args.started_at, "--started-at") if args.started_at else None,
            "request_id": args.request_id,
        }
        request = DeclareOutage.model_validate(fields)
    except ValueError as error:
        _fail(_described(error), EXIT_INVALID)

    async def work(api: Any) -> None:
        state = await api.declare_outage(request)
        _print(args, state, f"declared {state.outage_id}")

    return _through_api(work, args)


def _action(path: str) -> Callable[[argparse.Namespace], int]:
    def command(args: argparse.Namespace) -> int:
        try:
            fix_by = parse_time(args.fix_by, "--fix-by") if getattr(args, "fix_by", None) else None
        except ValueError as error:
            _fail(str(error), EXIT_INVALID)
        if path == "updates" and args.news is None and fix_by is None:
            _fail("give --news, --fix-by, or both", EXIT_INVALID)

        async def work(api: Any) -> None:
            if path == "updates":
                state = await api.update_outage(args.outage_id, news=args.news, expected_fix_by=fix_by)
            elif path == "escalate":
                state = await api.escalate_outage(args.outage_id, args.reason)
            elif path == "hand-over":
                state = await api.hand_over_outage(args.outage_id, args.owner, args.owner_line)
            else:
                state = await api.resolve_outage(args.outage_id, args.resolution)
            _print(args, state, f"{state.outage_id}: {path.replace('-', ' ')} recorded (event {state.event_seq})")

        return _through_api(work, args)

    return command


def _through_api(work: Callable[[Any], Any], args: argparse.Namespace) -> int:
    from starter.cli import EXIT_REFUSED, CliError, _credentials
    from starter.cli import _fail as fail

    url, token = _credentials(args)

    async def main() -> None:
        import httpx

        from starter import http_client as api

        try:
            async with api.IncidentsHttpClient(url, token) as client:
                await work(client)
        except api.InvalidRequest as error:
            raise CliError(error.detail, EXIT_INVALID) from None
        except api.Unauthorized as error:
            raise CliError(f"the API at {url} refused the token ({error.detail})") from None
        except api.ApiError as error:  # 403 (who may), 404, 409 (the major incident's reason), 503, ...
            raise CliError(error.detail, EXIT_REFUSED) from None
        except httpx.HTTPError as error:
            raise CliError(f"cannot reach the HTTP API at {url} ({error!r}); is `make run` running?") from None

    import asyncio

    try:
        asyncio.run(main())
    except CliError as error:
        fail(str(error), error.code)
    return 0


def _reading(work: Callable[[Any, Any], Any], args: argparse.Namespace) -> int:
    from starter.cli import CliError, _run

    async def read(service: Any) -> None:
        from starter.outages import OutageNotFound, OutageService

        try:
            await work(OutageService(service.client, task_queue=service.task_queue), service)
        except OutageNotFound as error:
            raise CliError(str(error)) from None

    return _run(read, args)


def _show(args: argparse.Namespace) -> int:
    async def work(outages: Any, _: Any) -> None:
        _print(args, await outages.state(args.outage_id), None)

    return _reading(work, args)


def _list(args: argparse.Namespace) -> int:
    async def work(outages: Any, _: Any) -> None:
        rows = await outages.list(running_only=args.running)
        if args.json:
            print(json.dumps([r.model_dump(mode="json") for r in rows], indent=2))
            return
        from starter.cli import _console
        from starter.render import outage_table

        outage_table(_console(), rows)

    return _reading(work, args)


def _incidents(args: argparse.Namespace) -> int:
    async def work(outages: Any, service: Any) -> None:
        await outages.state(args.outage_id)  # no such major incident: say so
        rows = await service.search(outage_id=args.outage_id, limit=1000)
        if args.json:
            print(json.dumps([r.model_dump(mode="json") for r in rows], indent=2))
            return
        from starter.cli import _console
        from starter.render import table

        table(_console(), rows)

    return _reading(work, args)


def _print(args: argparse.Namespace, state: Any, done: str | None) -> None:
    if args.json:
        print(json.dumps(state.model_dump(mode="json"), indent=2))
        if done:
            print(done, file=sys.stderr)
        return
    from starter.cli import _console
    from starter.render import outage

    console = _console()
    if done:
        console.print(done, markup=False)
    outage(console, state)


def _described(error: ValueError) -> str:
    if isinstance(error, ValidationError):
        from infra.errors import describe_validation_error

        return describe_validation_error(error)
    return str(error)
