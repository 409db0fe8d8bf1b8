"""A stateful property test of the pure state machine with FOLLOW_THROUGH on: whatever agents,
customers, the clock and the payment provider do, an incident that is not closed always has a next
deadline (nothing waits on a person without a clock), one waiting on the customer has the silence
ladder's, and a closed one has none (but the window in which a reply reopens a close for silence)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from pydantic import ValidationError

from infra.errors import describe_validation_error
from tests.helpers import open_request
from workflows.domain import linking
from workflows.domain.actions import ACTION_ADAPTER, CATALOGUE
from workflows.domain.incident import (
    ANNOUNCE_ACKNOWLEDGEMENT,
    CUSTOMER_LOCALE,
    FOLLOW_THROUGH,
    RECONTACT_REOPENS,
    Incident,
)
from workflows.domain.models import ClosedAs, IncidentState, RefundStatus, Status
from workflows.domain.policy import Policy, default_policy, parse_policy
from workflows.domain.sla import PAUSED_FOR_CUSTOMER, PAUSED_FOR_OUTAGE, SLA_CLOCKS, Clock

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
ACTION = ACTION_ADAPTER


def _policy_variant(name: str, **critical: Any) -> Policy:
    data = default_policy().model_dump(mode="json")
    data["name"] = name
    data["severities"]["critical"].update(critical)
    return parse_policy(data, name)


POLICIES = [
    default_policy(),
    # Resolution closes at once (no callback): money still on its way is all that keeps it open.
    _policy_variant("no-callback", callback_after=None, feedback_window=None),
    _policy_variant("credit-every-late-fix", compensate_again_after_reopen=True),
]

agents = st.sampled_from(["ann", "boris", "duty", "", "  "])
texts = st.sampled_from(["", "fixed", "checking the port", "x" * 4001])
channels = st.sampled_from(["chat", "phone", "app", "fax"])
money = st.fixed_dictionaries(
    {
        "amount": st.sampled_from(["10.00", "4999.99", "5000.01", "9000.00", "0", "-1", 12.5]),
        "currency": st.sampled_from(["RUB", "RUX"]),
    }
)
notices = st.builds(
    lambda outage, area, categories, status, fix_in, grace: {
        "outage_id": outage,
        "area": area,
        "categories": categories,
        "status": status,
        "summary": "A cable was cut.",
        "started_at": T0.isoformat(),
        "expected_fix_by": (T0 + timedelta(hours=fix_in)).isoformat(),
        "check_by": (T0 + timedelta(hours=fix_in + grace)).isoformat(),
    },
    st.sampled_from(["OUT-AAAAAA", "OUT-BBBBBB"]),
    st.sampled_from([{"region": "moscow"}, {"region": "moscow", "city": "khimki"}, {"region": "tver"}]),
    st.sampled_from([[], ["connection_lost"], ["ui_typo"]]),
    st.sampled_from(["active", "active", "resolved"]),
    st.integers(1, 200),
    st.integers(0, 48),
)
# One strategy per action, valid and invalid arguments alike; the test below keeps it complete.
PAYLOADS: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "acknowledge": st.builds(lambda a: {"agent": a}, agents),
    "assign": st.builds(lambda a, b: {"agent": a, "assignee": b}, agents, agents),
    "add_note": st.builds(lambda a, t: {"agent": a, "text": t}, agents, texts),
    "escalate": st.builds(lambda a, t: {"agent": a, "reason": t}, agents, texts),
    "resolve": st.builds(lambda a, t: {"agent": a, "resolution": t}, agents, texts),
    "customer_contact": st.builds(
        lambda c, t, who, m: {"channel": c, "text": t, "contact": who, "refund": m},
        st.sampled_from(["chat", "phone", "fax"]),
        texts,
        st.sampled_from([None, "ann@example.com", "+7 900 000-00-09", "nobody"]),
        st.none() | money,
    ),
    "feedback": st.builds(
        lambda s, c: {"score": s, "comment": c}, st.one_of(st.integers(0, 6), st.just("5")), st.none() | texts
    ),
    "reopen": st.builds(lambda a, t: {"by": a, "reason": t}, agents, texts),
    "add_refund": st.builds(lambda a, m: {"agent": a, "refund": m}, agents, money),
    "approve_refund": st.builds(lambda a, n: {"agent": a, "line": n}, agents, st.integers(0, 4)),
    "retry_refund": st.builds(lambda a: {"agent": a}, agents),
    "settle_refund": st.builds(lambda a, t: {"agent": a, "reference": t}, agents, texts),
    "reclassify": st.builds(
        lambda a, s, t: {"agent": a, "severity": s, "reason": t},
        agents,
        st.sampled_from(["critical", "routine", "convenience", "urgent"]),
        texts,
    ),
    "settle_compensation": st.builds(lambda a, t: {"agent": a, "reference": t}, agents, texts),
    "message_customer": st.builds(lambda a, t: {"agent": a, "text": t}, agents, texts),
    "ask_customer": st.builds(lambda a, t: {"agent": a, "question": t}, agents, texts),
    "customer_reply": st.builds(lambda c, t: {"channel": c, "text": t}, channels, texts),
    "self_help_worked": st.builds(lambda c, t: {"channel": c, "comment": t}, channels, st.none() | texts),
    "self_help_failed": st.builds(lambda c, t: {"channel": c, "comment": t}, channels, st.none() | texts),
    # Major incidents (issue 18): links that fit and do not, news and resolutions of this and another outage.
    "link_outage": st.builds(
        lambda a, n: {"agent": a, "outage_id": n["outage_id"] if n else "OUT-AAAAAA", "notice": n},
        st.sampled_from(["ann", "OUT-AAAAAA", ""]),
        st.none() | notices,
    ),
    "unlink_outage": st.builds(lambda a, t: {"agent": a, "reason": t}, agents, texts),
    "outage_update": st.builds(lambda n, t: {"notice": n, "news": t}, notices, st.none() | texts),
    "outage_resolved": st.builds(
        lambda n, t, c: {"notice": n, "resolution": t, "resolved_by": "boris", "compensation": c},
        notices,
        texts,
        st.sampled_from([{}, {"critical": {"amount": "30.00", "currency": "RUB"}}]),
    ),
}
actions = st.one_of(*(st.tuples(st.just(kind), payload) for kind, payload in PAYLOADS.items()))
openings = st.builds(
    lambda category, refund, language, time_zone, area: open_request(
        category=category, refund=refund, language=language, time_zone=time_zone, area=area
    ),
    st.sampled_from(["connection_lost", "payment_not_refunded", "tariff_change", "ui_typo", "unheard_of"]),
    st.one_of(
        st.none(), st.sampled_from([{"amount": "100.00", "currency": "RUB"}, {"amount": "7000.00", "currency": "RUB"}])
    ),
    st.sampled_from([None, "ru", "en"]),
    st.sampled_from([None, "Europe/Moscow", "Asia/Kamchatka", "America/St_Johns"]),
    st.sampled_from([None, {"region": "moscow", "city": "khimki", "segment": "north-7"}]),
)
# From a minute to over a week: hits reminders, SLAs, callbacks, feedback windows and payment give-up times.
jumps = st.one_of(st.integers(1, 3600), st.integers(3600, 9 * 24 * 3600))


def test_every_action_has_a_strategy():
    assert set(PAYLOADS) == set(CATALOGUE)


class IncidentMachine(RuleBasedStateMachine):
    """The incident as the workflow drives it: actions, expired deadlines, payment and delivery outcomes."""

    incident: Incident
    now: datetime
    seen_seq: int
    was_closed: bool
    closed_as: ClosedAs | None

    def start(self, opening: Any, policy: Policy, features: frozenset[str]) -> None:
        self.incident, _ = Incident.open("INC-STATE1", opening, policy, T0, features)
        self.now = T0
        self.seen_seq = 0
        self.was_closed = False
        self.closed_as = None

    @initialize(opening=openings, policy=st.sampled_from(POLICIES))
    def open_incident(self, opening: Any, policy: Policy) -> None:
        features = frozenset({FOLLOW_THROUGH, RECONTACT_REOPENS, ANNOUNCE_ACKNOWLEDGEMENT, CUSTOMER_LOCALE})
        self.start(opening, policy, features)

    # --- agents, customers and services ---

    @rule(action=actions)
    def act(self, action: tuple[str, dict[str, Any]]) -> None:
        kind, payload = action
        try:
            parsed = ACTION.validate_python({**payload, "type": kind})
        except ValidationError as error:
            outcome = self.incident.reject(kind, payload.get("agent"), describe_validation_error(error), self.now)
        else:
            outcome = self.incident.act(parsed, self.now)
        assert self.incident.state.events[-1].seq >= outcome.event_seq

    # Valid questions and answers more often than the alphabet above draws them, so that the silence ladder, the
    # close for silence and the reopening reply are walked through, not only refused.
    @rule(agent=st.sampled_from(["ann", "boris"]))
    def an_agent_asks_the_customer(self, agent: str) -> None:
        self.incident.act(
            ACTION.validate_python({"type": "ask_customer", "agent": agent, "question": "Lights?"}), self.now
        )

    @precondition(lambda self: self.incident.state.waiting is not None)
    @rule(kind=st.sampled_from(["customer_reply", "customer_contact"]))
    def the_customer_answers(self, kind: str) -> None:
        self.incident.act(ACTION.validate_python({"type": kind, "channel": "chat", "text": "power only"}), self.now)

    @rule(kind=st.sampled_from(["escalate_now", "page"]))
    def unknown_action(self, kind: str) -> None:
        self.incident.reject(kind, "ann", f"unknown action {kind!r}", self.now)

    # --- time ---

    @rule(seconds=jumps)
    def time_passes(self, seconds: int) -> None:
        self.now += timedelta(seconds=seconds)
        self.incident.advance(self.now)
        self.nothing_due_is_left()

    @rule(extra=st.sampled_from([0, 1, 59]))
    def until_the_next_deadline(self, extra: int) -> None:
        upcoming = self.incident.next_deadline()
        if upcoming is not None:
            self.now = max(self.now, upcoming.due_at + timedelta(seconds=extra))
        self.incident.advance(self.now)
        self.nothing_due_is_left()

    def nothing_due_is_left(self) -> None:
        upcoming = self.incident.next_deadline()
        assert upcoming is None or upcoming.due_at > self.now, f"{upcoming} still due after advancing to {self.now}"

    # --- what the payment provider and the notification endpoint answer ---

    def refund_in_flight(self) -> bool:
        refund = self.incident.state.refund
        return refund is not None and refund.status is RefundStatus.requested

    def credit_in_flight(self) -> bool:
        compensation = self.incident.state.compensation
        return compensation is not None and compensation.status == "granting"

    @precondition(refund_in_flight)
    @rule()
    def refund_paid(self) -> None:
        self.incident.refund_paid("pay_r", self.now)

    @precondition(refund_in_flight)
    @rule(reason=st.sampled_from(["rejected: card_closed", "gave up: retried until the give-up time passed"]))
    def refund_failed(self, reason: str) -> None:
        self.incident.refund_failed(reason, self.now)

    @precondition(credit_in_flight)
    @rule()
    def compensation_paid(self) -> None:
        self.incident.compensation_paid("pay_c", self.now)

    @precondition(credit_in_flight)
    @rule()
    def compensation_failed(self) -> None:
        self.incident.compensation_failed("rejected: account_closed", self.now)

    @rule(data=st.data())
    def notifications_failed(self, data: st.DataObject) -> None:
        seqs = data.draw(st.lists(st.integers(1, self.incident.state.event_seq), min_size=1, max_size=3))
        self.incident.notifications_failed(seqs, "gave up: notification endpoint down", self.now)

    # --- what must always hold ---

    def follow_through_on(self) -> bool:
        return FOLLOW_THROUGH in self.incident.features

    @invariant()
    def waiting_on_the_customer_pauses_the_sla_and_has_the_silence_ladder(self) -> None:
        if not hasattr(self, "incident"):
            return
        state, upcoming = self.incident.state, self.incident.next_deadline()
        clock = state.clock
        assert (PAUSED_FOR_CUSTOMER in clock.paused_for) == (state.waiting is not None), (
            "paused for the customer while asked"
        )
        assert (PAUSED_FOR_OUTAGE in clock.paused_for) == linking.linked(state), "held exactly while linked"
        assert (clock.paused_since is not None) == bool(clock.paused_for), "paused exactly while a reason holds it"
        if state.status is Status.waiting_on_customer:
            assert state.clock.running(Clock.reply_deadline), f"waiting without the silence ladder: {_summary(state)}"
            assert upcoming is not None and upcoming.clock not in SLA_CLOCKS and state.next_deadline == upcoming.due_at
            assert state.sla_deadline is None and state.acknowledge_deadline is None
        if state.status is Status.closed and not self.incident.finished:
            # Closed for silence: only the window in which a reply reopens it runs (the SLA clocks stay paused).
            assert state.closed_as is ClosedAs.no_reply and upcoming is not None
            assert upcoming.clock is Clock.reopen_window and set(state.clock.deadlines) <= {upcoming.clock, *SLA_CLOCKS}
        if state.closed_as is ClosedAs.self_resolved:
            assert state.acknowledged_at is None, "self-resolved means no agent took it"
            assert not any(e.type == "customer_asked" for e in state.events), "nor asked the customer anything"

    @invariant()
    def the_next_deadline_exists_unless_closed(self) -> None:
        if not hasattr(self, "incident") or not self.follow_through_on():
            return
        state, upcoming = self.incident.state, self.incident.next_deadline()
        if self.incident.finished:
            assert upcoming is None and state.next_deadline is None and not state.clock.deadlines
        elif state.status is Status.closed:
            assert upcoming is not None and upcoming.clock is Clock.reopen_window
        else:
            assert upcoming is not None, f"a {state.status.value} incident waits on nothing: {_summary(state)}"
            assert state.next_deadline == upcoming.due_at

    @invariant()
    def events_only_move_forward(self) -> None:
        if not hasattr(self, "incident"):
            return
        state = self.incident.state
        seqs = [e.seq for e in state.events]
        assert all(a < b for a, b in pairwise(seqs)), "event seqs strictly increase"
        assert not seqs or seqs[-1] == state.event_seq >= self.seen_seq
        self.seen_seq = state.event_seq
        assert [e.at for e in state.events] == sorted(e.at for e in state.events)

    @invariant()
    def closed_is_final_and_money_is_paid_once(self) -> None:
        if not hasattr(self, "incident"):
            return
        state = self.incident.state
        if self.was_closed and self.closed_as is not ClosedAs.no_reply:
            assert state.status is Status.closed, "closed is final"
        if self.was_closed and state.status is not Status.closed:
            assert any(e.type == "customer_replied" for e in state.events[-8:]), (
                "only a reply reopens a close for silence"
            )
        if self.incident.finished:
            assert state.status is Status.closed and state.closed_as is not None
        self.was_closed = state.status is Status.closed
        self.closed_as = state.closed_as
        assert sum(e.type == "refund_succeeded" for e in state.events) <= 1
        if state.status is Status.closed and self.follow_through_on():
            assert state.refund is None or state.refund.status in (RefundStatus.paid, RefundStatus.settled)
            assert state.compensation is None or state.compensation.status in ("granted", "settled")
        IncidentState.model_validate_json(state.model_dump_json())

    @invariant()
    def a_frozen_incident_thaws_unchanged(self) -> None:
        """The workflow freezes a waiting incident to JSON and thaws it on the next change, but not while a
        replay catches up (IncidentWorkflow._freeze): both must see the same incident, or a replay would diverge."""
        if not hasattr(self, "incident"):
            return
        live = self.incident
        frozen = live.state.__pydantic_serializer__.to_json(live.state)
        thawed = Incident(IncidentState.model_validate_json(frozen), live.policy, frozenset(live.features))
        assert thawed.state == live.state
        assert thawed.next_deadline() == live.next_deadline()


def _summary(state: IncidentState) -> str:
    refund = state.refund.status.value if state.refund else None
    compensation = state.compensation.status if state.compensation else None
    return (
        f"{state.severity.value}, line {state.line}, assignee {state.assignee}, awaiting {state.awaiting}, "
        f"close_pending {state.close_pending!r}, refund {refund}, compensation {compensation}"
    )


class SwitchedOnLaterMachine(IncidentMachine):
    """An incident that was running before the change: the workflow switches the feature on mid-life."""

    @initialize(opening=openings, policy=st.sampled_from(POLICIES))
    def open_incident(self, opening: Any, policy: Policy) -> None:
        self.start(opening, policy, frozenset())

    @precondition(lambda self: not self.follow_through_on())
    @rule()
    def switch_on(self) -> None:
        self.incident.enable(FOLLOW_THROUGH, self.now)


PROFILE = settings(max_examples=200, stateful_step_count=40, deadline=None, suppress_health_check=list(HealthCheck))
TestIncidentMachine = IncidentMachine.TestCase
TestIncidentMachine.settings = PROFILE
TestSwitchedOnLater = SwitchedOnLaterMachine.TestCase
TestSwitchedOnLater.settings = PROFILE
