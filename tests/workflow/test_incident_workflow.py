"""The incident workflow on the time-skipping server: hours-long SLAs in milliseconds, real HTTP sandboxes."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from tests.harness import RunningWorker, Sandboxes, running_worker
from tests.helpers import HOUR, MINUTE, event_types, events_of, send, settled, start_incident, state_of, until
from workflows.domain.policy import default_policy

DAY = timedelta(days=1)
SECOND = timedelta(seconds=1)


def escalation_times(state) -> list[tuple[int, int, str, timedelta]]:
    return [
        (e.data["from_line"], e.data["to_line"], e.data["reason"], e.at - state.opened_at)
        for e in events_of(state, "escalated")
    ]


def close_to(actual: timedelta, expected: timedelta) -> bool:
    return abs(actual - expected) <= 2 * SECOND


@pytest.mark.parametrize(
    ("category", "line1", "line2", "renotify"),
    [
        ("connection_lost", HOUR, 4 * HOUR, HOUR),
        ("tariff_change", 8 * HOUR, 24 * HOUR, 4 * HOUR),
        ("ui_typo", 3 * DAY, 7 * DAY, DAY),
    ],
)
async def test_default_slas_escalate_one_two_three_at_the_right_time_and_line_three_renotifies(
    time_env: WorkflowEnvironment, skipping: RunningWorker, category, line1, line2, renotify
):
    """Critical counts wall time; routine and convenience the Moscow office's working time (from whenever
    the test runs: each deadline is the policy's own arithmetic, checked against when the server fired)."""
    policy = default_policy()
    handle = await start_incident(skipping, policy=policy, category=category)
    opened = await settled(handle)
    hours = policy.working_time(opened.severity)
    first_due = hours.after(opened.opened_at, line1)
    await sleep_until(time_env, first_due - MINUTE)
    assert (await settled(handle)).line == 1
    await sleep_until(time_env, first_due + MINUTE)
    state = await settled(handle)
    assert state.line == 2 and state.sla_breaches[-1] == "line_1"
    second_due = hours.after(escalation_times(state)[0][3] + state.opened_at, line2)
    await sleep_until(time_env, second_due + MINUTE)
    state = await settled(handle)
    assert state.line == 3
    (first, second) = escalation_times(state)
    assert first[:3] == (1, 2, "timeout") and close_to(first[3], first_due - state.opened_at)
    assert second[:3] == (2, 3, "timeout") and close_to(second[3], second_due - state.opened_at)
    second_at = state.opened_at + second[3]
    await sleep_until(time_env, hours.after(second_at, 2 * renotify) + MINUTE)
    state = await settled(handle)
    renotified = [e for e in events_of(state, "line_notified") if e.data["kind"] == "renotify"]
    assert len(renotified) == 2
    assert close_to(renotified[0].at - state.opened_at, hours.after(second_at, renotify) - state.opened_at)
    assert state.status == "open"


async def sleep_until(env: WorkflowEnvironment, instant: datetime) -> None:
    await env.sleep(max(instant - await env.get_current_time(), timedelta(0)))


async def test_acknowledge_stops_the_first_response_clock_only(time_env: WorkflowEnvironment, skipping: RunningWorker):
    late = await start_incident(skipping)
    prompt = await start_incident(skipping)
    await send(prompt, "acknowledge", agent="ann")
    await time_env.sleep(16 * MINUTE)
    late_state, prompt_state = await settled(late), await settled(prompt)
    assert late_state.sla_breaches == ["acknowledge"]
    overdue = [e for e in events_of(late_state, "line_notified") if e.data["kind"] == "acknowledge_overdue"]
    assert len(overdue) == 1 and close_to(overdue[0].at - late_state.opened_at, 15 * MINUTE)
    assert prompt_state.sla_breaches == [] and prompt_state.assignee == "ann"
    await time_env.sleep(45 * MINUTE)
    assert (await settled(prompt)).line == 2, "the line clock kept running after the acknowledgement"


async def test_manual_escalation_then_resolve_closes_a_routine_incident(
    time_env: WorkflowEnvironment, skipping: RunningWorker, sandboxes: Sandboxes
):
    handle = await start_incident(skipping, category="tariff_change")
    await send(handle, "acknowledge", agent="ann")
    await send(handle, "escalate", agent="ann", reason="needs billing rights")
    state = await settled(handle)
    assert escalation_times(state)[0][:3] == (1, 2, "manual") and state.assignee is None
    await send(handle, "resolve", agent="boris", resolution="tariff switched")
    result = await handle.result()
    assert result.status == "closed" and result.resolution == "tariff switched"
    customer = await sandboxes.notifications(ticket_id=result.ticket_id, recipient="customer")
    assert [n["kind"] for n in customer] == ["ticket_opened", "resolved"], "routine: no status updates"


async def test_status_updates_only_for_critical(time_env: WorkflowEnvironment, skipping: RunningWorker, sandboxes):
    critical = await start_incident(skipping, category="speed_drop")
    convenience = await start_incident(skipping, category="social_login")
    for handle in (critical, convenience):
        await send(handle, "acknowledge", agent="ann")
    await time_env.sleep(8 * HOUR)
    critical_state, convenience_state = await settled(critical), await settled(convenience)
    critical_kinds = [n["kind"] for n in await sandboxes.notifications(critical_state.ticket_id, "customer")]
    convenience_kinds = [n["kind"] for n in await sandboxes.notifications(convenience_state.ticket_id, "customer")]
    assert critical_kinds.count("status_update") >= 2 and "escalated" in critical_kinds
    assert convenience_kinds == ["ticket_opened"]


async def test_callback_after_a_day_and_a_bad_score_reopens_on_line_two(
    time_env: WorkflowEnvironment, skipping: RunningWorker, sandboxes: Sandboxes
):
    handle = await start_incident(skipping)
    await send(handle, "acknowledge", agent="ann")
    await send(handle, "resolve", agent="ann", resolution="port reset")
    state = await settled(handle)
    assert state.status == "resolved" and state.awaiting == "callback"
    await time_env.sleep(23 * HOUR)
    assert "feedback_requested" not in event_types(await settled(handle))
    await time_env.sleep(2 * HOUR)
    state = await settled(handle)
    asked = events_of(state, "feedback_requested")
    assert len(asked) == 1 and close_to(asked[0].at - events_of(state, "resolved")[0].at, 24 * HOUR)
    kinds = [n["kind"] for n in await sandboxes.notifications(state.ticket_id)]
    assert "feedback_request" in kinds and "callback_due" in kinds
    await send(handle, "feedback", score=1, comment="still slow")
    state = await settled(handle)
    assert (state.status, state.line, state.reopen_count) == ("open", 2, 1)
    await send(handle, "resolve", agent="boris", resolution="replaced the line card")
    await time_env.sleep(25 * HOUR)
    await send(handle, "feedback", score=5)
    result = await handle.result()
    assert result.status == "closed" and result.feedback is not None and result.feedback.score == 5


async def test_invalid_actions_are_recorded_and_the_workflow_keeps_working(
    time_env: WorkflowEnvironment, skipping: RunningWorker
):
    handle = await start_incident(skipping)
    await send(handle, "feedback", score=5)  # before resolution
    await send(handle, "acknowledge", agent="")  # empty agent name
    await handle.signal("add_note", "not an object")
    await handle.signal("add_note", {"agent": "ann", "text": "x" * 10_000})  # too long
    await handle.signal("escalate", {"agent": "ann", "reason": "r", "unknown_field": True})
    await handle.signal("feedback", {"score": "five"})
    await send(handle, "acknowledge", agent="ann")
    state = await settled(handle)
    rejected = events_of(state, "action_rejected")
    reasons = [(e.data["action"], e.data["reason"]) for e in rejected]
    assert len(rejected) == 6, reasons
    assert "after resolution" in reasons[0][1]
    assert reasons[1][0] == "acknowledge" and reasons[1][1].startswith("agent:")
    assert "JSON object" in reasons[2][1]
    assert reasons[3][1].startswith("text:") and "4000" in reasons[3][1]
    assert "unknown_field" in reasons[4][1]
    assert reasons[5][1].startswith("score:")
    assert state.assignee == "ann" and state.status == "open"
    await time_env.sleep(HOUR)
    assert (await settled(handle)).line == 2, "timers still run after rejected actions"


async def test_the_act_update_returns_the_verdict_synchronously(skipping: RunningWorker):
    handle = await start_incident(skipping)
    accepted = await handle.execute_update("act", args=["acknowledge", {"agent": "ann"}])
    assert accepted["accepted"] is True
    refused = await handle.execute_update("act", args=["reopen", {"by": "ann", "reason": "why not"}])
    assert refused["accepted"] is False and "open, not resolved" in refused["reason"]
    state = await state_of(handle)
    assert state.events[-1].type == "action_rejected" and state.events[-1].seq == refused["event_seq"]
    with pytest.raises(WorkflowUpdateFailedError):
        await handle.execute_update("no_such_update", args=[])


async def test_refund_is_retried_through_five_provider_failures_and_paid_once(
    time_env: WorkflowEnvironment, skipping: RunningWorker, sandboxes: Sandboxes
):
    await sandboxes.set_payment_faults(fail_first=5)
    handle = await start_incident(
        skipping,
        category="payment_not_refunded",
        refund={"amount": "1499.90", "currency": "RUB"},
    )
    state = await until(handle, lambda s: s.refund is not None and s.refund.status == "paid", skip=(time_env, MINUTE))
    assert state.refund is not None
    key = state.refund.idempotency_key
    assert (await sandboxes.attempts())[key] == 6
    ledger = await sandboxes.ledger(reference=state.ticket_id)
    assert [(e["amount"], e["kind"], e["idempotency_key"]) for e in ledger] == [("1499.90", "refund", key)]
    assert event_types(state).count("refund_succeeded") == 1


async def test_a_rejected_refund_becomes_a_line_two_task(
    time_env: WorkflowEnvironment, skipping: RunningWorker, sandboxes: Sandboxes
):
    await sandboxes.set_payment_faults(reject=True)
    handle = await start_incident(
        skipping, category="payment_not_refunded", refund={"amount": "300", "currency": "RUB"}
    )
    state = await until(handle, lambda s: s.refund is not None and s.refund.status == "failed")
    assert state.refund is not None
    assert "card_closed" in (state.refund.failure or "")
    assert (await sandboxes.attempts())[state.refund.idempotency_key] == 1, "business rejections are not retried"
    tasks = await sandboxes.notifications(state.ticket_id, "line_2")
    assert [n["kind"] for n in tasks] == ["refund_task"] and "card_closed" in tasks[0]["message"]
    # The card is replaced; line 2 retries (under a new key: the provider answers the refused one with its no for
    # good, see tests/test_payment_outage.py) and it is paid once.
    await sandboxes.set_payment_faults(reject=False)
    await send(handle, "retry_refund", agent="boris")
    state = await until(handle, lambda s: s.refund is not None and s.refund.status == "paid")
    assert len(await sandboxes.ledger(reference=state.ticket_id)) == 1


async def test_compensation_only_when_the_sla_was_breached(
    time_env: WorkflowEnvironment, skipping: RunningWorker, sandboxes: Sandboxes
):
    fast = await start_incident(skipping)
    slow = await start_incident(skipping)
    await send(fast, "resolve", agent="ann", resolution="fixed quickly")
    # Past line 1's hour, and not at 1h30m: line 2's own first-response timer falls due there, and the
    # time-skipping test server refuses a workflow task that cancels a timer which fired while the task ran
    # ("invalid history builder state for action"): the incident would stall.
    await time_env.sleep(80 * MINUTE)
    await send(slow, "resolve", agent="boris", resolution="fixed late")
    fast_state = await settled(fast)
    slow_state = await until(slow, lambda s: s.compensation is not None and s.compensation.status == "granted")
    assert fast_state.compensation is None and "compensation_granted" not in event_types(fast_state)
    assert slow_state.compensation is not None and slow_state.compensation.status == "granted"
    credits = [e for e in await sandboxes.ledger(reference=slow_state.ticket_id) if e["kind"] == "credit"]
    assert [(c["amount"], c["currency"]) for c in credits] == [("10.00", "RUB")]
    assert await sandboxes.ledger(reference=fast_state.ticket_id) == []


async def test_the_sla_clock_counts_from_the_given_opening_time_never_from_the_future(
    time_env: WorkflowEnvironment, skipping: RunningWorker
):
    """The intake opens incidents at its own clock (`opened_at`); a time from the future is not believed."""
    start = await time_env.get_current_time()
    earlier = await start_incident(skipping, category="connection_lost", opened_at=start - 10 * MINUTE)
    future = await start_incident(skipping, category="connection_lost", opened_at=start + DAY)
    opened_earlier = await until(earlier, lambda s: s.line == 1)
    opened_future = await until(future, lambda s: s.line == 1)
    assert opened_earlier.opened_at == start - 10 * MINUTE
    assert opened_earlier.expected_fix_by == start - 10 * MINUTE + HOUR
    assert start <= opened_future.opened_at < start + MINUTE

    await time_env.sleep(55 * MINUTE)  # past the earlier one's line-1 hour, not the other's
    assert (await until(earlier, lambda s: s.line == 2)).line == 2
    assert (await state_of(future)).line == 1


async def test_an_incident_replayed_for_every_task_and_query_lives_as_a_cached_one(
    time_env: WorkflowEnvironment, sandboxes: Sandboxes
):
    """A worker that caches nothing replays the whole history for every task and every query, and a replay
    skips the freezing of the state that a cached run does after every step: both must decide alike."""
    lives = []
    for cached in (100, 0):
        async with running_worker(time_env.client, sandboxes, max_cached_workflows=cached) as running:
            handle = await start_incident(running, category="connection_lost")
            await time_env.sleep(HOUR + MINUTE)
            escalated = await settled(handle)
            assert escalated.line == 2, f"cache {cached}: line 1's hour escalates"
            await send(handle, "acknowledge", agent="ann")
            await send(handle, "resolve", agent="ann", resolution="port reset")
            resolved = await settled(handle)
            assert resolved.status == "resolved" and resolved.line == 2
            await time_env.sleep(25 * HOUR)
            await send(handle, "feedback", score=5)
            closed = await handle.result()
            assert closed.status == "closed"
            lives.append([(e.type.value, e.by, e.data.get("to_line")) for e in closed.events])
    cached_life, replayed_life = lives
    assert replayed_life == cached_life
