"""What the workflow sends to its activities and gets back.

Kept apart from the activity code (which imports httpx) so the workflow can
import these models through the sandbox without pulling in any I/O library.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import BaseModel
from temporalio.common import RetryPolicy

from workflows.domain.actions import CustomerContact
from workflows.domain.calendars import Calendar
from workflows.domain.models import Money

SEND_NOTIFICATIONS = "send_notifications"
# How every workflow retries sending notifications: the receiver drops repeats by notification id.
NOTIFY_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=5))
MAKE_PAYMENT = "make_payment"
# Asks the provider's ledger what was paid under an idempotency key.
FIND_PAYMENT = "find_payment"
# Claims a charge for the incident refunding it (one refund per charge, see workflows/charge_workflow.py).
CLAIM_CHARGE = "claim_charge"
CHARGE_REFUND_WORKFLOW_TYPE = "ChargeRefund"
# Resolves a policy reference against the policies the worker knows.
RESOLVE_POLICY = "resolve_policy"
AUDIT_INCIDENTS = "audit_incidents"
# The intake's calls on incidents it does not own as children (a workflow cannot send an update itself).
DELIVER_CONTACT = "deliver_contact"
REQUEST_KEY_OF = "request_key_of"
IS_RUNNING = "incident_is_running"
# The worker's current data of the calendars an incident counts working time in (a new holiday).
CURRENT_CALENDARS = "current_calendars"
# The refusal code of a delivery to an incident whose execution has ended (or never existed).
INCIDENT_GONE = "gone"

# Error types an activity raises for outcomes that retrying cannot change.
PAYMENT_REJECTED = "PaymentRejected"
NOTIFICATION_REJECTED = "NotificationRejected"
# An incident (or an open through the intake) refused for its policy: not one the worker knows, or not named.
POLICY_REFUSED = "PolicyRefused"

Recipient = Literal["customer", "line_1", "line_2", "line_3", "sre"]


class Notification(BaseModel):
    id: str
    ticket_id: str
    recipient: Recipient
    kind: str
    message: str
    contact: str | None = None


class NotificationBatch(BaseModel):
    notifications: list[Notification]


class DeliveryReport(BaseModel):
    delivered: list[str]


class PaymentRequest(BaseModel):
    kind: Literal["refund", "credit"]
    ticket_id: str
    customer_id: str
    idempotency_key: str
    money: Money
    charge: str | None = None


class PaymentReceipt(BaseModel):
    payment_id: str
    status: str
    replayed: bool = False


class PaymentLookup(BaseModel):
    """What the provider's ledger holds under one idempotency key."""

    idempotency_key: str
    payment: PaymentReceipt | None = None


class ChargeClaim(BaseModel):
    """A charge and the incident that refunds it: the input of the charge's own workflow, `refund-<charge>`."""

    charge: str
    ticket_id: str
    money: Money


def charge_workflow_id(charge: str) -> str:
    return f"refund-{charge}"


class AuditReport(BaseModel):
    findings: int
    tickets: list[str]
    alerted: bool
    # Closed incidents, and those of them the customer's self-help closed without an agent (seed 004, level 1).
    closed: int = 0
    self_resolved: int = 0


class ContactDelivery(BaseModel):
    ticket_id: str
    contact: CustomerContact


class CalendarCheck(BaseModel):
    """The calendars an incident holds, by name, each named by its digest (`Calendar.digest`)."""

    digests: dict[str, str]


class CalendarUpdate(BaseModel):
    """The worker's calendars whose data differ from the incident's (none: nothing changed)."""

    calendars: dict[str, Calendar] = {}
