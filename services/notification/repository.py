"""Notification's queries on PostgreSQL, compiled once."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text

from services.notification.records import (
    CategoryChoice,
    Contact,
    DeliveryRecord,
    NotificationRecord,
    Preferences,
)
from services.runtime.database import Connection, Query, Record
from services.runtime.pagination import Cursor

# Contacts: an event older than what is stored changes nothing.
_UPSERT_CONTACT = Query(
    text(
        "INSERT INTO contacts (user_id, email, phone, locale, time_zone, active, updated_at)"
        " VALUES (:user_id, :email, :phone, :locale, :time_zone, :active, :updated_at)"
        " ON CONFLICT (user_id) DO UPDATE SET email = excluded.email, phone = excluded.phone,"
        " locale = excluded.locale, time_zone = excluded.time_zone, active = excluded.active,"
        " updated_at = excluded.updated_at WHERE contacts.updated_at <= excluded.updated_at"
        " RETURNING user_id"
    )
)
_DEACTIVATE = Query(
    text(
        "INSERT INTO contacts (user_id, active, updated_at) VALUES (:user_id, false, :updated_at)"
        " ON CONFLICT (user_id) DO UPDATE SET active = false, updated_at = excluded.updated_at"
        " WHERE contacts.updated_at <= excluded.updated_at RETURNING user_id"
    )
)
_CONTACT = Query(text("SELECT * FROM contacts WHERE user_id = :user_id"))
_PREFERENCES = Query(text("SELECT * FROM preferences WHERE user_id = :user_id"))
_SAVE_PREFERENCES = Query(
    text(
        "INSERT INTO preferences (user_id, categories, quiet_start, quiet_end, digest_time,"
        " updated_at) VALUES (:user_id, :categories, :quiet_start, :quiet_end, :digest_time,"
        " :updated_at) ON CONFLICT (user_id) DO UPDATE SET categories = excluded.categories,"
        " quiet_start = excluded.quiet_start, quiet_end = excluded.quiet_end,"
        " digest_time = excluded.digest_time, updated_at = excluded.updated_at"
    )
)
# Notifications: once per (source event, recipient).
_ADD_NOTIFICATION = Query(
    text(
        "INSERT INTO notifications (id, user_id, category, priority, title, body,"
        " source_event_id, created_at) VALUES (:id, :user_id, :category, :priority, :title,"
        " :body, :source_event_id, :created_at)"
        " ON CONFLICT ON CONSTRAINT notifications_once_per_event DO NOTHING RETURNING id"
    )
)
_ADD_DELIVERY = Query(
    text(
        "INSERT INTO deliveries (id, notification_id, user_id, channel, status, digest, critical,"
        " attempts, next_attempt_at, failure_reason, updated_at) VALUES (:id, :notification_id,"
        " :user_id, :channel, 'PENDING', :digest, :critical, 0, :next_attempt_at, '',"
        " :updated_at) ON CONFLICT ON CONSTRAINT deliveries_once_per_channel DO NOTHING"
    )
)
_DELIVERIES_OF = Query(
    text(
        "SELECT id, notification_id, user_id, channel, status, digest, attempts,"
        " next_attempt_at, failure_reason, updated_at FROM deliveries"
        " WHERE notification_id = ANY(:ids) ORDER BY channel"
    )
)
_MARK_READ = Query(
    text(
        "UPDATE notifications SET read_at = COALESCE(read_at, :now)"
        " WHERE id = :id AND user_id = :user_id RETURNING *"
    )
)


def _listing(*, unread: bool, after: bool) -> Query:
    conditions = [
        "user_id = :user_id",
        *(["read_at IS NULL"] if unread else []),
        *(["(created_at, id) < (:created_at, :id)"] if after else []),
    ]
    return Query(
        text(
            f"SELECT * FROM notifications WHERE {' AND '.join(conditions)}"
            " ORDER BY created_at DESC, id DESC LIMIT :limit"
        )
    )


_LISTINGS = {
    (unread, after): _listing(unread=unread, after=after)
    for unread in (False, True)
    for after in (False, True)
}

# Dangerous-reading episodes, locked per (device, hazard) while decided.
_ENSURE_EPISODE = Query(
    text(
        "INSERT INTO hazard_episodes (device_id, hazard) VALUES (:device_id, :hazard)"
        " ON CONFLICT DO NOTHING"
    )
)
_LOCK_EPISODE = Query(
    text(
        "SELECT opened_at, cleared_at FROM hazard_episodes"
        " WHERE device_id = :device_id AND hazard = :hazard FOR UPDATE"
    )
)
_SAVE_EPISODE = Query(
    text(
        "UPDATE hazard_episodes SET opened_at = :opened_at, cleared_at = :cleared_at"
        " WHERE device_id = :device_id AND hazard = :hazard"
    )
)

# The dispatcher's queue. A claim takes due, unleased deliveries (CRITICAL
# first), counts the attempt and leases them, in one statement. Its ORDER BY
# is the deliveries_due index's order (migration): read in order, no sort.
CLAIM_SQL = (
    "WITH due AS (SELECT id FROM deliveries WHERE status = 'PENDING'"
    " AND next_attempt_at <= :now AND (claimed_until IS NULL OR claimed_until <= :now)"
    " ORDER BY critical DESC, next_attempt_at LIMIT :limit FOR UPDATE SKIP LOCKED)"
    " UPDATE deliveries d SET attempts = d.attempts + 1, claimed_until = :lease,"
    " claim_id = :claim_id, updated_at = :now FROM due WHERE d.id = due.id RETURNING d.id"
)
_CLAIM = Query(text(CLAIM_SQL))
# The rest of one user's due digest for one channel, to go in the same message.
_CLAIM_DIGEST = Query(
    text(
        "WITH due AS (SELECT id FROM deliveries WHERE status = 'PENDING' AND digest"
        " AND user_id = :user_id AND channel = :channel AND next_attempt_at <= :now"
        " AND (claimed_until IS NULL OR claimed_until <= :now) FOR UPDATE SKIP LOCKED)"
        " UPDATE deliveries d SET attempts = d.attempts + 1, claimed_until = :lease,"
        " claim_id = :claim_id, updated_at = :now FROM due WHERE d.id = due.id RETURNING d.id"
    )
)
_CLAIMED = Query(
    text(
        "SELECT d.id, d.notification_id, d.user_id, d.channel, d.digest, d.attempts,"
        " n.category, n.title, n.body, n.created_at, c.email, c.phone, c.locale, c.active"
        " FROM deliveries d JOIN notifications n ON n.id = d.notification_id"
        " LEFT JOIN contacts c ON c.user_id = d.user_id"
        " WHERE d.id = ANY(:ids) ORDER BY n.created_at, d.id"
    )
)
# Outcomes: recorded only by the lease's holder (claim_id), once.
_SENT = Query(
    text(
        "UPDATE deliveries SET status = 'SENT', claimed_until = NULL, claim_id = NULL,"
        " failure_reason = '', updated_at = :now"
        " WHERE id = :id AND claim_id = :claim_id AND status = 'PENDING' RETURNING id"
    )
)
_RETRY = Query(
    text(
        "UPDATE deliveries SET next_attempt_at = :next_attempt_at, claimed_until = NULL,"
        " claim_id = NULL, failure_reason = :reason, updated_at = :now"
        " WHERE id = :id AND claim_id = :claim_id AND status = 'PENDING' RETURNING id"
    )
)
# Waiting for the user's contact details: due again later, and the attempt
# the claim counted is given back.
_WAIT_FOR_CONTACT = Query(
    text(
        "UPDATE deliveries SET next_attempt_at = :next_attempt_at, claimed_until = NULL,"
        " claim_id = NULL, attempts = GREATEST(attempts - 1, 0), failure_reason = :reason,"
        " updated_at = :now"
        " WHERE id = :id AND claim_id = :claim_id AND status = 'PENDING' RETURNING id"
    )
)
_RELEASE_WAITING = Query(
    text(
        "UPDATE deliveries SET next_attempt_at = :now"
        " WHERE user_id = :user_id AND status = 'PENDING' AND claim_id IS NULL"
        " AND failure_reason = :reason AND next_attempt_at > :now RETURNING id"
    )
)
_FAILED = Query(
    text(
        "UPDATE deliveries SET status = 'FAILED', claimed_until = NULL, claim_id = NULL,"
        " failure_reason = :reason, updated_at = :now"
        " WHERE id = :id AND claim_id = :claim_id AND status = 'PENDING' RETURNING id"
    )
)


@dataclass(frozen=True)
class Episode:
    opened_at: datetime | None
    cleared_at: datetime | None


@dataclass(frozen=True)
class Reach:
    """Where a user is reached at send time."""

    email: str
    phone: str
    locale: str
    active: bool


@dataclass(frozen=True)
class ClaimedDelivery:
    """A delivery a dispatcher holds the lease of, with what it needs to send it."""

    id: uuid.UUID
    notification_id: uuid.UUID
    user_id: uuid.UUID
    channel: str
    digest: bool
    # Including the one under way.
    attempts: int
    category: str
    title: str
    body: str
    created_at: datetime
    # None: the user's contact details have not arrived yet.
    reach: Reach | None


def _contact(row: Record) -> Contact:
    return Contact(
        user_id=row["user_id"],
        email=row["email"],
        phone=row["phone"],
        locale=row["locale"],
        time_zone=row["time_zone"],
        active=row["active"],
        updated_at=row["updated_at"],
    )


def _preferences(row: Record) -> Preferences:
    categories = {
        category: CategoryChoice(tuple(choice["channels"]), bool(choice["digest"]))
        for category, choice in row["categories"].items()
    }
    return Preferences(
        categories, row["quiet_start"], row["quiet_end"], row["digest_time"], row["updated_at"]
    )


def _delivery(row: Record) -> DeliveryRecord:
    return DeliveryRecord(
        id=row["id"],
        notification_id=row["notification_id"],
        user_id=row["user_id"],
        channel=row["channel"],
        status=row["status"],
        digest=row["digest"],
        attempts=row["attempts"],
        next_attempt_at=row["next_attempt_at"],
        failure_reason=row["failure_reason"],
        updated_at=row["updated_at"],
    )


def _notification(row: Record, deliveries: Sequence[DeliveryRecord] = ()) -> NotificationRecord:
    return NotificationRecord(
        id=row["id"],
        user_id=row["user_id"],
        category=row["category"],
        priority=row["priority"],
        title=row["title"],
        body=row["body"],
        source_event_id=row["source_event_id"],
        created_at=row["created_at"],
        read_at=row["read_at"],
        deliveries=tuple(deliveries),
    )


class NotificationRepository:
    """Every query of the service, on one connection (and its transaction)."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    # Contacts.

    async def save_contact(self, contact: Contact) -> bool:
        """Store what a User event says; False when a newer event is already stored."""
        row = await self._connection.fetchval(
            _UPSERT_CONTACT,
            user_id=contact.user_id,
            email=contact.email,
            phone=contact.phone,
            locale=contact.locale,
            time_zone=contact.time_zone,
            active=contact.active,
            updated_at=contact.updated_at,
        )
        return row is not None

    async def deactivate(self, user_id: uuid.UUID, at: datetime) -> bool:
        row = await self._connection.fetchval(_DEACTIVATE, user_id=user_id, updated_at=at)
        return row is not None

    async def contact(self, user_id: uuid.UUID) -> Contact | None:
        row = await self._connection.fetchrow(_CONTACT, user_id=user_id)
        return _contact(row) if row is not None else None

    # Preferences.

    async def preferences(self, user_id: uuid.UUID) -> Preferences | None:
        row = await self._connection.fetchrow(_PREFERENCES, user_id=user_id)
        return _preferences(row) if row is not None else None

    async def save_preferences(self, user_id: uuid.UUID, preferences: Preferences) -> None:
        await self._connection.execute(
            _SAVE_PREFERENCES,
            user_id=user_id,
            categories={
                category: {"channels": list(choice.channels), "digest": choice.digest}
                for category, choice in preferences.categories.items()
            },
            quiet_start=preferences.quiet_start,
            quiet_end=preferences.quiet_end,
            digest_time=preferences.digest_time,
            updated_at=preferences.updated_at,
        )

    # Notifications and their deliveries.

    async def add_notification(
        self, notification: NotificationRecord, critical: bool = False
    ) -> bool:
        """Store it with its deliveries; False (nothing stored) when this event already
        made one for this user."""
        added = await self._connection.fetchval(
            _ADD_NOTIFICATION,
            id=notification.id,
            user_id=notification.user_id,
            category=notification.category,
            priority=notification.priority,
            title=notification.title,
            body=notification.body,
            source_event_id=notification.source_event_id,
            created_at=notification.created_at,
        )
        if added is None:
            return False
        for delivery in notification.deliveries:
            await self._connection.execute(
                _ADD_DELIVERY,
                id=delivery.id,
                notification_id=notification.id,
                user_id=notification.user_id,
                channel=delivery.channel,
                digest=delivery.digest,
                critical=critical,
                next_attempt_at=delivery.next_attempt_at,
                updated_at=delivery.updated_at,
            )
        return True

    async def notifications(
        self, user_id: uuid.UUID, unread_only: bool, after: Cursor | None, limit: int
    ) -> list[NotificationRecord]:
        """A page of the user's notifications, newest first, each with its deliveries."""
        params: dict[str, Any] = {"user_id": user_id, "limit": limit}
        if after is not None:
            params["created_at"], params["id"] = after.created_at, after.id
        rows = await self._connection.fetch(_LISTINGS[unread_only, after is not None], **params)
        deliveries = await self._deliveries_of([row["id"] for row in rows])
        return [_notification(row, deliveries.get(row["id"], ())) for row in rows]

    async def _deliveries_of(self, ids: list[uuid.UUID]) -> dict[uuid.UUID, list[DeliveryRecord]]:
        found: dict[uuid.UUID, list[DeliveryRecord]] = {}
        if ids:
            for row in await self._connection.fetch(_DELIVERIES_OF, ids=ids):
                found.setdefault(row["notification_id"], []).append(_delivery(row))
        return found

    async def mark_read(
        self, notification_id: uuid.UUID, user_id: uuid.UUID, now: datetime
    ) -> NotificationRecord | None:
        """The user's notification, read (since `now` unless it was already); None if
        the user has no such notification."""
        row = await self._connection.fetchrow(
            _MARK_READ, id=notification_id, user_id=user_id, now=now
        )
        if row is None:
            return None
        deliveries = await self._deliveries_of([notification_id])
        return _notification(row, deliveries.get(notification_id, ()))

    # Dangerous-reading episodes.

    async def lock_episode(self, device_id: uuid.UUID, hazard: str) -> Episode:
        """The (device, hazard) episode, locked until the transaction ends."""
        await self._connection.execute(_ENSURE_EPISODE, device_id=device_id, hazard=hazard)
        row = await self._connection.fetchrow(_LOCK_EPISODE, device_id=device_id, hazard=hazard)
        assert row is not None
        return Episode(row["opened_at"], row["cleared_at"])

    async def save_episode(self, device_id: uuid.UUID, hazard: str, episode: Episode) -> None:
        await self._connection.execute(
            _SAVE_EPISODE,
            device_id=device_id,
            hazard=hazard,
            opened_at=episode.opened_at,
            cleared_at=episode.cleared_at,
        )

    # The dispatcher's queue.

    async def claim_due(
        self, now: datetime, lease_until: datetime, claim_id: uuid.UUID, limit: int
    ) -> list[ClaimedDelivery]:
        """Lease up to `limit` due deliveries (and, for any digest among them, the rest
        of that user's digest on that channel), counting an attempt on each."""
        lease = {"now": now, "lease": lease_until, "claim_id": claim_id}
        ids = [row["id"] for row in await self._connection.fetch(_CLAIM, limit=limit, **lease)]
        if not ids:
            return []
        claimed = await self._claimed(ids)
        for user_id, channel in {(d.user_id, d.channel) for d in claimed if d.digest}:
            rows = await self._connection.fetch(
                _CLAIM_DIGEST, user_id=user_id, channel=channel, **lease
            )
            if rows:
                claimed += await self._claimed([row["id"] for row in rows])
        return claimed

    async def _claimed(self, ids: list[uuid.UUID]) -> list[ClaimedDelivery]:
        rows = await self._connection.fetch(_CLAIMED, ids=ids)
        return [
            ClaimedDelivery(
                id=row["id"],
                notification_id=row["notification_id"],
                user_id=row["user_id"],
                channel=row["channel"],
                digest=row["digest"],
                attempts=row["attempts"],
                category=row["category"],
                title=row["title"],
                body=row["body"],
                created_at=row["created_at"],
                reach=(
                    None
                    if row["active"] is None
                    else Reach(row["email"], row["phone"], row["locale"], row["active"])
                ),
            )
            for row in rows
        ]

    async def mark_sent(self, delivery_id: uuid.UUID, claim_id: uuid.UUID, now: datetime) -> bool:
        row = await self._connection.fetchval(_SENT, id=delivery_id, claim_id=claim_id, now=now)
        return row is not None

    async def retry_later(
        self,
        delivery_id: uuid.UUID,
        claim_id: uuid.UUID,
        next_attempt_at: datetime,
        reason: str,
        now: datetime,
    ) -> bool:
        row = await self._connection.fetchval(
            _RETRY,
            id=delivery_id,
            claim_id=claim_id,
            next_attempt_at=next_attempt_at,
            reason=reason,
            now=now,
        )
        return row is not None

    async def wait_for_contact(
        self,
        delivery_id: uuid.UUID,
        claim_id: uuid.UUID,
        next_attempt_at: datetime,
        reason: str,
        now: datetime,
    ) -> bool:
        """As retry_later, but this try does not count as an attempt."""
        row = await self._connection.fetchval(
            _WAIT_FOR_CONTACT,
            id=delivery_id,
            claim_id=claim_id,
            next_attempt_at=next_attempt_at,
            reason=reason,
            now=now,
        )
        return row is not None

    async def release_waiting(self, user_id: uuid.UUID, reason: str, now: datetime) -> int:
        """Make the user's deliveries that wait for `reason` due now; how many."""
        rows = await self._connection.fetch(
            _RELEASE_WAITING, user_id=user_id, reason=reason, now=now
        )
        return len(rows)

    async def mark_failed(
        self, delivery_id: uuid.UUID, claim_id: uuid.UUID, reason: str, now: datetime
    ) -> bool:
        row = await self._connection.fetchval(
            _FAILED, id=delivery_id, claim_id=claim_id, reason=reason, now=now
        )
        return row is not None
