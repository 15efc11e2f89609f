"""Which homes, rooms and devices exist, their names, and who belongs where.

Services that talk to people about their homes (Notification tells every
member of a home about its gas alarm, Support opens the alarm's ticket for
its owner) keep this copy of Space's and Device's data, fed by their events,
rather than calling them for every event they handle. Membership rows are
version-gated like the Device service's own projection; names and devices are
gated by event time, so a late or redelivered event changes nothing.

A service opts in with `ServiceDefinition(extra_migrations=(MIGRATIONS,),
consumes_from=(*CONSUMES_FROM, ...))` and runs `consumers(...)` as workers.
"""

import asyncio
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from nats.js import JetStreamContext
from sqlalchemy import text
from warmhouse.device.v1 import device_pb2
from warmhouse.space.v1 import space_pb2

from services.runtime.database import Connection, Database, Query
from services.runtime.messaging import (
    EventConsumer,
    EventContext,
    EventRoute,
    EventT,
    Handler,
    Subscription,
)
from services.runtime.outbox import OutboxRelay
from services.runtime.space_roles import OWNER, role_named
from services.runtime.timestamps import event_time

log = logging.getLogger(__name__)
MIGRATIONS = ("home-directory", Path(__file__).parent / "migrations" / "home_directory")
CONSUMES_FROM = ("space", "device")


@dataclass(frozen=True)
class Member:
    user_id: uuid.UUID
    role: str


@dataclass(frozen=True)
class DevicePlace:
    """A device and where it is; names are "" until their events arrive."""

    device_id: uuid.UUID
    device_name: str
    space_id: uuid.UUID
    space_name: str
    home_id: uuid.UUID
    home_name: str


# A space never seen is taken for a home: a home's id is its own home's.
_HOME_OF = "COALESCE((SELECT home_id FROM directory_spaces WHERE space_id = :space_id), :space_id)"
_MEMBERS = Query(
    text(
        "SELECT user_id, role FROM directory_members"
        f" WHERE home_id = {_HOME_OF} AND role IS NOT NULL"
        " AND (expire_at IS NULL OR expire_at > :now)"
        " AND NOT EXISTS (SELECT 1 FROM directory_spaces s"
        f"  WHERE s.space_id = {_HOME_OF} AND s.deleted)"
        " ORDER BY joined_at, user_id"
    )
)
_DEVICE_PLACE = Query(
    text(
        "SELECT d.device_id, d.name AS device_name, d.space_id,"
        " COALESCE(s.name, '') AS space_name, COALESCE(s.home_id, d.space_id) AS home_id,"
        " COALESCE(h.name, '') AS home_name"
        " FROM directory_devices d"
        " LEFT JOIN directory_spaces s ON s.space_id = d.space_id"
        " LEFT JOIN directory_spaces h ON h.space_id = COALESCE(s.home_id, d.space_id)"
        " WHERE d.device_id = :device_id AND NOT d.retired"
    )
)


async def members_of(connection: Connection, space_id: uuid.UUID, now: datetime) -> list[Member]:
    """The members of the space's home whose access has not ended, oldest first."""
    rows = await connection.fetch(_MEMBERS, space_id=space_id, now=now)
    return [Member(row["user_id"], row["role"]) for row in rows]


async def primary_owner(
    connection: Connection, space_id: uuid.UUID, now: datetime
) -> uuid.UUID | None:
    """The home's longest-standing OWNER, the one to act for the home."""
    owners = [m.user_id for m in await members_of(connection, space_id, now) if m.role == OWNER]
    return owners[0] if owners else None


async def is_member(
    connection: Connection, user_id: uuid.UUID, space_id: uuid.UUID, now: datetime
) -> bool:
    return any(m.user_id == user_id for m in await members_of(connection, space_id, now))


async def device_place(connection: Connection, device_id: uuid.UUID) -> DevicePlace | None:
    """None for a device never seen or retired."""
    row = await connection.fetchrow(_DEVICE_PLACE, device_id=device_id)
    if row is None:
        return None
    return DevicePlace(
        row["device_id"],
        row["device_name"],
        row["space_id"],
        row["space_name"],
        row["home_id"],
        row["home_name"],
    )


# An event without a time is older than any with one.
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _moment(stamp: Timestamp) -> datetime:
    return event_time(stamp) or _EPOCH


def _home_of(space_id: str, parent_space_id: str) -> tuple[uuid.UUID, uuid.UUID]:
    space = uuid.UUID(space_id)
    return space, uuid.UUID(parent_space_id) if parent_space_id else space


_REMEMBER_SPACE = Query(
    text(
        "INSERT INTO directory_spaces (space_id, home_id, name, renamed_at)"
        " VALUES (:space_id, :home_id, :name, :at)"
        " ON CONFLICT (space_id) DO UPDATE SET home_id = EXCLUDED.home_id"
    )
)
_RENAME_SPACE = Query(
    text(
        "INSERT INTO directory_spaces (space_id, home_id, name, renamed_at)"
        " VALUES (:space_id, :space_id, :name, :at)"
        " ON CONFLICT (space_id) DO UPDATE"
        " SET name = EXCLUDED.name, renamed_at = EXCLUDED.renamed_at"
        " WHERE directory_spaces.renamed_at < EXCLUDED.renamed_at"
    )
)
_DELETE_SPACE = Query(
    text(
        "INSERT INTO directory_spaces (space_id, home_id, name, deleted, renamed_at)"
        " VALUES (:space_id, :home_id, '', true, :at)"
        " ON CONFLICT (space_id) DO UPDATE SET deleted = true"
    )
)
_APPLY_MEMBERSHIP = Query(
    text(
        "INSERT INTO directory_members (home_id, user_id, role, expire_at, joined_at, version)"
        " VALUES (:home_id, :user_id, :role, :expire_at, :at, :version)"
        " ON CONFLICT (home_id, user_id) DO UPDATE"
        " SET role = EXCLUDED.role, expire_at = EXCLUDED.expire_at, version = EXCLUDED.version,"
        # Who left and came back joined anew.
        "  joined_at = CASE WHEN directory_members.role IS NULL"
        "   THEN EXCLUDED.joined_at ELSE directory_members.joined_at END"
        " WHERE EXCLUDED.version > directory_members.version"
    )
)
_CHANGE_DEVICE = Query(
    text(
        "INSERT INTO directory_devices (device_id, space_id, name, changed_at)"
        " VALUES (:device_id, :space_id, :name, :at)"
        " ON CONFLICT (device_id) DO UPDATE"
        " SET space_id = EXCLUDED.space_id, name = EXCLUDED.name, changed_at = EXCLUDED.changed_at"
        " WHERE directory_devices.changed_at < EXCLUDED.changed_at"
    )
)
_RETIRE_DEVICE = Query(
    text(
        "INSERT INTO directory_devices (device_id, space_id, name, retired, changed_at)"
        " VALUES (:device_id, :space_id, '', true, :at)"
        " ON CONFLICT (device_id) DO UPDATE SET retired = true"
    )
)


async def on_space_created(
    connection: Connection, event: space_pb2.SpaceCreated, context: EventContext
) -> None:
    space, home = _home_of(event.space_id, event.parent_space_id)
    await connection.execute(
        _REMEMBER_SPACE, space_id=space, home_id=home, name=event.name, at=_moment(event.occur_time)
    )
    # The name, unless a newer rename got here first.
    await connection.execute(
        _RENAME_SPACE, space_id=space, name=event.name, at=_moment(event.occur_time)
    )


async def on_space_renamed(
    connection: Connection, event: space_pb2.SpaceRenamed, context: EventContext
) -> None:
    await connection.execute(
        _RENAME_SPACE,
        space_id=uuid.UUID(event.space_id),
        name=event.name,
        at=_moment(event.occur_time),
    )


async def on_space_deleted(
    connection: Connection, event: space_pb2.SpaceDeleted, context: EventContext
) -> None:
    space, home = _home_of(event.space_id, event.parent_space_id)
    await connection.execute(
        _DELETE_SPACE, space_id=space, home_id=home, at=_moment(event.occur_time)
    )


async def _apply_membership(
    connection: Connection,
    home_id: str,
    user_id: str,
    role: str | None,
    expire_at: datetime | None,
    version: int,
    at: Timestamp,
) -> None:
    await connection.execute(
        _APPLY_MEMBERSHIP,
        home_id=uuid.UUID(home_id),
        user_id=uuid.UUID(user_id),
        role=role,
        expire_at=expire_at,
        at=_moment(at),
        version=version,
    )


def _expiry(
    event: space_pb2.SpaceMemberAdded | space_pb2.SpaceMemberRoleChanged,
) -> datetime | None:
    return _moment(event.expire_time) if event.HasField("expire_time") else None


async def on_member_added(
    connection: Connection, event: space_pb2.SpaceMemberAdded, context: EventContext
) -> None:
    await _apply_membership(
        connection,
        event.space_id,
        event.user_id,
        role_named(event.role),
        _expiry(event),
        event.version,
        event.occur_time,
    )


async def on_member_role_changed(
    connection: Connection, event: space_pb2.SpaceMemberRoleChanged, context: EventContext
) -> None:
    await _apply_membership(
        connection,
        event.space_id,
        event.user_id,
        role_named(event.new_role),
        _expiry(event),
        event.version,
        event.occur_time,
    )


async def on_member_removed(
    connection: Connection, event: space_pb2.SpaceMemberRemoved, context: EventContext
) -> None:
    await _apply_membership(
        connection, event.space_id, event.user_id, None, None, event.version, event.occur_time
    )


async def on_member_expired(
    connection: Connection, event: space_pb2.SpaceMemberExpired, context: EventContext
) -> None:
    await _apply_membership(
        connection, event.space_id, event.user_id, None, None, event.version, event.occur_time
    )


async def on_device_changed(
    connection: Connection,
    event: device_pb2.DeviceRegistered | device_pb2.DeviceUpdated,
    context: EventContext,
) -> None:
    await connection.execute(
        _CHANGE_DEVICE,
        device_id=uuid.UUID(event.device_id),
        space_id=uuid.UUID(event.space_id),
        name=event.name,
        at=_moment(event.occur_time),
    )


async def on_device_retired(
    connection: Connection, event: device_pb2.DeviceRetired, context: EventContext
) -> None:
    await connection.execute(
        _RETIRE_DEVICE,
        device_id=uuid.UUID(event.device_id),
        space_id=uuid.UUID(event.space_id),
        at=_moment(event.occur_time),
    )


def _readable(handle: Handler[EventT]) -> Handler[EventT]:
    """Skips an event whose ids are no UUIDs: redelivering it would not make it
    readable, and it would hold up the events behind it."""

    async def handle_readable(connection: Connection, event: EventT, context: EventContext) -> None:
        try:
            await handle(connection, event, context)
        except ValueError:
            log.error("event %s names an id that is no UUID; ignored", context.event_id)

    return handle_readable


def subscriptions(prefix: str) -> list[Subscription[Any]]:
    """One durable consumer for Space's events and one for Device's, each
    reading them in the order they were published; named after the consumer."""

    def route(event_type: type[EventT], handle: Handler[EventT]) -> EventRoute[EventT]:
        return EventRoute(event_type, _readable(handle))

    # Its handlers are single upserts. An event handed to a replica that died
    # holds CatchUp back until it comes again: soon, not after the usual 30 s.
    ack_wait_seconds = 5.0

    return [
        Subscription.of_events(
            f"{prefix}-directory-space",
            "space",
            route(space_pb2.SpaceCreated, on_space_created),
            route(space_pb2.SpaceRenamed, on_space_renamed),
            route(space_pb2.SpaceDeleted, on_space_deleted),
            route(space_pb2.SpaceMemberAdded, on_member_added),
            route(space_pb2.SpaceMemberRoleChanged, on_member_role_changed),
            route(space_pb2.SpaceMemberRemoved, on_member_removed),
            route(space_pb2.SpaceMemberExpired, on_member_expired),
            ack_wait_seconds=ack_wait_seconds,
        ),
        Subscription.of_events(
            f"{prefix}-directory-device",
            "device",
            route(device_pb2.DeviceRegistered, on_device_changed),
            route(device_pb2.DeviceUpdated, on_device_changed),
            route(device_pb2.DeviceRetired, on_device_retired),
            ack_wait_seconds=ack_wait_seconds,
        ),
    ]


class DirectoryBehind(Exception):
    """The copy has not applied everything Space and Device published yet."""


class CatchUp:
    """Waits, for an event about a home, until the copy has caught up.

    The directory's consumers and the service's other consumers run side by
    side; after a restart both work through a backlog, and an alarm handled
    before the SpaceMemberAdded published ahead of it would miss that member.
    `require` raises DirectoryBehind (the event is redelivered a moment later)
    while a directory consumer has events not yet applied. From its
    `patience`-th delivery on, an event goes ahead with the copy as it is, so
    a directory consumer that cannot keep up does not hold an alarm back for
    long (about 30 s: redeliveries come 2 s apart).
    """

    def __init__(self, jetstream: JetStreamContext, prefix: str, patience: int = 15) -> None:
        self._jetstream = jetstream
        self._subscriptions = subscriptions(prefix)
        self._patience = patience

    async def caught_up(self) -> bool:
        """Whether every directory consumer has applied (and acknowledged) all
        its stream holds: everything published before this call."""
        try:
            infos = await asyncio.gather(
                *(
                    self._jetstream.consumer_info(sub.stream, sub.durable)
                    for sub in self._subscriptions
                )
            )
        except Exception:  # noqa: BLE001 - a consumer not created yet, a broker away: not yet
            return False
        return all(info.num_pending == 0 and info.num_ack_pending == 0 for info in infos)

    async def require(self, context: EventContext) -> None:
        if await self.caught_up():
            return
        if context.delivery_attempt < self._patience:
            raise DirectoryBehind(
                "the home directory is still applying Space's and Device's events"
            )
        log.warning(
            "event %s goes ahead although the home directory has not caught up",
            context.event_id,
        )


def consumers(
    database: Database, jetstream: JetStreamContext, relay: OutboxRelay, prefix: str
) -> list[EventConsumer[Any]]:
    return [
        EventConsumer(database, jetstream, subscription, relay=relay)
        for subscription in subscriptions(prefix)
    ]
