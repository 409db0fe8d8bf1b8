"""Property-based tests: any sequence of actions, clock ticks and payment outcomes leaves a valid
incident, and nothing an agent or customer sent is lost from the event log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from tests.helpers import open_request
from workflows.domain.actions import ACTION_ADAPTER
from workflows.domain.incident import Incident, PayRefund
from workflows.domain.models import IncidentState, OpenIncident, RefundStatus, Status
from workflows.domain.policy import default_policy
from workflows.domain.sla import Clock

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
ACTION = ACTION_ADAPTER
names = st.sampled_from(["ann", "boris", "duty", ""])
texts = st.text(min_size=0, max_size=30)
money = st.fixed_dictionaries(
    {"amount": st.sampled_from(["10.00", "4999.99", "5000.01", "9000.00", "0", "-1"]), "currency": st.just("RUB")}
)

payloads = st.one_of(
    st.builds(lambda a: {"type": "acknowledge", "agent": a}, names),
    st.builds(lambda a, t: {"type": "add_note", "agent": a, "text": t}, names, texts),
    st.builds(lambda a, t: {"type": "escalate", "agent": a, "reason": t}, names, texts),
    st.builds(lambda a, t: {"type": "resolve", "agent": a, "resolution": t}, names, texts),
    st.builds(lambda t: {"type": "customer_contact", "channel": "chat", "text": t}, texts),
    st.builds(lambda s: {"type": "feedback", "score": s}, st.integers(0, 6)),
    st.builds(lambda a, t: {"type": "reopen", "by": a, "reason": t}, names, texts),
    st.builds(lambda a, m: {"type": "add_refund", "agent": a, "refund": m}, names, money),
    st.builds(lambda a, n: {"type": "approve_refund", "agent": a, "line": n}, names, st.integers(0, 4)),
    st.builds(lambda a: {"type": "retry_refund", "agent": a}, names),
    st.builds(lambda a, t: {"type": "settle_refund", "agent": a, "reference": t}, names, texts),
    st.builds(
        lambda a, s, t: {"type": "reclassify", "agent": a, "severity": s, "reason": t},
        names,
        st.sampled_from(["critical", "routine", "convenience", "urgent"]),
        texts,
    ),
)
steps = st.one_of(
    st.tuples(st.just("act"), payloads),
    st.tuples(st.just("tick"), st.integers(min_value=1, max_value=60 * 60 * 30)),
    st.tuples(st.just("payment"), st.sampled_from(["paid", "failed", "credited", "credit_failed"])),
)
openings = st.builds(
    lambda category, refund: open_request(category=category, refund=refund),
    st.sampled_from(["connection_lost", "tariff_change", "ui_typo", "unheard_of"]),
    st.one_of(
        st.none(), st.sampled_from([{"amount": "100.00", "currency": "RUB"}, {"amount": "7000.00", "currency": "RUB"}])
    ),
)


def check_invariants(incident: Incident, previous_status: Status) -> None:
    state = incident.state
    IncidentState.model_validate(state.model_dump(mode="json"))  # still a valid, serialisable incident
    assert [e.seq for e in state.events] == list(range(1, state.event_seq + 1))
    assert 1 <= state.line <= 3
    assert sum(e.type == "refund_succeeded" for e in state.events) <= 1, "a refund is paid at most once"
    if previous_status is Status.closed:
        assert state.status is Status.closed, "closed is final"
    if state.status is Status.closed:
        assert not state.clock.deadlines and state.closed_at is not None
        assert state.refund is None or state.refund.status in (RefundStatus.paid, RefundStatus.settled)
    if state.status is Status.open:
        assert state.clock.running(Clock.line) or state.line == 3
    times = [e.at for e in state.events]
    assert times == sorted(times)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(opening=openings, script=st.lists(steps, max_size=40))
def test_any_sequence_leaves_a_valid_incident_and_loses_no_action(opening: OpenIncident, script: list[Any]):
    incident, effects = Incident.open("INC-PROP01", opening, default_policy(), T0)
    in_flight = sum(isinstance(e, PayRefund) for e in effects)
    now = T0
    for kind, value in script:
        before_seq, status = incident.state.event_seq, incident.state.status
        if kind == "act":
            try:
                action = ACTION.validate_python(value)
            except ValidationError:
                outcome = incident.reject(value["type"], None, "invalid payload", now)
            else:
                outcome = incident.act(action, now)
            new = incident.state.events[before_seq:]
            assert new, "every action leaves a trace in the log"
            primary = next(e for e in new if e.seq == outcome.event_seq)
            assert (primary.type == "action_rejected") is (not outcome.accepted)
            in_flight += sum(isinstance(e, PayRefund) for e in outcome.effects)
        elif kind == "tick":
            now += timedelta(seconds=value)
            incident.advance(now)
        else:
            refund, compensation = incident.state.refund, incident.state.compensation
            if value == "paid" and refund is not None and refund.status is RefundStatus.requested:
                incident.refund_paid("pay_x", now)
            elif value == "failed" and refund is not None and refund.status is RefundStatus.requested:
                incident.refund_failed("rejected: card_closed", now)
            elif value == "credited" and compensation is not None and compensation.status == "granting":
                incident.compensation_paid("pay_c", now)
            elif value == "credit_failed" and compensation is not None and compensation.status == "granting":
                incident.compensation_failed("gave up", now)
        check_invariants(incident, status)
        refund = incident.state.refund
        assert in_flight == (refund.attempts_started if refund is not None else 0), "every payment is on record"
