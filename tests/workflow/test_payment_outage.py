"""The payment provider down for a day (time-skipped): the refund is paid once when it is back, or,
when the policy's give-up time passes first, it becomes a line-2 task with its history. And after the
provider's final no, a retry pays under a new idempotency key only once the ledger shows nothing paid
under the old one."""

from __future__ import annotations

from datetime import timedelta

from temporalio.testing import WorkflowEnvironment

from tests.harness import RunningWorker, Sandboxes
from tests.helpers import HOUR, MINUTE, event_types, events_of, send, start_incident, until

DAY = timedelta(days=1)


async def test_provider_down_for_a_day_then_back_pays_once(
    time_env: WorkflowEnvironment, skipping: RunningWorker, sandboxes: Sandboxes
):
    await sandboxes.set_payment_faults(fail_first=1_000_000)
    handle = await start_incident(
        skipping, category="payment_not_refunded", refund={"amount": "2500.00", "currency": "RUB"}
    )
    await time_env.sleep(DAY)
    state = await until(handle, lambda s: s.refund is not None)
    assert state.refund is not None and state.refund.status == "requested", "still retrying after a day"
    key = state.refund.idempotency_key
    tried = (await sandboxes.attempts())[key]
    assert tried >= 100, f"retried with backoff all day ({tried} attempts)"
    await sandboxes.set_payment_faults(fail_first=0)
    state = await until(
        handle, lambda s: s.refund is not None and s.refund.status == "paid", skip=(time_env, 10 * MINUTE)
    )
    assert len(await sandboxes.ledger(reference=state.ticket_id)) == 1
    assert event_types(state).count("refund_succeeded") == 1 and "refund_failed" not in event_types(state)


async def test_past_the_give_up_time_the_refund_becomes_a_line_two_task_never_dropped(
    time_env: WorkflowEnvironment, skipping: RunningWorker, sandboxes: Sandboxes
):
    await sandboxes.set_payment_faults(fail_first=1_000_000)
    handle = await start_incident(
        skipping, category="payment_not_refunded", refund={"amount": "2500.00", "currency": "RUB"}
    )
    await time_env.sleep(3 * DAY + HOUR)
    state = await until(handle, lambda s: s.refund is not None and s.refund.status == "failed")
    assert state.refund is not None
    failed = events_of(state, "refund_failed")[0]
    assert "gave up" in failed.data["reason"] and "503" in failed.data["reason"]
    assert failed.at - state.opened_at >= 3 * DAY - HOUR
    task = [n for n in await sandboxes.notifications(state.ticket_id, "line_2") if n["kind"] == "refund_task"]
    assert len(task) == 1 and "2500.00 RUB" in task[0]["message"] and "gave up" in task[0]["message"]
    assert state.status == "open", "the incident is not dropped with its refund"
    # Line 2 retries once the provider is back: the same idempotency key, paid once.
    await sandboxes.set_payment_faults(fail_first=0)
    await send(handle, "retry_refund", agent="boris")
    state = await until(handle, lambda s: s.refund is not None and s.refund.status == "paid")
    assert len(await sandboxes.ledger(reference=state.ticket_id)) == 1


async def test_after_a_final_no_a_retry_looks_up_the_old_key_and_pays_under_a_new_one(
    time_env: WorkflowEnvironment, skipping: RunningWorker, sandboxes: Sandboxes
):
    """The provider answers a refused key with the same no forever (as Stripe does): the same key again would
    never pay; a new key may, once the ledger says nothing was paid under the old one."""
    await sandboxes.set_payment_faults(reject=True)
    handle = await start_incident(
        skipping, category="payment_not_refunded", refund={"amount": "2500.00", "currency": "RUB", "charge": "ch_77"}
    )
    state = await until(handle, lambda s: s.refund is not None and s.refund.status == "failed")
    assert state.refund is not None and state.refund.key_answered_no
    old_key = state.refund.idempotency_key
    await sandboxes.set_payment_faults(reject=False)
    await send(handle, "retry_refund", agent="boris")
    state = await until(handle, lambda s: s.refund is not None and s.refund.status == "paid")
    assert state.refund is not None
    new_key = state.refund.idempotency_key
    assert new_key == f"{old_key}:round-2"
    assert (await sandboxes.attempts())[old_key] == 1, "the refused key is never sent again"
    ledger = await sandboxes.ledger(reference=state.ticket_id)
    assert [(e["idempotency_key"], e["charge"]) for e in ledger] == [(new_key, "ch_77")]
    retried = events_of(state, "refund_requested")[-1]
    assert retried.data["look_up_key"] == old_key and retried.data["idempotency_key"] == new_key


async def test_a_final_no_under_which_the_money_did_move_is_recorded_paid_from_the_ledger(
    time_env: WorkflowEnvironment, skipping: RunningWorker, sandboxes: Sandboxes
):
    """The provider paid and answered no (its answer and its ledger disagree): the lookup before a new key
    finds the payment, and the refund is recorded as paid with it; nothing is paid again."""
    await sandboxes.set_payment_faults(reject_after_paying=True)
    handle = await start_incident(
        skipping, category="payment_not_refunded", refund={"amount": "2500.00", "currency": "RUB"}
    )
    state = await until(handle, lambda s: s.refund is not None and s.refund.status == "failed")
    assert state.refund is not None and "card_closed" in (state.refund.failure or "")
    old_key = state.refund.idempotency_key
    [paid_anyway] = await sandboxes.ledger(reference=state.ticket_id)
    await sandboxes.set_payment_faults(reject_after_paying=False)
    await send(handle, "retry_refund", agent="boris")
    state = await until(handle, lambda s: s.refund is not None and s.refund.status == "paid")
    assert state.refund is not None and state.refund.payment_id == paid_anyway["id"]
    assert events_of(state, "refund_succeeded")[0].data["found_in_ledger_under"] == old_key
    assert await sandboxes.ledger(reference=state.ticket_id) == [paid_anyway], "nothing paid a second time"
    assert f"{old_key}:round-2" not in await sandboxes.attempts(), "no payment under the new key was even tried"
