"""Refund authority is the acting agent's own line, with four eyes above a threshold (issue 15), without a server.

The API puts the token's line into `actor_line`; these drive the state machine with it as the API would.
Incidents switch AGENT_AUTHORITY on through `workflow.patched` (tests/stack/test_identity_api.py runs it for real).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.helpers import open_request
from workflows.domain.actions import ACTION_ADAPTER
from workflows.domain.incident import Incident, PayRefund
from workflows.domain.money import AGENT_AUTHORITY
from workflows.domain.policy import default_policy

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
M = timedelta(minutes=1)


def rub(amount: str) -> dict[str, str]:
    return {"amount": amount, "currency": "RUB"}


def opened(features: frozenset[str] = frozenset({AGENT_AUTHORITY})) -> Incident:
    incident, _ = Incident.open("INC-TEST01", open_request(), default_policy(), T0)
    incident.features.update(features)
    return incident


def act(incident: Incident, **data: object):
    return incident.act(ACTION_ADAPTER.validate_python(data), T0 + M)


def paid(outcome) -> bool:
    return any(isinstance(e, PayRefund) for e in outcome.effects)


def test_a_line_one_agent_adds_and_pays_a_refund_within_the_limit_without_escalating():
    incident = opened()
    assert incident.state.line == 1
    outcome = act(incident, type="add_refund", agent="ann", actor_line=1, refund=rub("4000.00"))
    assert outcome.accepted and paid(outcome)
    assert incident.state.refund is not None and incident.state.refund.approved_by == "ann"


def test_a_line_one_agent_is_refused_above_the_limit_to_add_or_approve():
    incident = opened()
    refused = act(incident, type="add_refund", agent="ann", actor_line=1, refund=rub("6000.00"))
    assert not refused.accepted and "line-1 limit 5000.00" in (refused.reason or "")
    assert incident.state.refund is None
    # A refund owed at opening above the line-1 limit: ann cannot approve it, whatever line she claims.
    owed, _ = Incident.open("INC-TEST02", open_request(refund=rub("6000.00")), default_policy(), T0)
    owed.features.add(AGENT_AUTHORITY)
    claimed = act(owed, type="approve_refund", agent="ann", line=3, actor_line=1)
    assert not claimed.accepted and "line-1 approval limit" in (claimed.reason or "")
    assert owed.state.refund is not None and owed.state.refund.status == "awaiting_approval"


def test_a_raw_signal_without_the_actors_line_keeps_the_old_rules():
    incident = opened()
    outcome = act(incident, type="add_refund", agent="ann", refund=rub("100.00"))
    assert not outcome.accepted and "line 2 and above" in (outcome.reason or "")


def test_four_eyes_a_refund_above_the_threshold_needs_a_second_different_agent():
    incident = opened()
    first = act(incident, type="add_refund", agent="boris", actor_line=2, refund=rub("60000.00"))
    assert first.accepted and not paid(first)
    refund = incident.state.refund
    assert refund is not None and refund.status == "awaiting_approval" and refund.first_approved_by == "boris"
    again = act(incident, type="approve_refund", agent="boris", line=2, actor_line=2)
    assert not again.accepted and "second, different agent" in (again.reason or "")
    assert refund.status == "awaiting_approval"
    second = act(incident, type="approve_refund", agent="vera", line=3, actor_line=3)
    assert second.accepted and paid(second) and refund.approved_by == "vera"


def test_below_the_threshold_one_approval_is_enough():
    incident = opened()
    outcome = act(incident, type="add_refund", agent="boris", actor_line=2, refund=rub("50000.00"))
    assert outcome.accepted and paid(outcome)


def test_settling_by_hand_needs_an_approved_refund_and_no_payment_in_flight():
    owed, _ = Incident.open("INC-TEST02", open_request(refund=rub("6000.00")), default_policy(), T0)
    owed.features.add(AGENT_AUTHORITY)
    unapproved = act(owed, type="settle_refund", agent="ann", reference="cash")
    assert not unapproved.accepted and "approve it first" in (unapproved.reason or "")
    assert act(owed, type="approve_refund", agent="boris", line=2, actor_line=2).accepted
    in_flight = act(owed, type="settle_refund", agent="boris", reference="cash")
    assert not in_flight.accepted and "in flight" in (in_flight.reason or "")
    owed.refund_failed("card expired", T0 + 2 * M)
    assert act(owed, type="settle_refund", agent="boris", reference="bank transfer 77").accepted


def test_incidents_without_the_feature_replay_as_before():
    owed, _ = Incident.open("INC-TEST02", open_request(refund=rub("6000.00")), default_policy(), T0)
    assert act(owed, type="settle_refund", agent="ann", reference="cash").accepted  # unapproved, as it ran
