"""The escalation policy: data, not code.

Operators write it as YAML; its shape is a public contract. The policy in force
when an incident opens travels in the workflow's input, so it is recorded in
the incident's history and governs it to the end even if the file changes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, timedelta
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from infra.errors import describe_validation_error
from workflows.domain.calendars import AROUND_THE_CLOCK, Calendar, WorkingTime, resolve_public_holidays, working_time
from workflows.domain.durations import Duration, parse_duration
from workflows.domain.models import Amount, Category, Language, Line, Money, Severity, ShortText, TimeZone
from workflows.domain.sharing import Shared

POLICY_ENV = "INCIDENT_POLICY"
LAST_LINE = 3


class PolicyError(ValueError):
    """A policy file that cannot govern incidents; the message names the file and the field."""


PositiveDuration = Annotated[Duration, Field(description="e.g. 15m, 4h, 3d")]


MAX_REMINDER_RUNGS = 10


class Reminders(BaseModel):
    """How often work that waits on a person is brought back to the line that owns it.

    Each entry is a ladder: the wait before the first reminder, before the second, and so on; the
    last rung repeats until the work moves. A change in the work (a note, a new owner, a refund that
    fails again) starts its ladder from the bottom.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    owned: list[PositiveDuration] = Field(
        description="an acknowledged incident on the last line with no news from its owner"
    )
    refund: list[PositiveDuration] = Field(
        description="a refund awaiting approval or failed; a payment with no outcome past its give-up time"
    )
    compensation: list[PositiveDuration] = Field(description="a goodwill credit that could not be paid")

    @field_validator("owned", "refund", "compensation")
    @classmethod
    def _a_ladder(cls, value: list[timedelta]) -> list[timedelta]:
        if not value:
            raise ValueError("give at least one interval, e.g. [1h, 4h]")
        if len(value) > MAX_REMINDER_RUNGS:
            raise ValueError(f"at most {MAX_REMINDER_RUNGS} intervals (the last one repeats), got {len(value)}")
        for rung, interval in enumerate(value):
            if interval <= timedelta(0):
                raise ValueError(f"interval {rung + 1}: must be longer than 0s")
        return value

    def wait(self, ladder: Literal["owned", "refund", "compensation"], sent: int) -> timedelta:
        """The wait before the next reminder of `ladder` when `sent` have gone out already."""
        rungs: list[timedelta] = getattr(self, ladder)
        return rungs[min(sent, len(rungs) - 1)]


def _ladders(owned: str, refund: str, compensation: str) -> Reminders:
    return Reminders(
        owned=[parse_duration(d) for d in owned.split()],
        refund=[parse_duration(d) for d in refund.split()],
        compensation=[parse_duration(d) for d in compensation.split()],
    )


# For policy files written before reminders existed: critical work is chased hourly, convenience daily.
DEFAULT_REMINDERS = {
    Severity.critical: _ladders(owned="1h 2h", refund="1h 4h", compensation="4h 1d"),
    Severity.routine: _ladders(owned="4h 8h", refund="4h 1d", compensation="1d"),
    Severity.convenience: _ladders(owned="1d 3d", refund="1d", compensation="1d"),
}


MAX_SELF_HELP_STEPS = 10


class CustomerSilence(BaseModel):
    """How long an incident waits on the customer's answer to an agent's question (its SLA clocks paused).

    Counted on the incident's SLA clock, so a team calendar counts it too. The reminders are not repeated:
    chasing a silent customer more than this is pestering them (seed 000).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    remind_after: list[PositiveDuration] = Field(
        default_factory=lambda: [timedelta(days=2)],
        description="the wait before each reminder to the customer: the first from the question, the next from "
        "the reminder before; [] sends none",
    )
    close_after: PositiveDuration = Field(
        default=timedelta(days=7),
        description="from the question: the incident closes, and tells the customer that a reply reopens it "
        "(within recontact_reopens_within)",
    )

    @field_validator("remind_after")
    @classmethod
    def _a_ladder(cls, value: list[timedelta]) -> list[timedelta]:
        if len(value) > MAX_REMINDER_RUNGS:
            raise ValueError(f"at most {MAX_REMINDER_RUNGS} reminders, got {len(value)}")
        for rung, interval in enumerate(value):
            if interval <= timedelta(0):
                raise ValueError(f"reminder {rung + 1}: must be longer than 0s")
        return value

    @field_validator("close_after")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be longer than 0s")
        return value


class SeverityPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    acknowledge_within: PositiveDuration | None = None
    # Each higher line's own first-response clock, from when the incident reaches it (escalated or reopened there).
    line_acknowledge_within: dict[Line, PositiveDuration] = Field(
        default_factory=dict, description="e.g. {2: 30m}: how long line 2 has to take an incident that reaches it"
    )
    line_timeouts: dict[Line, PositiveDuration]
    renotify_every: PositiveDuration
    customer_updates_every: PositiveDuration | None = None
    callback_after: PositiveDuration | None = None
    feedback_window: PositiveDuration | None = None
    compensation: Money | None = None
    compensate_again_after_reopen: bool = Field(
        default=False,
        description="credit the customer again when a reopened incident also misses its new fix time",
    )
    reminders: Reminders | None = Field(default=None, description="omitted: the defaults of the severity")
    calendar: str = Field(
        default=AROUND_THE_CLOCK,
        description="the working time its SLA clocks count: a name under `calendars`, or 24/7 (wall time)",
    )

    @field_validator(
        "acknowledge_within", "renotify_every", "customer_updates_every", "callback_after", "feedback_window"
    )
    @classmethod
    def _positive(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value <= timedelta(0):
            raise ValueError("must be longer than 0s")
        return value

    @field_validator("line_acknowledge_within")
    @classmethod
    def _higher_lines(cls, value: dict[int, timedelta]) -> dict[int, timedelta]:
        for line, within in value.items():
            if line < 2:
                raise ValueError(f"line {line}: line 1's first response is acknowledge_within; give lines 2 and 3 here")
            if within <= timedelta(0):
                raise ValueError(f"line {line}: must be longer than 0s")
        return value

    @field_validator("line_timeouts")
    @classmethod
    def _every_line_but_the_last(cls, value: dict[int, timedelta]) -> dict[int, timedelta]:
        expected = set(range(1, LAST_LINE))
        if set(value) != expected:
            raise ValueError(
                f"give a timeout for lines {sorted(expected)} exactly (line {LAST_LINE} is the last and "
                f"has none), got lines {sorted(value)}"
            )
        for line, timeout in value.items():
            if timeout <= timedelta(0):
                raise ValueError(f"line {line}: must be longer than 0s")
        return value

    @model_validator(mode="after")
    def _callback_needs_window(self) -> SeverityPolicy:
        if self.callback_after is not None and self.feedback_window is None:
            raise ValueError("callback_after needs feedback_window: how long to wait for the customer's answer")
        if self.compensate_again_after_reopen and self.compensation is None:
            raise ValueError("compensate_again_after_reopen needs compensation: the credit to grant again")
        return self


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "unnamed"
    categories: dict[Category, Severity]
    default_severity: Severity = Severity.routine
    severities: dict[Severity, SeverityPolicy]
    refund_approval_limits: dict[Line, Amount] = Field(default_factory=dict)
    # A refund above this needs two approvals by different agents (four eyes); None: one is enough.
    refund_four_eyes_above: Amount | None = None
    refund_give_up_after: PositiveDuration = timedelta(days=3)
    # A customer back about a resolved incident (or one closed for lack of a reply) within this window reopens it;
    # later, a new incident follows it.
    recontact_reopens_within: PositiveDuration = timedelta(days=3)
    # For an open request that does not say (the seeds' customers are in Russia).
    default_customer_language: Language = Language.ru
    default_customer_time_zone: TimeZone = "Europe/Moscow"
    # Named working-time calendars the severities count their SLA clocks in (workflows/domain/calendars.py).
    calendars: dict[str, Calendar] = Field(default_factory=dict, validate_default=True)

    @field_validator("calendars")
    @classmethod
    def _calendar_names(cls, value: dict[str, Calendar], info: ValidationInfo) -> dict[str, Calendar]:
        for name in value:
            if name == AROUND_THE_CLOCK or not name.strip():
                raise ValueError(f"{name!r} cannot name a calendar ({AROUND_THE_CLOCK} is built in: wall time)")
        # Checked here, where the severities (declared earlier) are known, so the message names a field.
        severities: dict[Severity, SeverityPolicy] = info.data.get("severities", {})
        for severity, rules in severities.items():
            if rules.calendar != AROUND_THE_CLOCK and rules.calendar not in value:
                known = ", ".join([AROUND_THE_CLOCK, *sorted(value)])
                raise ValueError(
                    f"severities.{severity.value}.calendar names no calendar here: {rules.calendar!r} (known: {known})"
                )
        return value

    # An agent's question to the customer: reminders, then the close (a reply within recontact_reopens_within reopens).
    customer_silence: CustomerSilence = Field(default_factory=CustomerSilence)
    # Seed 004, level 1: steps the customer can try at once, sent with the ticket number, by category: one
    # list for every language, or a list per language (the customer's, else the default language's).
    self_help: dict[Category, list[ShortText] | dict[Language, list[ShortText]]] = Field(default_factory=dict)

    @field_validator("self_help")
    @classmethod
    def _steps(
        cls, value: dict[str, list[str] | dict[Language, list[str]]]
    ) -> dict[str, list[str] | dict[Language, list[str]]]:
        for category, entry in value.items():
            by_language = entry.items() if isinstance(entry, dict) else [(None, entry)]
            for language, steps in by_language:
                where = category if language is None else f"{category}.{language}"
                if not steps:
                    raise ValueError(f"{where}: give at least one step, or leave the category out")
                if len(steps) > MAX_SELF_HELP_STEPS:
                    raise ValueError(f"{where}: at most {MAX_SELF_HELP_STEPS} steps, got {len(steps)}")
        return value

    @field_validator("severities")
    @classmethod
    def _every_severity(cls, value: dict[Severity, SeverityPolicy]) -> dict[Severity, SeverityPolicy]:
        missing = [s.value for s in Severity if s not in value]
        if missing:
            raise ValueError(f"missing rules for {', '.join(missing)}")
        return value

    def for_severity(self, severity: Severity) -> SeverityPolicy:
        return self.severities[severity]

    def working_time(self, severity: Severity) -> WorkingTime:
        """The working time the severity's SLA clocks count (shared: built once per calendar in a process)."""
        name = self.severities[severity].calendar
        return working_time(None if name == AROUND_THE_CLOCK else self.calendars[name])

    def with_calendars(self, calendars: Mapping[str, Calendar]) -> Policy:
        """This policy with some calendars' data replaced (a newer holiday list); the rules stay as they were."""
        return self.model_copy(update={"calendars": {**self.calendars, **calendars}})

    def self_help_for(self, category: str, language: str | None = None) -> list[str]:
        """The steps for `category` in `language` (else the default language, else any language given)."""
        entry = self.self_help.get(category, [])
        if not isinstance(entry, dict):
            return entry
        for wanted in (language, str(self.default_customer_language)):
            for given, steps in entry.items():
                if str(given) == wanted:
                    return steps
        return next(iter(entry.values()), [])

    def reminders_for(self, severity: Severity) -> Reminders:
        return self.severities[severity].reminders or DEFAULT_REMINDERS[severity]

    def approver_line(self, amount: Decimal) -> int:
        """The lowest line above the first that may approve `amount` (the line a refund task belongs to)."""
        return next((line for line in range(2, LAST_LINE + 1) if self.may_approve(line, amount)), LAST_LINE)

    def approval_limit(self, line: int) -> Decimal | None:
        """The largest refund `line` may approve; None means unlimited."""
        return self.refund_approval_limits.get(line)

    def needs_four_eyes(self, amount: Decimal) -> bool:
        return self.refund_four_eyes_above is not None and amount > self.refund_four_eyes_above

    def may_approve(self, line: int, amount: Decimal) -> bool:
        limit = self.approval_limit(line)
        return limit is None or amount <= limit


def parse_policy(data: Any, source: str = "policy", today: date | None = None) -> Policy:
    """The policy in `data`, its calendars' public holidays written in as dates for the years around
    `today` (the loading day by default): what incidents opened under it carry and replay by."""
    if not isinstance(data, dict):
        raise PolicyError(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        policy = Policy.model_validate(data)
    except ValidationError as error:
        raise PolicyError(f"{source}: {describe_validation_error(error)}") from None
    return resolve_calendars(policy, today or date.today(), source)


def resolve_calendars(policy: Policy, today: date, source: str = "policy") -> Policy:
    """`policy` with each calendar's public holidays (python-holidays) written in for the years around `today`."""
    resolved: dict[str, Calendar] = {}
    for name, calendar in policy.calendars.items():
        try:
            resolved[name] = resolve_public_holidays(calendar, today)
        except ValueError as error:
            raise PolicyError(f"{source}: calendars.{name}.{error}") from None
    return policy.with_calendars(resolved) if resolved != policy.calendars else policy


def load_policy_file(path: str | Path, today: date | None = None) -> Policy:
    # The shared loader reads the file (its errors name it); imported here so the workflow's sandbox,
    # which imports this module on every run, never loads it.
    from infra.config_files import read_yaml

    return parse_policy(read_yaml(path, what="the policy file", error=PolicyError), str(path), today)


def default_policy(today: date | None = None) -> Policy:
    text = resources.files("workflows.domain").joinpath("default_policy.yml").read_text(encoding="utf-8")
    return parse_policy(yaml.safe_load(text), "default_policy.yml", today)


def policy_from(path: str | Path | None, today: date | None = None) -> Policy:
    """The policy in the file the settings name (INCIDENT_POLICY), else the shipped default."""
    return load_policy_file(path, today) if path else default_policy(today)


def load_policy(environ: Mapping[str, str] | None = None) -> Policy:
    """The policy `environ` names under INCIDENT_POLICY, else the shipped default. The domain reads no
    environment: a process's settings carry the path (infra/settings.py) and call policy_from."""
    return policy_from((environ or {}).get(POLICY_ENV))


_SHARED: Shared[str, Policy] = Shared()


def shared(policy: Policy) -> Policy:
    """One Policy object per distinct policy in a worker: thousands of open incidents carry the same one.

    Policies are frozen, so sharing them is invisible to the incidents; the memo only saves memory
    (about 9 KB per cached incident) and cannot change what any incident does.
    """
    if _SHARED.holds(policy):
        return policy  # shared already (shared_from_json): spares the key's serialising
    return _SHARED.get(policy.model_dump_json(), lambda: policy)


_PARSED: Shared[bytes, Policy] = Shared()


def shared_from_json(data: bytes, parse: Callable[[bytes], Policy]) -> Policy:
    """`shared(parse(data))`, each distinct JSON parsed once per worker.

    Every run of an incident named by reference parses its resolved policy (~4 KB of JSON, every
    duration and calendar validated) and serialises it again for `shared`'s key: a tenth of the CPU
    a woken, evicted incident's replay costs (bench/replay_probe.py). Parsing is a pure function of
    the bytes (no context, no clock), and policies are frozen, so the same bytes may stand for the
    same object.
    """
    return _PARSED.get(data, lambda: shared(parse(data)))
