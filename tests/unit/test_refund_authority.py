"""Refund authority is the acting agent's own line, with four eyes above a threshold (issue 15), without a server.

The API puts the token's line into `actor_line`; these drive the state machine with it as the API would.
Incidents switch AGENT_AUTHORITY on through `workflow.patched` (tests/stack/test_identity_api.py runs it for real).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.helpers import open_request
from workflows.domain.actions import ACTION_ADAPTER
from workflows.domain.incident import Incident, Notify, PayRefund
from workflows.domain.money import AGENT_AUTHORITY, NEW_KEY_AFTER_LOOKUP, holds_closing, reminders_wanted
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


# --- one refund per charge (the claim itself is exercised on a server: tests/test_one_refund_per_charge.py) ---


def charged(charge: str = "ch_1", amount: str = "1500.00") -> dict[str, str]:
    return {**rub(amount), "charge": charge}


def payments(outcome_or_effects) -> list[PayRefund]:
    effects = outcome_or_effects.effects if hasattr(outcome_or_effects, "effects") else outcome_or_effects
    return [e for e in effects if isinstance(e, PayRefund)]


def test_a_refund_names_its_charge_and_takes_its_key_from_it():
    incident, effects = Incident.open("INC-TEST01", open_request(refund=charged()), default_policy(), T0)
    [pay] = payments(effects)
    assert pay.charge == "ch_1" and pay.idempotency_key == "refund:ch_1" and pay.look_up_key is None
    refund = incident.state.refund
    assert refund is not None and refund.charge == "ch_1"
    assert incident.state.events[-1].data["charge"] == "ch_1"


def test_a_refund_refused_for_its_charge_names_the_incident_that_refunds_it_and_holds_nothing_open():
    incident, _ = Incident.open("INC-TEST02", open_request(refund=charged()), default_policy(), T0)
    incident.features.add(AGENT_AUTHORITY)
    effects = incident.refund_refused("INC-TEST01", T0 + M)
    refund = incident.state.refund
    assert refund is not None and refund.status == "refused" and refund.refunded_by == "INC-TEST01"
    assert not payments(effects)
    refused = [e for e in incident.state.events if e.type == "refund_refused"]
    assert (
        len(refused) == 1
        and refused[0].data["refunded_by"] == "INC-TEST01"
        and "INC-TEST01" in refused[0].data["reason"]
    )
    told = {e.recipient: e.message for e in effects if isinstance(e, Notify)}
    assert "INC-TEST01" in told["customer"] and "ch_1" in told["line_1"]
    # Nothing more to pay or chase here: the refund neither holds the closing nor has a reminder.
    assert not holds_closing(incident.state, incident.features)
    assert not reminders_wanted(incident.state)
    # Nor is anything owed here any more: another charge's refund may be added.
    again = act(incident, type="add_refund", agent="ann", actor_line=1, refund=charged("ch_2", "300.00"))
    assert again.accepted and payments(again)[0].charge == "ch_2"


def test_the_same_incident_never_owes_a_second_refund_of_its_charge():
    incident, _ = Incident.open("INC-TEST01", open_request(refund=charged()), default_policy(), T0)
    incident.features.add(AGENT_AUTHORITY)
    second = act(incident, type="add_refund", agent="boris", actor_line=2, refund=charged())
    assert not second.accepted and "already owed" in (second.reason or "")
    other_amount = act(incident, type="customer_contact", channel="phone", text="again", refund=charged(amount="99.00"))
    assert not other_amount.accepted and "second refund" in (other_amount.reason or "")
    same = act(incident, type="customer_contact", channel="phone", text="again", refund=charged())
    assert same.accepted and not payments(same)
    assert incident.state.events[same.event_seq - 1].data["refund_already_owed"] is True


# --- a new idempotency key only after a ledger lookup (on a server: tests/test_payment_outage.py) ---


def failed_refund(features: frozenset[str], answered_no: bool) -> Incident:
    incident, _ = Incident.open("INC-TEST01", open_request(refund=rub("100.00")), default_policy(), T0)
    incident.features.update(features)
    incident.refund_failed("rejected: card_closed", T0 + M, answered_no=answered_no)
    return incident


def test_after_a_final_no_a_retry_pays_under_a_new_key_once_the_old_one_is_looked_up():
    incident = failed_refund(frozenset({NEW_KEY_AFTER_LOOKUP}), answered_no=True)
    [pay] = payments(act(incident, type="retry_refund", agent="boris"))
    assert pay.look_up_key == "INC-TEST01:refund:100.00RUB"
    assert pay.idempotency_key == "INC-TEST01:refund:100.00RUB:round-2"
    requested = incident.state.events[-1]
    assert requested.data["look_up_key"] == pay.look_up_key and requested.data["idempotency_key"] == pay.idempotency_key
    # Found paid under the old key: recorded as paid, nothing paid again.
    incident.refund_paid("pay_old", T0 + 2 * M, found_under=pay.look_up_key)
    refund = incident.state.refund
    assert refund is not None and refund.status == "paid" and refund.payment_id == "pay_old"
    assert incident.state.events[-2].data["found_in_ledger_under"] == pay.look_up_key


def test_a_retry_keeps_the_key_after_a_failure_that_was_no_final_no_or_without_the_feature():
    gave_up = failed_refund(frozenset({NEW_KEY_AFTER_LOOKUP}), answered_no=False)
    [pay] = payments(act(gave_up, type="retry_refund", agent="boris"))
    assert (pay.idempotency_key, pay.look_up_key) == ("INC-TEST01:refund:100.00RUB", None)
    before = failed_refund(frozenset(), answered_no=True)
    [pay] = payments(act(before, type="retry_refund", agent="boris"))
    assert (pay.idempotency_key, pay.look_up_key) == ("INC-TEST01:refund:100.00RUB", None)
