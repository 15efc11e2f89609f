"""The projection of Space's events: which spaces exist, who belongs to which home.

One durable consumer per event type. Membership rows are version-gated: each
event carries its home's membership version, so a redelivered or late event
(an older version) changes nothing. The runtime's EventConsumer also records
each event id, so a redelivery has no second effect at all.
"""

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from warmhouse.space.v1 import space_pb2

from services.device import domain
from services.device.handlers import log_entry, retired_event
from services.device.repository import sql_repositories
from services.runtime.clock import utc_now
from services.runtime.database import Connection
from services.runtime.messaging import EventContext, EventT, Handler, Subscription
from services.runtime.outbox import add_event
from services.runtime.space_roles import role_named

log = logging.getLogger(__name__)


def _home_of(space_id: str, parent_space_id: str) -> tuple[uuid.UUID, uuid.UUID]:
    space = uuid.UUID(space_id)
    return space, uuid.UUID(parent_space_id) if parent_space_id else space


def _expiry(event_time: Timestamp, present: bool) -> datetime | None:
    return event_time.ToDatetime(tzinfo=UTC) if present else None


async def on_space_created(
    connection: Connection, event: space_pb2.SpaceCreated, context: EventContext
) -> None:
    space, home = _home_of(event.space_id, event.parent_space_id)
    await sql_repositories(connection).spaces.remember_space(space, home)


async def retire_devices_of_deleted_space(
    connection: Connection, event: space_pb2.SpaceDeleted, now: datetime
) -> int:
    """Mark the space deleted and retire every device still in it: one that
    was registered or moved there while the deletion was under way."""
    space, home = _home_of(event.space_id, event.parent_space_id)
    repos = sql_repositories(connection)
    # Taken first: a registration holding the space's row share-locked
    # commits before this goes on, so its device is among those retired.
    await repos.spaces.mark_deleted(space, home)
    retired = await repos.devices.retire_in_space(space, now)
    for device in retired:
        await repos.logs.add(
            log_entry(device.id, domain.DEVICE_CHANGED, domain.RETIRED_WITH_SPACE, now)
        )
        await add_event(connection, retired_event(device, now))
    if retired:
        log.info("retired %d devices of a deleted space", len(retired), extra={"space": str(space)})
    return len(retired)


async def on_space_deleted(
    connection: Connection, event: space_pb2.SpaceDeleted, context: EventContext
) -> None:
    await retire_devices_of_deleted_space(connection, event, utc_now())


def _granted(value: int, context: EventContext) -> str | None:
    role = role_named(value)
    if role is None:
        # A role this service does not know: granting nothing is the safe reading.
        log.warning("membership event %s names an unknown role", context.event_id)
    return role


async def on_member_added(
    connection: Connection, event: space_pb2.SpaceMemberAdded, context: EventContext
) -> None:
    await _apply(
        connection,
        event.space_id,
        event.user_id,
        _granted(event.role, context),
        _expiry(event.expire_time, event.HasField("expire_time")),
        event.version,
    )


async def on_member_role_changed(
    connection: Connection, event: space_pb2.SpaceMemberRoleChanged, context: EventContext
) -> None:
    await _apply(
        connection,
        event.space_id,
        event.user_id,
        _granted(event.new_role, context),
        _expiry(event.expire_time, event.HasField("expire_time")),
        event.version,
    )


async def on_member_removed(
    connection: Connection, event: space_pb2.SpaceMemberRemoved, context: EventContext
) -> None:
    await _apply(connection, event.space_id, event.user_id, None, None, event.version)


async def on_member_expired(
    connection: Connection, event: space_pb2.SpaceMemberExpired, context: EventContext
) -> None:
    await _apply(connection, event.space_id, event.user_id, None, None, event.version)


async def _apply(
    connection: Connection,
    home_id: str,
    user_id: str,
    role: str | None,
    expire_at: datetime | None,
    version: int,
) -> None:
    """Record the membership (role None: ended) unless a newer version is recorded."""
    applied = await sql_repositories(connection).spaces.apply_membership(
        uuid.UUID(home_id), uuid.UUID(user_id), role, expire_at, version
    )
    if not applied:
        log.info("ignored a membership event not newer than the one applied")


def _subscription(
    durable: str, event_type: type[EventT], handle: Handler[EventT]
) -> Subscription[EventT]:
    return Subscription.of_event(durable, "space", event_type, handle)


def subscriptions() -> list[Subscription[Any]]:
    """One durable consumer per event type of Space's this service follows."""
    return [
        _subscription("device-space-created", space_pb2.SpaceCreated, on_space_created),
        _subscription("device-space-deleted", space_pb2.SpaceDeleted, on_space_deleted),
        _subscription("device-space-member-added", space_pb2.SpaceMemberAdded, on_member_added),
        _subscription(
            "device-space-member-role-changed",
            space_pb2.SpaceMemberRoleChanged,
            on_member_role_changed,
        ),
        _subscription(
            "device-space-member-removed", space_pb2.SpaceMemberRemoved, on_member_removed
        ),
        _subscription(
            "device-space-member-expired", space_pb2.SpaceMemberExpired, on_member_expired
        ),
    ]
