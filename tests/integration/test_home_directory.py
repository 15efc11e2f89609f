"""The shared copy of homes, rooms, devices and members (real PostgreSQL), fed
events directly: late, repeated and out-of-order ones change nothing."""

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from nats.js import JetStreamContext
from warmhouse.device.v1 import device_pb2
from warmhouse.space.v1 import space_pb2

from services.devstack.nats_process import NatsProcess
from services.runtime import database as db
from services.runtime import home_directory as directory
from services.runtime import messaging
from services.runtime.messaging import EventContext
from services.runtime.outbox import MSG_ID_HEADER, OutboxRelay
from services.runtime.timestamps import timestamp
from tests.polling import eventually

START = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
CONTEXT = EventContext(event_id="e", subject="s")
OWNER, GUEST, MAINTAINER = space_pb2.OWNER, space_pb2.GUEST, space_pb2.MAINTAINER


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[db.Database]:
    database = await db.Database.connect(database_url, pool_size=2)
    try:
        component, directory_path = directory.MIGRATIONS
        await db.apply_migrations(database, component, directory_path)
        yield database
    finally:
        await database.close()


def at(minutes: int) -> datetime:
    return START + timedelta(minutes=minutes)


async def added(
    database: db.Database,
    home: uuid.UUID,
    user: uuid.UUID,
    role: "space_pb2.SpaceUserRole.ValueType",
    version: int,
    minute: int,
) -> None:
    event = space_pb2.SpaceMemberAdded(
        space_id=str(home),
        user_id=str(user),
        role=role,
        version=version,
        occur_time=timestamp(at(minute)),
    )
    async with database.transaction() as connection:
        await directory.on_member_added(connection, event, CONTEXT)


async def members(database: db.Database, space: uuid.UUID, now: datetime = START) -> list[str]:
    async with database.connection() as connection:
        return [f"{m.user_id}:{m.role}" for m in await directory.members_of(connection, space, now)]


async def test_a_rooms_members_are_its_homes_and_the_oldest_owner_acts_for_it(
    database: db.Database,
) -> None:
    home, room = uuid.uuid4(), uuid.uuid4()
    first, second, guest = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    async with database.transaction() as connection:
        await directory.on_space_created(
            connection,
            space_pb2.SpaceCreated(
                space_id=str(room),
                parent_space_id=str(home),
                name="Kitchen",
                occur_time=timestamp(at(1)),
            ),
            CONTEXT,
        )
    # Out of order: the second owner's event is handled first.
    await added(database, home, second, OWNER, 3, 3)
    await added(database, home, first, OWNER, 1, 0)
    await added(database, home, guest, GUEST, 2, 2)

    assert await members(database, room) == [
        f"{first}:OWNER",
        f"{guest}:GUEST",
        f"{second}:OWNER",
    ]
    async with database.connection() as connection:
        assert await directory.primary_owner(connection, room, START) == first
        assert await directory.is_member(connection, guest, room, START)
        assert not await directory.is_member(connection, uuid.uuid4(), room, START)


async def test_ended_and_expired_memberships_stay_ended_whatever_comes_late(
    database: db.Database,
) -> None:
    home, owner, guest = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await added(database, home, owner, OWNER, 1, 0)
    async with database.transaction() as connection:
        await directory.on_member_removed(
            connection,
            space_pb2.SpaceMemberRemoved(
                space_id=str(home), user_id=str(owner), version=3, occur_time=timestamp(at(5))
            ),
            CONTEXT,
        )
        await directory.on_member_added(
            connection,
            space_pb2.SpaceMemberAdded(
                space_id=str(home),
                user_id=str(guest),
                role=GUEST,
                version=2,
                occur_time=timestamp(at(2)),
                expire_time=timestamp(at(60)),
            ),
            CONTEXT,
        )
    # A redelivered, older "added" cannot bring the removed owner back.
    await added(database, home, owner, OWNER, 1, 0)

    assert await members(database, home, at(59)) == [f"{guest}:GUEST"]
    assert await members(database, home, at(60)) == []


async def test_a_deleted_home_has_no_members(database: db.Database) -> None:
    home, owner = uuid.uuid4(), uuid.uuid4()
    await added(database, home, owner, OWNER, 1, 0)
    async with database.transaction() as connection:
        await directory.on_space_deleted(
            connection,
            space_pb2.SpaceDeleted(space_id=str(home), occur_time=timestamp(at(1))),
            CONTEXT,
        )
    assert await members(database, home) == []


async def test_a_device_is_found_by_its_newest_name_and_place_until_retired(
    database: db.Database,
) -> None:
    home, room, device = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    async with database.transaction() as connection:
        await directory.on_space_created(
            connection,
            space_pb2.SpaceCreated(space_id=str(home), name="Dacha", occur_time=timestamp(at(0))),
            CONTEXT,
        )
        await directory.on_space_created(
            connection,
            space_pb2.SpaceCreated(
                space_id=str(room),
                parent_space_id=str(home),
                name="Boiler room",
                occur_time=timestamp(at(0)),
            ),
            CONTEXT,
        )
        # The rename arrives before the registration it follows.
        await directory.on_device_changed(
            connection,
            device_pb2.DeviceUpdated(
                device_id=str(device),
                space_id=str(room),
                name="Gas sensor",
                occur_time=timestamp(at(2)),
            ),
            CONTEXT,
        )
        await directory.on_device_changed(
            connection,
            device_pb2.DeviceRegistered(
                device_id=str(device),
                space_id=str(home),
                name="Sensor 1",
                occur_time=timestamp(at(1)),
            ),
            CONTEXT,
        )
        await directory.on_space_renamed(
            connection,
            space_pb2.SpaceRenamed(space_id=str(home), name="Old", occur_time=timestamp(at(-1))),
            CONTEXT,
        )
    async with database.connection() as connection:
        place = await directory.device_place(connection, device)
    assert place == directory.DevicePlace(device, "Gas sensor", room, "Boiler room", home, "Dacha")

    async with database.transaction() as connection:
        await directory.on_device_retired(
            connection,
            device_pb2.DeviceRetired(
                device_id=str(device), space_id=str(room), occur_time=timestamp(at(3))
            ),
            CONTEXT,
        )
        assert await directory.device_place(connection, device) is None


@pytest.fixture
async def broker(private_nats: NatsProcess) -> AsyncIterator[JetStreamContext]:
    """Space's and Device's streams on a broker of this test's own."""
    client = await messaging.connect(private_nats.url, "test")
    jetstream = client.jetstream()
    for service in directory.CONSUMES_FROM:
        await messaging.ensure_stream(jetstream, messaging.stream_config(service), owned=True)
    try:
        yield jetstream
    finally:
        await client.close()


async def publish_member_added(jetstream: JetStreamContext, home: uuid.UUID, version: int) -> None:
    event = space_pb2.SpaceMemberAdded(
        space_id=str(home),
        user_id=str(uuid.uuid4()),
        role=OWNER,
        version=version,
        occur_time=timestamp(datetime.now(UTC)),
    )
    subject = str(space_pb2.SpaceMemberAdded.DESCRIPTOR.full_name)
    await jetstream.publish(
        subject, event.SerializeToString(), headers={MSG_ID_HEADER: str(uuid.uuid4())}
    )


async def test_an_event_about_a_home_waits_until_the_directory_has_applied_what_came_before(
    database: db.Database, broker: JetStreamContext
) -> None:
    await db.apply_migrations(database, "runtime", db.RUNTIME_MIGRATIONS)
    catch_up = directory.CatchUp(broker, "t", patience=3)
    now = datetime.now(UTC)
    home = uuid.uuid4()
    await publish_member_added(broker, home, 1)

    # No consumer yet: behind; from its third delivery an event goes ahead anyway.
    assert not await catch_up.caught_up()
    for attempt in (1, 2):
        with pytest.raises(directory.DirectoryBehind):
            await catch_up.require(EventContext("e", "s", delivery_attempt=attempt))
    await catch_up.require(EventContext("e", "s", delivery_attempt=3))

    consumers = directory.consumers(database, broker, OutboxRelay(database, broker), "t")
    tasks = [asyncio.create_task(consumer.run()) for consumer in consumers]
    try:
        await eventually(catch_up.caught_up, what="the directory caught up")
        await catch_up.require(CONTEXT)
        assert len(await members(database, home, now)) == 1
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # Published while nobody applies it: behind again.
    await publish_member_added(broker, home, 2)
    assert not await catch_up.caught_up()
