"""The major incident: one failure many customers feel (seed 002), or planned works (seed 004, level 4).

Pure rules, like incident.py: the workflow (workflows/outage_workflow.py) feeds
it the declaration, agents' actions, expired deadlines and the outcomes of its
fan-outs, each with the workflow's `now`, and carries out the effects it returns.

- **Declared** by line 2 or an operator: area, categories, a public summary,
  when it began and when it is expected fixed, its owner. It posts its notice
  on the outage board (the intake links new incidents in its area at once) and
  links the incidents already open there (a fan-out: Temporal's batch
  operation, never a loop here).
- **Its own ladder**: the owner posts a status update at least every
  `update_every` (else the owner's line is reminded); unresolved
  `escalate_after` after the declaration it goes to line 3; past its expected
  fix time the owning line is paged, then again every `renotify_every` until a
  new time or the fix. The linked incidents page nobody meanwhile.
- **Updates** reach every linked customer (a fan-out of `outage_update`).
- **Resolved together**: a fan-out of `outage_resolved` carries the resolution
  and the credit per severity for the outage's duration (`OutagePolicy`); a
  second sweep a little later reaches incidents linked while the first ran
  (once the first job's incidents have acted on it, so it signals none twice).
- **Planned works** are declared ahead with their window: the customers with
  recent incidents in the area are told `notify_before` the start (a day, an
  hour), at the start and at the end; incidents opened in the window for the
  area link to it; the end resolves it (a credit only for an overrun).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from importlib import resources
from typing import Annotated, Any, Literal

import yaml
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_extra_types.currency_code import ISO4217

from infra.errors import describe_validation_error
from workflows.domain.actions import OutageResolved, OutageUpdate
from workflows.domain.areas import Area
from workflows.domain.durations import Duration, format_duration
from workflows.domain.messages import Message, fmt_money, fmt_time, render
from workflows.domain.models import (
    MAX_SHORT_TEXT,
    AgentName,
    Amount,
    Contract,
    Identifier,
    Line,
    Money,
    Severity,
    ShortText,
    Text,
)
from workflows.domain.notice import Categories, NoticeStatus, OutageKind, OutageNotice
from workflows.domain.policy import LAST_LINE, PolicyError

OUTAGE_WORKFLOW_TYPE = "MajorIncident"
OUTAGE_BOARD_WORKFLOW_TYPE = "OutageBoard"
OUTAGE_BOARD_ID = "outage-board"


def outage_board_id(task_queue: str) -> str:
    """One board per task queue: `outage-board` on the incidents' own queue; tests on a shared server keep apart."""
    return OUTAGE_BOARD_ID if task_queue == "incidents" else f"{OUTAGE_BOARD_ID}:{task_queue}"


# The least a line may declare from: line 1 hands a suspected outage to line 2, it does not declare one.
DECLARING_LINE = 2


# --- policy ---


class OutageCredit(BaseModel):
    """A goodwill credit for an outage's duration: so much per started hour past the free first stretch."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    per_hour: Amount
    currency: ISO4217
    free_first: Duration = timedelta(0)
    cap: Amount | None = None


class OutagePolicy(BaseModel):
    """How major incidents are run; data like the escalation policy, travelling in the workflow's input."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "default"
    update_every: Duration = Field(description="the owner posts a status update at least this often")
    escalate_after: Duration = Field(description="unresolved this long after the declaration: line 3 takes it")
    renotify_every: Duration = Field(description="past its expected fix time, the owning line is paged this often")
    check_grace: Duration = Field(
        description="linked incidents wait this long past the expected fix time without news, then take their "
        "own clock back"
    )
    sweep_after: Duration = Field(
        description="a second fan-out this long after the first reaches incidents linked while the first ran"
    )
    compensation: dict[Severity, OutageCredit] = Field(default_factory=dict)
    notify_before: list[Duration] = Field(default_factory=list, description="planned works: told this long ahead")
    recent_within: Duration = Field(description="planned works: customers with incidents this recent are told")

    @model_validator(mode="after")
    def _positive(self) -> OutagePolicy:
        for name in ("update_every", "escalate_after", "renotify_every", "check_grace", "sweep_after"):
            if getattr(self, name) <= timedelta(0):
                raise ValueError(f"{name}: must be longer than 0s")
        return self

    def credit_for(self, severity: Severity, duration: timedelta) -> Money | None:
        rule = self.compensation.get(severity)
        if rule is None or duration <= rule.free_first:
            return None
        hours = math.ceil((duration - rule.free_first) / timedelta(hours=1))
        amount = rule.per_hour * hours
        if rule.cap is not None:
            amount = min(amount, rule.cap)
        return Money(amount=amount.quantize(Decimal("0.01")), currency=rule.currency)


def parse_outage_policy(data: Any, source: str = "outage policy") -> OutagePolicy:
    if not isinstance(data, dict):
        raise PolicyError(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return OutagePolicy.model_validate(data)
    except ValidationError as error:
        raise PolicyError(f"{source}: {describe_validation_error(error)}") from None


def default_outage_policy() -> OutagePolicy:
    text = resources.files("workflows.domain").joinpath("outage_policy.yml").read_text(encoding="utf-8")
    return parse_outage_policy(yaml.safe_load(text), "outage_policy.yml")


# --- what operators send ---


class DeclareOutage(Contract):
    """What line 2 or an operator sends to declare a major incident (or planned works)."""

    kind: OutageKind = OutageKind.outage
    area: Area
    categories: Categories = Field(default=(), description="the problems it causes; empty: every category")
    summary: Annotated[str, Field(min_length=1, max_length=MAX_SHORT_TEXT)] = Field(
        description="what every affected customer is told, e.g. 'A cable was cut in Khimki.'"
    )
    description: Text | None = Field(default=None, description="for the lines only")
    owner: AgentName = Field(description="who owns it (line 2 or above)")
    started_at: AwareDatetime | None = Field(
        default=None, description="when the failure began (default: now); planned works: when they start"
    )
    expected_fix_by: AwareDatetime = Field(description="when it is expected fixed; planned works: when they end")
    declared_by: AgentName | None = Field(default=None, description="who declares it (the API: the token's person)")
    request_id: Identifier | None = Field(default=None, description="repeating it declares nothing new")

    @model_validator(mode="after")
    def _window(self) -> DeclareOutage:
        if self.started_at is not None and self.expected_fix_by <= self.started_at:
            raise ValueError("expected_fix_by: must be later than started_at")
        if self.kind is OutageKind.planned_works and self.started_at is None:
            raise ValueError("started_at: planned works need the start of their window")
        return self


class PostUpdate(Contract):
    """The owner's status update: news for the customers, a new expected fix time, or both."""

    type: Literal["update"] = "update"
    by: AgentName
    news: ShortText | None = Field(default=None, description="what the linked customers are told")
    expected_fix_by: AwareDatetime | None = Field(default=None, description="a new expected fix time")

    @model_validator(mode="after")
    def _something(self) -> PostUpdate:
        if self.news is None and self.expected_fix_by is None:
            raise ValueError("news: give news, a new expected_fix_by, or both")
        return self


class EscalateOutage(Contract):
    type: Literal["escalate"] = "escalate"
    by: AgentName
    reason: ShortText


class ResolveOutage(Contract):
    type: Literal["resolve"] = "resolve"
    by: AgentName
    resolution: Text = Field(description="what was done: every linked customer is told")


class HandOver(Contract):
    type: Literal["hand_over"] = "hand_over"
    by: AgentName
    owner: AgentName
    owner_line: Line = DECLARING_LINE


OutageAction = PostUpdate | EscalateOutage | ResolveOutage | HandOver
MAJOR_INCIDENT_ACTIONS: dict[str, type[OutageAction]] = {
    "update": PostUpdate,
    "escalate": EscalateOutage,
    "resolve": ResolveOutage,
    "hand_over": HandOver,
}


# --- state ---


class OutageEventType(StrEnum):
    declared = "declared"
    window_started = "window_started"
    update_posted = "update_posted"
    update_due = "update_due"
    escalated = "escalated"
    fix_overdue = "fix_overdue"
    handed_over = "handed_over"
    resolved = "resolved"
    fan_out_started = "fan_out_started"
    fan_out_done = "fan_out_done"
    fan_out_failed = "fan_out_failed"
    area_told = "area_told"
    area_tell_failed = "area_tell_failed"
    line_notified = "line_notified"
    action_rejected = "action_rejected"


class OutageEvent(BaseModel):
    seq: int
    type: OutageEventType
    at: datetime
    by: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)


class OutageClock(StrEnum):
    ahead = "ahead"  # planned works: the next notice ahead of the window
    start = "start"  # planned works: the window opens
    end = "end"  # planned works: the window closes
    update_due = "update_due"
    escalate = "escalate"
    fix_overdue = "fix_overdue"
    sweep = "sweep"  # the second fan-out (links after declaring, resolutions after resolving)


class FanOutRecord(BaseModel):
    job_id: str
    operation: Literal["link", "update", "resolve"]
    status: Literal["running", "done", "failed"] = "running"
    reached: int | None = None
    failures: int | None = None
    reason: str | None = None


class OutageState(BaseModel):
    outage_id: str
    kind: OutageKind
    status: NoticeStatus
    area: Area
    categories: tuple[str, ...]
    summary: str
    description: str | None = None
    owner: str
    line: int
    declared_by: str
    declared_at: datetime
    started_at: datetime
    expected_fix_by: datetime
    planned_end: datetime | None = Field(default=None, description="planned works: the end as first announced")
    last_update_at: datetime
    updates: int = 0
    news: str | None = None
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    resolution: str | None = None
    compensation: dict[Severity, Money] = Field(default_factory=dict)
    deadlines: dict[OutageClock, datetime] = Field(default_factory=dict)
    # Planned works: the notices ahead still to send, as offsets before the start.
    ahead_pending: list[Duration] = Field(default_factory=list)
    told: list[str] = Field(default_factory=list, description="planned-works notices sent: ahead-1d, started, ...")
    fan_outs: list[FanOutRecord] = Field(default_factory=list)
    events: list[OutageEvent] = Field(default_factory=list)
    event_seq: int = 0
    policy_name: str

    @property
    def open(self) -> bool:
        return self.status is not NoticeStatus.resolved


# --- effects ---


@dataclass(frozen=True)
class PageLine:
    line: int
    kind: str
    message: str
    event_seq: int


@dataclass(frozen=True)
class PostNotice:
    notice: OutageNotice


@dataclass(frozen=True)
class FanOut:
    """Send one action to every incident the operation selects, by Temporal's batch operation."""

    job_id: str
    operation: Literal["link", "update", "resolve"]
    signal: str
    payload: dict[str, Any]
    # A sweep names the job it sweeps after: it starts once that job is done and the incidents it signalled
    # have acted on it, so that it reaches only those the job missed (not its backlog a second time).
    follows: str | None = None


@dataclass(frozen=True)
class TellArea:
    """Planned works: tell the customers with recent incidents in the area (each once per notice)."""

    notice_id: str
    kind: str
    message: str  # in English with UTC times: what a customer whose language is unknown reads
    recent_since: datetime
    # Each customer reads `template` in their own language and time zone (messages.render_for_customer),
    # filled from `fields`; the activity renders it, since only there is each customer's incident known.
    template: Message | None = None
    fields: dict[str, str | datetime] = field(default_factory=dict)


OutageEffect = PageLine | PostNotice | FanOut | TellArea


@dataclass
class OutageOutcome:
    accepted: bool
    event_seq: int
    reason: str | None = None
    effects: list[OutageEffect] = field(default_factory=list)


class OutageRejected(Exception):
    pass


def _recipient_line(line: int) -> int:
    return max(DECLARING_LINE, min(line, LAST_LINE))


# --- the machine ---


class Outage:
    def __init__(self, state: OutageState, policy: OutagePolicy) -> None:
        self.state = state
        self.policy = policy
        self._effects: list[OutageEffect] = []

    # --- declaring ---

    @classmethod
    def declare(
        cls, outage_id: str, request: DeclareOutage, policy: OutagePolicy, now: datetime, owner_line: int
    ) -> tuple[Outage, list[OutageEffect]]:
        planned = request.kind is OutageKind.planned_works
        started = request.started_at or now
        if not planned:
            started = min(started, now)  # a failure felt now began no later than now
        state = OutageState(
            outage_id=outage_id,
            kind=request.kind,
            status=NoticeStatus.announced if planned and started > now else NoticeStatus.active,
            area=request.area,
            categories=request.categories,
            summary=request.summary,
            description=request.description,
            owner=request.owner,
            line=_recipient_line(owner_line),
            declared_by=request.declared_by or request.owner,
            declared_at=now,
            started_at=started,
            expected_fix_by=max(request.expected_fix_by, now) if not planned else request.expected_fix_by,
            planned_end=request.expected_fix_by if planned else None,
            last_update_at=now,
            policy_name=policy.name,
        )
        outage = cls(state, policy)
        outage._record(
            OutageEventType.declared,
            now,
            by=state.declared_by,
            kind=state.kind.value,
            area=state.area.path,
            categories=list(state.categories),
            owner=state.owner,
            line=state.line,
            started_at=state.started_at.isoformat(),
            expected_fix_by=state.expected_fix_by.isoformat(),
        )
        outage._page(state.line, "outage_declared", outage._declared_text(), now)
        outage._post()
        if planned:
            state.ahead_pending = sorted(
                (ahead for ahead in policy.notify_before if started - ahead > now), reverse=True
            )
            state.deadlines[OutageClock.end] = state.expected_fix_by
            if state.status is NoticeStatus.announced:
                state.deadlines[OutageClock.start] = started
                outage._next_ahead()
            else:
                state.ahead_pending = []
                outage._window_starts(now)
        else:
            outage._start_ladder(now)
            outage._fan_out("link", now)
            state.deadlines[OutageClock.sweep] = now + policy.sweep_after
        return outage, outage.take_effects()

    # --- reading ---

    def notice(self) -> OutageNotice:
        state = self.state
        return OutageNotice(
            outage_id=state.outage_id,
            kind=state.kind,
            status=state.status,
            area=state.area,
            categories=state.categories,
            summary=state.summary,
            started_at=state.started_at,
            expected_fix_by=state.expected_fix_by,
            check_by=state.expected_fix_by + self.policy.check_grace,
            revision=state.event_seq,
        )

    def next_deadline(self) -> tuple[OutageClock, datetime] | None:
        if not self.state.deadlines:
            return None
        clock = min(self.state.deadlines, key=lambda c: (self.state.deadlines[c], list(OutageClock).index(c)))
        return clock, self.state.deadlines[clock]

    @property
    def finished(self) -> bool:
        """Resolved, its fan-outs over and its sweep done: nothing more to do."""
        state = self.state
        return not state.open and not state.deadlines and all(f.status != "running" for f in state.fan_outs)

    def take_effects(self) -> list[OutageEffect]:
        effects, self._effects = self._effects, []
        return effects

    # --- actions ---

    def act(self, action: OutageAction, now: datetime) -> OutageOutcome:
        try:
            if isinstance(action, PostUpdate):
                seq = self._update(action, now)
            elif isinstance(action, EscalateOutage):
                seq = self._escalate(now, by=action.by, reason=action.reason)
            elif isinstance(action, ResolveOutage):
                seq = self._resolve(action.by, action.resolution, now)
            else:
                seq = self._hand_over(action, now)
        except OutageRejected as rejection:
            return self.reject(action.type, getattr(action, "by", None), str(rejection), now)
        return OutageOutcome(accepted=True, event_seq=seq, effects=self.take_effects())

    def reject(self, action_type: str, by: str | None, reason: str, now: datetime) -> OutageOutcome:
        self.take_effects()
        event = self._record(OutageEventType.action_rejected, now, by=by, action=action_type, reason=reason[:300])
        return OutageOutcome(accepted=False, event_seq=event.seq, reason=reason[:300])

    def _require_open(self, verb: str) -> None:
        if not self.state.open:
            raise OutageRejected(f"cannot {verb}: {self.state.outage_id} is resolved")

    def _update(self, action: PostUpdate, now: datetime) -> int:
        self._require_open("post an update")
        state = self.state
        data: dict[str, Any] = {}
        if action.expected_fix_by is not None:
            if action.expected_fix_by <= now:
                raise OutageRejected("expected_fix_by: must be in the future (resolve it if it is fixed)")
            data["expected_fix_by"] = action.expected_fix_by.isoformat()
            data["previous_fix_by"] = state.expected_fix_by.isoformat()
            state.expected_fix_by = action.expected_fix_by
            if state.kind is OutageKind.planned_works:
                state.deadlines[OutageClock.end] = state.expected_fix_by
            elif state.status is NoticeStatus.active:
                state.deadlines[OutageClock.fix_overdue] = state.expected_fix_by
        if action.news is not None:
            state.news = action.news
            data["news"] = action.news
        state.updates += 1
        state.last_update_at = now
        event = self._record(OutageEventType.update_posted, now, by=action.by, **data)
        if state.status is NoticeStatus.active and state.kind is OutageKind.outage:
            state.deadlines[OutageClock.update_due] = now + self.policy.update_every
        self._post()
        if state.status is NoticeStatus.active:
            self._fan_out("update", now, news=action.news)
        return event.seq

    def _escalate(self, now: datetime, by: str | None, reason: str) -> int:
        self._require_open("escalate")
        state = self.state
        if state.line >= LAST_LINE:
            raise OutageRejected(f"already on line {LAST_LINE}, the last line")
        state.line += 1
        state.deadlines.pop(OutageClock.escalate, None)
        event = self._record(OutageEventType.escalated, now, by=by, line=state.line, reason=reason)
        self._page(
            state.line,
            "outage_escalated",
            self._text(Message.OUTAGE_ESCALATED, line=state.line, reason=reason, owner=state.owner),
            now,
        )
        return event.seq

    def _hand_over(self, action: HandOver, now: datetime) -> int:
        self._require_open("hand over")
        state = self.state
        if action.owner == state.owner:
            raise OutageRejected(f"already owned by {action.owner}")
        previous, state.owner = state.owner, action.owner
        state.line = max(state.line, _recipient_line(action.owner_line))
        event = self._record(OutageEventType.handed_over, now, by=action.by, owner=action.owner, previous=previous)
        return event.seq

    def _resolve(self, by: str, resolution: str, now: datetime, ended_at: datetime | None = None) -> int:
        """`ended_at`: when the failure ended, if not `now` (planned works end on their clock, a timer fires late)."""
        self._require_open("resolve")
        state = self.state
        state.status = NoticeStatus.resolved
        state.resolved_at = now
        state.resolved_by = by
        state.resolution = resolution
        state.deadlines.clear()
        state.ahead_pending = []
        state.compensation = self._credits(ended_at or now)
        event = self._record(
            OutageEventType.resolved,
            now,
            by=by,
            resolution=resolution,
            duration=format_duration(now - state.started_at) if now > state.started_at else "0s",
            compensation={s.value: fmt_money(m) for s, m in state.compensation.items()},
        )
        self._post()
        if state.started_at <= now:
            self._fan_out("resolve", now)
            state.deadlines[OutageClock.sweep] = now + self.policy.sweep_after
        if state.kind is OutageKind.planned_works and "started" in state.told:
            self._tell_area("finished", Message.PLANNED_WORKS_FINISHED, now)
        return event.seq

    def _credits(self, now: datetime) -> dict[Severity, Money]:
        state = self.state
        if state.kind is OutageKind.planned_works:
            # Announced works are no blunder: only their overrun past the announced end earns a credit.
            assert state.planned_end is not None
            duration = now - state.planned_end
        else:
            duration = now - state.started_at
        credits = {}
        for severity in Severity:
            money = self.policy.credit_for(severity, duration)
            if money is not None:
                credits[severity] = money
        return credits

    # --- time ---

    def advance(self, now: datetime) -> list[OutageEffect]:
        for _ in range(20):
            due = self.next_deadline()
            if due is None or due[1] > now:
                break
            clock, at = due
            del self.state.deadlines[clock]
            self._fire(clock, at, now)
        return self.take_effects()

    def _fire(self, clock: OutageClock, at: datetime, now: datetime) -> None:
        state, policy = self.state, self.policy
        if clock is OutageClock.ahead:
            ahead = state.ahead_pending.pop(0)
            self._tell_area(
                f"ahead-{format_duration(ahead)}",
                Message.PLANNED_WORKS_AHEAD,
                now,
                start=state.started_at,
                end=state.expected_fix_by,
            )
            self._next_ahead()
        elif clock is OutageClock.start:
            state.ahead_pending = []
            state.deadlines.pop(OutageClock.ahead, None)
            self._window_starts(now)
        elif clock is OutageClock.end:
            self._resolve(state.owner, "The planned works are finished.", now, ended_at=at)
        elif clock is OutageClock.update_due:
            self._record(OutageEventType.update_due, now, since=state.last_update_at.isoformat())
            text = self._text(Message.OUTAGE_UPDATE_DUE, owner=state.owner, since=fmt_time(state.last_update_at))
            self._page(state.line, "outage_update_due", text, now)
            state.deadlines[OutageClock.update_due] = now + policy.update_every
        elif clock is OutageClock.escalate:
            self._escalate(now, by=None, reason=f"unresolved {format_duration(policy.escalate_after)} after declared")
        elif clock is OutageClock.fix_overdue:
            self._record(OutageEventType.fix_overdue, now, expected_fix_by=state.expected_fix_by.isoformat())
            text = self._text(Message.OUTAGE_FIX_OVERDUE)
            self._page(state.line, "outage_fix_overdue", text, now)
            state.deadlines[OutageClock.fix_overdue] = now + policy.renotify_every
        elif clock is OutageClock.sweep:
            if state.open:
                self._fan_out("link", now)
            else:
                self._fan_out("resolve", now)
        else:  # pragma: no cover - every clock is handled above
            raise AssertionError(clock)

    def _window_starts(self, now: datetime) -> None:
        state = self.state
        state.status = NoticeStatus.active
        self._record(OutageEventType.window_started, now, ends=state.expected_fix_by.isoformat())
        self._post()
        self._tell_area("started", Message.PLANNED_WORKS_STARTED, now, end=state.expected_fix_by)

    def _next_ahead(self) -> None:
        """Planned works: the clock for the next notice ahead of the window, while one is pending."""
        state = self.state
        if state.ahead_pending and state.status is NoticeStatus.announced:
            state.deadlines[OutageClock.ahead] = state.started_at - state.ahead_pending[0]
        else:
            state.deadlines.pop(OutageClock.ahead, None)

    def _start_ladder(self, now: datetime) -> None:
        state, policy = self.state, self.policy
        state.deadlines[OutageClock.update_due] = now + policy.update_every
        state.deadlines[OutageClock.fix_overdue] = state.expected_fix_by
        if state.line < LAST_LINE:
            state.deadlines[OutageClock.escalate] = now + policy.escalate_after

    # --- fan-outs ---

    def _fan_out(self, operation: Literal["link", "update", "resolve"], now: datetime, news: str | None = None) -> None:
        state = self.state
        earlier = [f.job_id for f in state.fan_outs if f.operation == operation]
        job_id = f"{state.outage_id}-{operation}-{len(earlier) + 1}"
        # An update carries its own news to everyone; a second link or resolve is a sweep after the first.
        follows = earlier[-1] if earlier and operation != "update" else None
        notice = self.notice()
        payload: dict[str, Any]
        if operation == "link":
            signal = "link_outage"
            payload = {"agent": state.outage_id, "outage_id": state.outage_id, "notice": notice.model_dump(mode="json")}
        elif operation == "update":
            signal = OutageUpdate.action_name()
            payload = OutageUpdate(notice=notice, news=news).model_dump(mode="json", exclude={"type"})
        else:
            signal = OutageResolved.action_name()
            assert state.resolution is not None and state.resolved_by is not None
            payload = OutageResolved(
                notice=notice,
                resolution=state.resolution,
                resolved_by=state.resolved_by,
                compensation=state.compensation,
            ).model_dump(mode="json", exclude={"type"})
        state.fan_outs.append(FanOutRecord(job_id=job_id, operation=operation))
        self._record(OutageEventType.fan_out_started, now, job_id=job_id, operation=operation)
        self._effects.append(
            FanOut(job_id=job_id, operation=operation, signal=signal, payload=payload, follows=follows)
        )

    def fan_out_done(self, job_id: str, reached: int, failures: int, now: datetime) -> list[OutageEffect]:
        record = self._fan_out_record(job_id)
        record.status, record.reached, record.failures = "done", reached, failures
        self._record(OutageEventType.fan_out_done, now, job_id=job_id, reached=reached, failures=failures)
        return self.take_effects()

    def fan_out_failed(self, job_id: str, reason: str, now: datetime) -> list[OutageEffect]:
        record = self._fan_out_record(job_id)
        record.status, record.reason = "failed", reason
        self._record(OutageEventType.fan_out_failed, now, job_id=job_id, reason=reason)
        what = {"link": "linking", "update": "the status update", "resolve": "the resolution"}[record.operation]
        self._page(
            self.state.line,
            "outage_fan_out_failed",
            self._text(Message.OUTAGE_FAN_OUT_FAILED, what=what, reason=reason),
            now,
        )
        return self.take_effects()

    def _fan_out_record(self, job_id: str) -> FanOutRecord:
        for record in self.state.fan_outs:
            if record.job_id == job_id:
                return record
        raise KeyError(job_id)

    # --- planned-works notices ---

    def _tell_area(self, kind: str, message: Message, now: datetime, **times: datetime) -> None:
        state = self.state
        state.told.append(kind)
        fields: dict[str, str | datetime] = {
            "ticket": state.outage_id,
            "area": state.area.path,
            "summary": state.summary,
            "fix_by": state.expected_fix_by,
            **times,
        }
        self._effects.append(
            TellArea(
                notice_id=f"{state.outage_id}:{kind}",
                kind=f"planned_works_{kind.split('-')[0]}",
                message=self._text(message, **{name: fmt_time(at) for name, at in times.items()}),
                recent_since=now - self.policy.recent_within,
                template=message,
                fields=fields,
            )
        )

    def area_told(self, notice_id: str, customers: int, unreachable: int, now: datetime) -> list[OutageEffect]:
        self._record(OutageEventType.area_told, now, notice=notice_id, customers=customers, unreachable=unreachable)
        return self.take_effects()

    def area_tell_failed(self, notice_id: str, reason: str, now: datetime) -> list[OutageEffect]:
        self._record(OutageEventType.area_tell_failed, now, notice=notice_id, reason=reason)
        return self.take_effects()

    # --- plumbing ---

    def _post(self) -> None:
        self._effects.append(PostNotice(self.notice()))

    def _record(self, event_type: OutageEventType, now: datetime, by: str | None = None, **data: Any) -> OutageEvent:
        self.state.event_seq += 1
        event = OutageEvent(seq=self.state.event_seq, type=event_type, at=now, by=by, data=data)
        self.state.events.append(event)
        return event

    def _page(self, line: int, kind: str, message: str, now: datetime) -> None:
        event = self._record(OutageEventType.line_notified, now, line=line, kind=kind)
        self._effects.append(PageLine(line=line, kind=kind, message=message, event_seq=event.seq))

    def _text(self, message: Message, **fields: object) -> str:
        state = self.state
        base: dict[str, object] = {
            "ticket": state.outage_id,
            "area": state.area.path,
            "summary": state.summary,
            "fix_by": fmt_time(state.expected_fix_by),
        }
        return render(message, {**base, **fields})

    def _declared_text(self) -> str:
        state = self.state
        categories = ", ".join(state.categories) or "all"
        return self._text(
            Message.OUTAGE_DECLARED, kind=state.kind.value.replace("_", " "), categories=categories, owner=state.owner
        )
