"""The REST use cases: a user's notifications and their preferences.

Who may: a user lists and marks their own notifications (an ADMIN may list
anyone's; marking read is the recipient's alone, and another's notification
is "not found", so ids cannot be probed). Preferences are read by the user or
an ADMIN and changed by the user alone: they decide how they are woken up.
"""

from dataclasses import replace

from warmhouse.notification.v1 import notification_pb2

from services.notification.preferences import DEFAULTS, preferences_message, validated
from services.notification.records import Contact, DeliveryRecord, NotificationRecord, Preferences
from services.notification.repository import NotificationRepository
from services.notification.scheduling import zone_of
from services.runtime.auth import Caller
from services.runtime.clock import Clock, utc_now
from services.runtime.errors import NotFound, PermissionDenied
from services.runtime.pagination import Cursor, PageTokens, page_size
from services.runtime.request import parse_uuid
from services.runtime.timestamps import timestamp
from services.runtime.unit_of_work import UnitOfWork


def notification_not_found() -> NotFound:
    return NotFound("NOTIFICATION_NOT_FOUND", "no such notification")


def delivery_message(delivery: DeliveryRecord) -> notification_pb2.Delivery:
    message = notification_pb2.Delivery(
        channel=notification_pb2.NotificationChannel.Value(delivery.channel),
        status=notification_pb2.DeliveryStatus.Value(delivery.status),
        failure_reason=delivery.failure_reason,
        update_time=timestamp(delivery.updated_at),
        attempts=delivery.attempts,
        digest=delivery.digest,
    )
    if delivery.status == "PENDING":
        message.next_attempt_time.CopyFrom(timestamp(delivery.next_attempt_at))
    return message


def notification_message(notification: NotificationRecord) -> notification_pb2.Notification:
    message = notification_pb2.Notification(
        notification_id=str(notification.id),
        user_id=str(notification.user_id),
        category=notification_pb2.NotificationCategory.Value(notification.category),
        priority=notification_pb2.NotificationPriority.Value(notification.priority),
        title=notification.title,
        body=notification.body,
        read=notification.read_at is not None,
        deliveries=[delivery_message(d) for d in notification.deliveries],
        create_time=timestamp(notification.created_at),
    )
    if notification.read_at is not None:
        message.read_time.CopyFrom(timestamp(notification.read_at))
    return message


class NotificationHandlers:
    def __init__(
        self,
        uow: UnitOfWork[NotificationRepository],
        page_tokens: PageTokens,
        clock: Clock = utc_now,
    ) -> None:
        self._uow = uow
        self._page_tokens = page_tokens
        self._clock = clock

    async def list_notifications(
        self,
        caller: Caller,
        user_id: str,
        unread_only: bool,
        requested_size: int,
        page_token: str,
    ) -> tuple[list[NotificationRecord], str]:
        """The user's notifications, newest first (the caller's unless an ADMIN names one)."""
        owner = parse_uuid(user_id, "userId") if user_id else caller.user_uuid
        if str(owner) != caller.user_id and not caller.is_admin:
            raise PermissionDenied("NOT_OWNER", "you may only list your own notifications")
        limit = page_size(requested_size)
        listing = f"notifications:{owner}:{'unread' if unread_only else 'all'}"
        cursor = self._page_tokens.decode(page_token, listing=listing)
        async with self._uow.read() as repos:
            rows = await repos.notifications(owner, unread_only, cursor, limit + 1)
        return self._page_tokens.page(
            rows, limit, lambda n: Cursor(n.created_at, n.id), listing=listing
        )

    async def mark_read(self, caller: Caller, notification_id: str) -> NotificationRecord:
        """Mark the caller's notification read; again is a no-op (its read time stays)."""
        notification_uuid = parse_uuid(notification_id, "notificationId")
        async with self._uow.transaction() as tx:
            marked = await tx.repos.mark_read(notification_uuid, caller.user_uuid, self._clock())
        if marked is None:
            raise notification_not_found()
        return marked

    async def get_preferences(
        self, caller: Caller, user_id: str
    ) -> notification_pb2.NotificationPreferences:
        owner = parse_uuid(user_id, "userId")
        caller.require_self_or_admin(str(owner))
        async with self._uow.read() as repos:
            preferences = await repos.preferences(owner) or DEFAULTS
            contact = await repos.contact(owner)
        return preferences_message(str(owner), preferences, self._zone_name(contact))

    async def update_preferences(
        self, caller: Caller, user_id: str, requested: notification_pb2.NotificationPreferences
    ) -> notification_pb2.NotificationPreferences:
        """Replace the user's preferences: the user themself only, not even an ADMIN."""
        owner = parse_uuid(user_id, "userId")
        if str(owner) != caller.user_id:
            raise PermissionDenied(
                "NOT_OWNER", "only the user themself may change their notification preferences"
            )
        preferences: Preferences = validated(requested)
        async with self._uow.transaction() as tx:
            preferences = replace(preferences, updated_at=self._clock())
            await tx.repos.save_preferences(owner, preferences)
            contact = await tx.repos.contact(owner)
        return preferences_message(str(owner), preferences, self._zone_name(contact))

    @staticmethod
    def _zone_name(contact: Contact | None) -> str:
        """The zone quiet hours and the digest are read in (UTC when unknown)."""
        return zone_of(contact.time_zone if contact is not None else "").key
