"""Deliver notifications as signed JSON webhooks; each notification is delivered at least once,
and its id travels as `Idempotency-Key`, inside the signature, so the receiver can drop repeats.

A 401 or 403 means the receiver no longer accepts our secret (it was rotated there first): the secret is
read again from its source and the attempt fails retryably, so Temporal's retry signs with the new one
instead of the notification being recorded as failed."""

from __future__ import annotations

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.signing import SigningSecret, sign
from infra.customer_links import CustomerPages
from workflows.contracts import (
    NOTIFICATION_REJECTED,
    SEND_NOTIFICATIONS,
    DeliveryReport,
    Notification,
    NotificationBatch,
)
from workflows.domain.messages import ENGLISH, OPENING_MESSAGES, Message, language_of, render

OPENED_KIND = "ticket_opened"  # the customer's first message: its ticket number (workflows/domain/incident.py)

# Retryable (unlike NOTIFICATION_REJECTED): the receiver refused our signature, see the module's docstring.
NOTIFICATION_UNAUTHORIZED = "NotificationUnauthorized"


class NotificationActivities:
    def __init__(
        self,
        http: httpx.AsyncClient,
        notify_url: str,
        secret: bytes | SigningSecret,
        customer_pages: CustomerPages | None = None,
    ) -> None:
        self._http = http
        self._url = notify_url
        self._secret = secret if isinstance(secret, SigningSecret) else SigningSecret(value=secret)
        self._pages = customer_pages

    @activity.defn(name=SEND_NOTIFICATIONS)
    async def send_notifications(self, batch: NotificationBatch) -> DeliveryReport:
        details = activity.info().heartbeat_details
        delivered: list[str] = list(details[0]) if details else []
        for notification in batch.notifications:
            if notification.id in delivered:
                continue
            await self.deliver(self._with_page_link(notification))
            delivered.append(notification.id)
            if not activity.info().is_local:
                activity.heartbeat(delivered)
        return DeliveryReport(delivered=delivered)

    def _with_page_link(self, notification: Notification) -> Notification:
        """The customer's "ticket opened" message, with the link to their ticket's page added here, at delivery.

        The link is a bearer key to the customer's page: made from the desk's secret, which the workflow never
        holds, so it is added to what is sent, never to the incident's history. It is written in the language
        the message was (the notifier sees the text, not the incident)."""
        if self._pages is None or notification.recipient != "customer" or notification.kind != OPENED_KIND:
            return notification
        language = language_of(notification.message, OPENING_MESSAGES)
        url = self._pages.url(notification.ticket_id) if language is not None else None
        if url is None:
            return notification
        line = render(Message.TICKET_PAGE, {"ticket": notification.ticket_id, "url": url}, language or ENGLISH)
        return notification.model_copy(update={"message": f"{notification.message}\n{line}"})

    async def deliver(self, notification: Notification) -> None:
        """POST one signed notification; raise retryable or final errors the way Temporal expects."""
        body = notification.model_dump_json().encode()
        headers = {"Content-Type": "application/json", **sign(self._secret.current(), notification.id, body)}
        try:
            response = await self._http.post(self._url, content=body, headers=headers)
        except httpx.HTTPError as error:
            raise ApplicationError(f"notification endpoint unreachable: {error!r}") from error
        if response.status_code in (408, 425, 429) or response.status_code >= 500:
            raise ApplicationError(f"notification endpoint answered {response.status_code}")
        if response.status_code in (401, 403):
            # Our secret is not (or no longer) one the receiver accepts: read it again and let the retry use it.
            self._secret.reload()
            raise ApplicationError(
                f"notification endpoint refused our signature ({response.status_code} {response.text[:200]}); "
                "the secret was read again for the retry",
                type=NOTIFICATION_UNAUTHORIZED,
            )
        if response.status_code >= 400:
            raise ApplicationError(
                f"notification endpoint refused {notification.id}: {response.status_code} {response.text[:200]}",
                type=NOTIFICATION_REJECTED,
                non_retryable=True,
            )
        if activity.in_activity():
            activity.logger.info(
                "notification delivered",
                extra={"notification": notification.id, "recipient": notification.recipient, "kind": notification.kind},
            )
