"""The behaviour an incident switches on through `workflow.patched`, and the set a new incident opens with.

Each change to the incident's behaviour that a running incident would replay differently has a patch id; an
incident opened before the change asks `workflow.patched(id)` where the behaviour first matters and keeps
what the answer says. A new incident need not ask: its starter lists every id this code has in
`IncidentInput.features` (OPENING_FEATURES), which the start event records, so every replay sees the same
list. Asking costs a marker and a TemporalChangeVersion search-attribute upsert (a visibility write) per id,
eight history events of a critical lifecycle by issue 16's count.

A new patch id goes into OPENING_FEATURES too (tests/unit/test_opening_features.py checks that the
incident workflow asks for none that is missing), unless new incidents must ask it as old ones do.
"""

from __future__ import annotations

from workflows.domain.core import ANNOUNCE_ACKNOWLEDGEMENT, CUSTOMER_TIME, FOLLOW_THROUGH, RECONTACT_REOPENS
from workflows.domain.linking import OUTAGE_LINKS
from workflows.domain.money import AGENT_AUTHORITY, NEW_KEY_AFTER_LOOKUP

# message_customer arrived with the customer's locale; an incident opened before that refused it as unknown.
MESSAGE_CUSTOMER = "message-customer"
# A refund that names the charge it reverses claims the charge before anything is paid (one refund per charge,
# workflows/charge_workflow.py); no refund named a charge before, so no history replays differently.
CLAIM_CHARGES = "claim-charges"
# Publishes the NextDeadline search attribute; histories recorded before it replay without its upserts.
PUBLISH_NEXT_DEADLINE = "publish-next-deadline"
# Publishes the NotificationsFailed search attribute, likewise.
PUBLISH_NOTIFICATIONS_FAILED = "publish-notifications-failed"
# Publishes IncidentClosedAs (how it closed), likewise.
PUBLISH_CLOSED_AS = "publish-closed-as"
# Continue as new at once, carrying undelivered notifications, instead of waiting (up to days) for them;
# runs recorded before this waited, and replay that way.
CARRY_UNDELIVERED_NOTIFICATIONS = "carry-undelivered-notifications"
# Continue as new by the history's size too; runs recorded before this replay by its length only.
CONTINUE_BY_HISTORY_SIZE = "continue-by-history-size"
# A client names the policy and the worker resolves it; a client's own policy in the input is refused. Asked
# only of an input that carries a client's policy, so incidents started so before replay as they ran; never
# from the opening list (a client that sends its own policy is exactly who must be asked).
POLICY_BY_REFERENCE = "policy-by-reference"
# An incident counting working time asks the worker for its calendars' current data (a new holiday) when
# it wakes and last asked this long ago. Runs recorded before calendars existed never ask.
CHECK_CALENDARS = "check-calendars"

# The named policy is resolved by a local activity in the opening's own workflow task: one marker instead of
# an activity's three events and a second workflow task. Runs opened before resolved it with a regular activity
# and replay so. Only an opening that asks no `patched` may take it (the reason the first opening did not): a
# local activity's answer may come in the next workflow task, which broke the replay of the `patched` markers
# asked right after it; an incident opened with this feature opens with every other one of its code's too.
RESOLVE_POLICY_LOCALLY = "resolve-policy-locally"

# Everything a new incident does from its first moment (POLICY_BY_REFERENCE aside).
OPENING_FEATURES: tuple[str, ...] = (
    ANNOUNCE_ACKNOWLEDGEMENT,
    RECONTACT_REOPENS,
    FOLLOW_THROUGH,
    CUSTOMER_TIME,
    AGENT_AUTHORITY,
    NEW_KEY_AFTER_LOOKUP,
    OUTAGE_LINKS,
    MESSAGE_CUSTOMER,
    CLAIM_CHARGES,
    PUBLISH_NEXT_DEADLINE,
    PUBLISH_NOTIFICATIONS_FAILED,
    PUBLISH_CLOSED_AS,
    CARRY_UNDELIVERED_NOTIFICATIONS,
    CONTINUE_BY_HISTORY_SIZE,
    CHECK_CALENDARS,
    RESOLVE_POLICY_LOCALLY,
)
