"""Deliver notifications as signed JSON webhooks; each notification is delivered at least once,
and its id travels as `Idempotency-Key` so the receiver can drop repeats."""

from __future__ import annotations

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.signing import sign
from workflows.contracts import (
    NOTIFICATION_REJECTED,
    SEND_NOTIFICATIONS,
    DeliveryReport,
    Notification,
    NotificationBatch,
)


class NotificationActivities:
    def __init__(self, http: httpx.AsyncClient, notify_url: str, secret: bytes) -> None:
        self._http = http
        self._url = notify_url
        self._secret = secret

    @activity.defn(name=SEND_NOTIFICATIONS)
    async def send_notifications(self, batch: NotificationBatch) -> DeliveryReport:
        details = activity.info().heartbeat_details
        delivered: list[str] = list(details[0]) if details else []
        for notification in batch.notifications:
            if notification.id in delivered:
                continue
            await self.deliver(notification)
            delivered.append(notification.id)
            if not activity.info().is_local:
                activity.heartbeat(delivered)
        return DeliveryReport(delivered=delivered)

    async def deliver(self, notification: Notification) -> None:
        """POST one signed notification; raise retryable or final errors the way Temporal expects."""
        body = notification.model_dump_json().encode()
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": notification.id,
            **sign(self._secret, body),
        }
        try:
            response = await self._http.post(self._url, content=body, headers=headers)
        except httpx.HTTPError as error:
            raise ApplicationError(f"notification endpoint unreachable: {error!r}") from error
        if response.status_code in (408, 425, 429) or response.status_code >= 500:
            raise ApplicationError(f"notification endpoint answered {response.status_code}")
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
