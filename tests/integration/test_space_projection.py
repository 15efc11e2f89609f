"""Device's copy of Space's data, fed Space's events directly (real PostgreSQL):
late, repeated and out-of-order events, and a deletion racing a registration."""

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import grpc
from google.protobuf.message import Message
from sqlalchemy import text
from warmhouse.device.v1 import device_pb2
from warmhouse.space.v1 import space_pb2

from services.device import space_events
from services.device.ports import DeviceRecord
from services.device.repository import sql_repositories
from services.runtime.database import Connection, Database, Query, Record
from services.runtime.messaging import EventContext
from services.runtime.timestamps import timestamp
from tests.accounts import refused
from tests.integration.mesh import Mesh, People
from tests.integration.test_device_service import device_events
from tests.polling import eventually

if TYPE_CHECKING:
    from warmhouse.device.v1.device_pb2_grpc import DeviceServiceAsyncStub

E = TypeVar("E", bound=Message)
Handler = Callable[[Connection, E, EventContext], Awaitable[None]]

_MEMBERSHIP = Query(
    text(
        "SELECT role, expire_at, version FROM memberships"
        " WHERE home_id = :home_id AND user_id = :user_id"
    )
)
_KNOWN_SPACE = Query(text("SELECT home_id, deleted FROM known_spaces WHERE space_id = :space_id"))
_DEVICE = Query(text("SELECT retired_at FROM devices WHERE id = :id"))
_LOG_LINES = Query(text("SELECT event FROM device_logs WHERE device_id = :id ORDER BY timestamp"))


def database(mesh: Mesh) -> Database:
    return mesh.device.runtime.database


async def feed(db: Database, handle: Handler[E], event: E) -> None:
    """Deliver `event` as the consumer does: in a transaction of its own."""
    context = EventContext(event_id=str(uuid.uuid4()), subject=str(event.DESCRIPTOR.full_name))
    async with db.transaction() as connection:
        await handle(connection, event, context)


async def row(db: Database, query: Query, **params: Any) -> Record | None:
    async with db.connection() as connection:
        return await connection.fetchrow(query, **params)


def added(
    home: uuid.UUID, user: uuid.UUID, role: space_pb2.SpaceUserRole.ValueType, version: int
) -> space_pb2.SpaceMemberAdded:
    return space_pb2.SpaceMemberAdded(
        space_id=str(home), user_id=str(user), role=role, version=version
    )


def removed(home: uuid.UUID, user: uuid.UUID, version: int) -> space_pb2.SpaceMemberRemoved:
    return space_pb2.SpaceMemberRemoved(
        space_id=str(home), user_id=str(user), version=version, reason=space_pb2.REMOVED
    )


async def test_a_late_event_does_not_undo_a_newer_one(mesh: Mesh) -> None:
    db, home, user = database(mesh), uuid.uuid4(), uuid.uuid4()
    await feed(db, space_events.on_member_added, added(home, user, space_pb2.MAINTAINER, 1))
    await feed(db, space_events.on_member_removed, removed(home, user, 3))
    # Delivered after the removal though made before it.
    await feed(db, space_events.on_member_added, added(home, user, space_pb2.OWNER, 2))
    changed = space_pb2.SpaceMemberRoleChanged(
        space_id=str(home), user_id=str(user), new_role=space_pb2.OWNER, version=2
    )
    await feed(db, space_events.on_member_role_changed, changed)
    membership = await row(db, _MEMBERSHIP, home_id=home, user_id=user)
    assert membership is not None
    assert (membership["role"], membership["version"]) == (None, 3)


async def test_a_redelivered_event_changes_nothing(mesh: Mesh) -> None:
    db, home, user = database(mesh), uuid.uuid4(), uuid.uuid4()
    await feed(db, space_events.on_member_added, added(home, user, space_pb2.GUEST, 4))
    changed = space_pb2.SpaceMemberRoleChanged(
        space_id=str(home), user_id=str(user), new_role=space_pb2.MAINTAINER, version=5
    )
    await feed(db, space_events.on_member_role_changed, changed)
    await feed(db, space_events.on_member_role_changed, changed)
    await feed(db, space_events.on_member_added, added(home, user, space_pb2.GUEST, 4))
    membership = await row(db, _MEMBERSHIP, home_id=home, user_id=user)
    assert membership is not None
    assert (membership["role"], membership["version"]) == ("MAINTAINER", 5)


async def test_a_removal_arriving_before_the_addition_wins(mesh: Mesh) -> None:
    db, home, user = database(mesh), uuid.uuid4(), uuid.uuid4()
    expired = space_pb2.SpaceMemberExpired(space_id=str(home), user_id=str(user), version=2)
    await feed(db, space_events.on_member_expired, expired)
    await feed(db, space_events.on_member_added, added(home, user, space_pb2.GUEST, 1))
    membership = await row(db, _MEMBERSHIP, home_id=home, user_id=user)
    assert membership is not None
    assert (membership["role"], membership["version"]) == (None, 2)


async def test_a_guest_expiry_is_kept_with_the_membership(mesh: Mesh) -> None:
    db, home, user = database(mesh), uuid.uuid4(), uuid.uuid4()
    ends = datetime(2030, 1, 1, tzinfo=UTC)
    event = added(home, user, space_pb2.GUEST, 1)
    event.expire_time.CopyFrom(timestamp(ends))
    await feed(db, space_events.on_member_added, event)
    membership = await row(db, _MEMBERSHIP, home_id=home, user_id=user)
    assert membership is not None
    assert (membership["role"], membership["expire_at"]) == ("GUEST", ends)


async def test_an_unknown_role_grants_nothing(mesh: Mesh) -> None:
    db, home, user = database(mesh), uuid.uuid4(), uuid.uuid4()
    await feed(
        db,
        space_events.on_member_added,
        added(home, user, space_pb2.SpaceUserRole.ValueType(77), 1),
    )
    membership = await row(db, _MEMBERSHIP, home_id=home, user_id=user)
    assert membership is not None
    assert membership["role"] is None


async def test_a_room_is_known_with_its_home_and_a_deletion_sticks(mesh: Mesh) -> None:
    db, home, room = database(mesh), uuid.uuid4(), uuid.uuid4()
    created = space_pb2.SpaceCreated(space_id=str(room), parent_space_id=str(home))
    await feed(db, space_events.on_space_created, created)
    known = await row(db, _KNOWN_SPACE, space_id=room)
    assert known is not None
    assert (known["home_id"], known["deleted"]) == (home, False)
    deleted = space_pb2.SpaceDeleted(space_id=str(room), parent_space_id=str(home))
    await feed(db, space_events.on_space_deleted, deleted)
    # A late (or repeated) creation does not bring it back.
    await feed(db, space_events.on_space_created, created)
    known = await row(db, _KNOWN_SPACE, space_id=room)
    assert known is not None
    assert known["deleted"] is True


async def test_a_deletion_of_a_space_never_seen_is_remembered(mesh: Mesh) -> None:
    db, home = database(mesh), uuid.uuid4()
    await feed(db, space_events.on_space_deleted, space_pb2.SpaceDeleted(space_id=str(home)))
    await feed(db, space_events.on_space_created, space_pb2.SpaceCreated(space_id=str(home)))
    known = await row(db, _KNOWN_SPACE, space_id=home)
    assert known is not None
    assert (known["home_id"], known["deleted"]) == (home, True)


async def known_home_with_room(db: Database) -> tuple[uuid.UUID, uuid.UUID]:
    home, room = uuid.uuid4(), uuid.uuid4()
    await feed(db, space_events.on_space_created, space_pb2.SpaceCreated(space_id=str(home)))
    created = space_pb2.SpaceCreated(space_id=str(room), parent_space_id=str(home))
    await feed(db, space_events.on_space_created, created)
    return home, room


async def test_a_deleted_space_retires_the_devices_still_in_it(
    mesh: Mesh, people: People, devices: "DeviceServiceAsyncStub"
) -> None:
    db = database(mesh)
    admin = people.admin()
    home, room = await known_home_with_room(db)
    register = device_pb2.RegisterDeviceRequest(type=device_pb2.HEATER, name="Raced in")
    register.space_id = str(room)
    in_room = (await devices.RegisterDevice(register, metadata=admin.auth)).device
    register.space_id = str(home)
    in_home = (await devices.RegisterDevice(register, metadata=admin.auth)).device
    deleted = space_pb2.SpaceDeleted(space_id=str(room), parent_space_id=str(home))
    await feed(db, space_events.on_space_deleted, deleted)
    get = device_pb2.GetDeviceRequest(device_id=in_room.device_id)
    assert await refused(devices.GetDevice(get, metadata=admin.auth), grpc.StatusCode.NOT_FOUND)
    lines = await _lines(db, uuid.UUID(in_room.device_id))
    assert lines == ["registered", "retired: its space was deleted"]
    # The rest of the home is untouched.
    get = device_pb2.GetDeviceRequest(device_id=in_home.device_id)
    assert (await devices.GetDevice(get, metadata=admin.auth)).device.name == "Raced in"

    async def announced() -> list[device_pb2.DeviceRetired]:
        jetstream = mesh.device.runtime.jetstream
        return await device_events(jetstream, device_pb2.DeviceRetired, in_room.device_id)

    [event] = await eventually(announced, within=5.0, what="DeviceRetired")
    assert event.space_id == str(room)


async def _lines(db: Database, device_id: uuid.UUID) -> list[str]:
    async with db.connection() as connection:
        return [entry["event"] for entry in await connection.fetch(_LOG_LINES, id=device_id)]


async def test_a_deletion_waits_for_a_registration_under_way_then_retires_it(
    mesh: Mesh,
) -> None:
    db = database(mesh)
    home, room = await known_home_with_room(db)
    device_id = uuid.uuid4()
    now = datetime.now(UTC)
    deleted = space_pb2.SpaceDeleted(space_id=str(room), parent_space_id=str(home))
    # A registration between its space check and its commit, as RegisterDevice runs it.
    async with db.transaction() as connection:
        repos = sql_repositories(connection)
        known = await repos.spaces.lock_space(room)
        assert known is not None
        assert not known.deleted
        await repos.devices.add(
            DeviceRecord(device_id, room, home, "SENSOR", "Late", "OFFLINE", None, b"h", now, now)
        )
        deletion = asyncio.create_task(feed(db, space_events.on_space_deleted, deleted))
        await asyncio.sleep(0.3)
        assert not deletion.done(), "the deletion must wait for the registration"
    await asyncio.wait_for(deletion, timeout=5.0)
    device = await row(db, _DEVICE, id=device_id)
    assert device is not None
    assert device["retired_at"] is not None


async def test_a_registration_after_the_deletion_is_refused(
    mesh: Mesh, people: People, devices: "DeviceServiceAsyncStub"
) -> None:
    db = database(mesh)
    home, room = await known_home_with_room(db)
    deleted = space_pb2.SpaceDeleted(space_id=str(room), parent_space_id=str(home))
    await feed(db, space_events.on_space_deleted, deleted)
    request = device_pb2.RegisterDeviceRequest(
        space_id=str(room), type=device_pb2.SENSOR, name="Too late"
    )
    call = devices.RegisterDevice(request, metadata=people.admin().auth)
    assert await refused(call, grpc.StatusCode.NOT_FOUND) == "SPACE_NOT_FOUND"
