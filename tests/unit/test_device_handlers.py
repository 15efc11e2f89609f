"""The Device service's use cases on in-memory repositories and a fake Space."""

import uuid
from collections.abc import Awaitable
from datetime import timedelta
from typing import TypeVar

import pytest
from google.protobuf.message import Message
from warmhouse.device.v1 import device_pb2

from services.device.handlers import RegisteredDevice
from services.runtime.auth import Caller
from services.runtime.errors import (
    DomainError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Throttled,
    Unauthenticated,
    Unavailable,
    dependency_unavailable,
)
from services.runtime.space_roles import GUEST, MAINTAINER, OWNER, Right
from tests.fakes import raises
from tests.unit.device_fakes import DeviceWorld, device_world

M = TypeVar("M", bound=Message)


def events(world: DeviceWorld, kind: type[M]) -> list[M]:
    return [event for event in world.uow.events if isinstance(event, kind)]


def person(role: str = "USER") -> Caller:
    return Caller(str(uuid.uuid4()), role, str(uuid.uuid4()))


def uid(caller: Caller) -> uuid.UUID:
    return uuid.UUID(caller.user_id)


async def refused(call: Awaitable[object], kind: type[DomainError]) -> str:
    return (await raises(call, kind)).reason


@pytest.fixture
def world() -> DeviceWorld:
    return device_world()


class Home:
    """A home in Space with an OWNER, a MAINTAINER and a GUEST, and one room."""

    def __init__(self, world: DeviceWorld) -> None:
        self.id = world.space.new_home()
        self.room = world.space.new_room(self.id)
        self.owner, self.maintainer, self.guest = person(), person(), person()
        world.space.set_member(self.id, uid(self.owner), OWNER)
        world.space.set_member(self.id, uid(self.maintainer), MAINTAINER)
        world.space.set_member(self.id, uid(self.guest), GUEST)


async def projected_home(world: DeviceWorld) -> Home:
    home = Home(world)
    await world.project()
    return home


async def register(
    world: DeviceWorld, caller: Caller, space: uuid.UUID, name: str = "Radiator"
) -> RegisteredDevice:
    return await world.handlers.register(caller, str(space), "HEATER", name)


async def test_a_home_holds_at_most_so_many_devices_rooms_included() -> None:
    world = device_world(devices_per_home=2)
    home = await projected_home(world)
    await register(world, home.owner, home.id)
    await register(world, home.owner, home.room)
    with pytest.raises(Throttled) as refused:
        await register(world, home.maintainer, home.room)
    assert refused.value.reason == "QUOTA_EXCEEDED"
    assert world.devices.held_homes[-1] == home.id
    # Another home has a count of its own.
    other = await projected_home(world)
    await register(world, other.owner, other.id)


# The access check


async def test_a_yes_from_the_projection_costs_no_call_to_space(world: DeviceWorld) -> None:
    home = await projected_home(world)
    device = await register(world, home.owner, home.id)
    await world.handlers.get_device(home.guest, str(device.device.id))
    await world.handlers.list_devices(home.maintainer, str(home.room), 0, "")
    assert world.space.calls == []


async def test_while_events_cannot_arrive_every_check_asks_space(world: DeviceWorld) -> None:
    home = await projected_home(world)
    device = await register(world, home.owner, home.id)
    world.events_arriving[0] = False
    # Removed in Space while the broker is down: the projection never hears of it.
    world.space.members.pop((home.id, uid(home.guest)))
    await refused(world.handlers.get_device(home.guest, str(device.device.id)), NotFound)
    await world.handlers.get_device(home.maintainer, str(device.device.id))
    assert len(world.space.calls) == 2


async def test_a_space_the_projection_has_not_heard_of_is_asked_of_space(
    world: DeviceWorld,
) -> None:
    home = Home(world)  # just created: none of its events has arrived
    registered = await register(world, home.owner, home.id)
    assert registered.device.home_id == home.id
    assert world.space.calls == [(home.id, uid(home.owner))]
    # The answer is kept: the next call needs none.
    await register(world, home.owner, home.id, "Second")
    assert len(world.space.calls) == 1
    assert world.projection.spaces[home.id].home_id == home.id


async def test_a_no_from_the_projection_is_confirmed_with_space(world: DeviceWorld) -> None:
    home = await projected_home(world)
    # Promoted in Space; the projection has not heard yet.
    version = world.space.set_member(home.id, uid(home.guest), MAINTAINER)
    registered = await register(world, home.guest, home.id)
    assert registered.device.space_id == home.id
    assert world.space.calls == [(home.id, uid(home.guest))]
    row = world.projection.memberships[(home.id, uid(home.guest))]
    assert (row.role, row.version) == (MAINTAINER, version)


async def test_space_decides_a_no_the_projection_could_not_confirm(world: DeviceWorld) -> None:
    home = await projected_home(world)
    assert await refused(register(world, home.guest, home.id), PermissionDenied) == (
        "SPACE_ROLE_INSUFFICIENT"
    )
    assert len(world.space.calls) == 1


async def test_an_answer_older_than_the_projection_does_not_overwrite_it(
    world: DeviceWorld,
) -> None:
    home = await projected_home(world)
    answered_version = world.space.versions[home.id]
    # The projection holds newer news of the guest than Space's answer will carry.
    await world.projection.apply_membership(home.id, uid(home.guest), None, None, 99)
    await world.access.require(home.guest, home.room, Right.READ, lambda: NotFound("X", "x"))
    assert world.space.calls == [(home.room, uid(home.guest))]
    row = world.projection.memberships[(home.id, uid(home.guest))]
    assert (row.role, row.version) == (None, 99)
    assert answered_version < 99


async def test_a_removed_member_is_refused_once_the_projection_has_it(world: DeviceWorld) -> None:
    home = await projected_home(world)
    device = (await register(world, home.owner, home.room)).device
    version = world.space.set_member(home.id, uid(home.maintainer), None)
    await world.projection.apply_membership(home.id, uid(home.maintainer), None, None, version)
    assert (
        await refused(world.handlers.get_device(home.maintainer, str(device.id)), NotFound)
        == "DEVICE_NOT_FOUND"
    )


async def test_a_guest_is_refused_the_moment_their_access_expires(world: DeviceWorld) -> None:
    home = Home(world)
    visitor = person()
    world.space.set_member(home.id, uid(visitor), GUEST, world.clock.now + timedelta(hours=1))
    await world.project()
    device = (await register(world, home.owner, home.id)).device
    assert (await world.handlers.get_device(visitor, str(device.id))).id == device.id
    world.clock.advance(hours=1)  # no event yet: the expiry is read, not waited for
    assert (
        await refused(world.handlers.get_device(visitor, str(device.id)), NotFound)
        == "DEVICE_NOT_FOUND"
    )


async def test_an_admin_passes_without_a_membership(world: DeviceWorld) -> None:
    home = await projected_home(world)
    admin = person("ADMIN")
    device = (await register(world, admin, home.room)).device
    await world.handlers.update_status(admin, str(device.id), "ERROR")
    assert world.space.calls == []


async def test_an_admin_still_needs_the_space_to_exist(world: DeviceWorld) -> None:
    assert await refused(register(world, person("ADMIN"), uuid.uuid4()), NotFound) == (
        "SPACE_NOT_FOUND"
    )


async def test_space_being_down_is_reported_as_such(world: DeviceWorld) -> None:
    home = Home(world)
    world.space.failure = dependency_unavailable("space")
    with pytest.raises(Unavailable):
        await register(world, home.owner, home.id)
    assert world.devices.rows == {}


# Registration


async def test_registering_stores_an_offline_device_logs_and_announces_it(
    world: DeviceWorld,
) -> None:
    home = await projected_home(world)
    registered = await world.handlers.register(home.maintainer, str(home.room), "SENSOR", " Hall ")
    device = registered.device
    assert (device.space_id, device.home_id) == (home.room, home.id)
    assert (device.type, device.name, device.status) == ("SENSOR", "Hall", "OFFLINE")
    assert device.last_seen is None
    assert world.logs.lines(device.id) == ["registered"]
    [event] = events(world, device_pb2.DeviceRegistered)
    assert (event.device_id, event.space_id, event.type, event.name) == (
        str(device.id),
        str(home.room),
        device_pb2.SENSOR,
        "Hall",
    )
    # Only the hash is kept, and the secret matches it.
    assert registered.secret.encode() not in device.secret_hash
    assert world.secrets.matches(device.id, registered.secret, device.secret_hash)


async def test_a_stranger_registering_is_told_the_space_does_not_exist(
    world: DeviceWorld,
) -> None:
    home = await projected_home(world)
    assert await refused(register(world, person(), home.id), NotFound) == "SPACE_NOT_FOUND"
    assert await refused(register(world, home.owner, uuid.uuid4()), NotFound) == ("SPACE_NOT_FOUND")
    assert world.devices.rows == {}


async def test_a_space_deleted_in_the_meantime_takes_no_device(world: DeviceWorld) -> None:
    home = await projected_home(world)
    await world.projection.mark_deleted(home.room, home.id)
    assert await refused(register(world, home.owner, home.room), NotFound) == "SPACE_NOT_FOUND"
    assert world.devices.rows == {}


@pytest.mark.parametrize(
    ("space", "kind", "name", "expected"),
    [
        ("not-a-uuid", "HEATER", "ok", "INVALID_ID"),
        ("x" * 6000, "HEATER", "ok", "INVALID_ID"),
        (None, "", "ok", "INVALID_DEVICE_TYPE"),
        (None, "HEATER", "", "FIELD_REQUIRED"),
        (None, "HEATER", "a\x00b", "INVALID_CHARACTERS"),
        (None, "HEATER", "n" * 101, "FIELD_TOO_LONG"),
    ],
)
async def test_registration_input_is_checked_before_anything_else(
    world: DeviceWorld, space: str | None, kind: str, name: str, expected: str
) -> None:
    home = Home(world)
    call = world.handlers.register(home.owner, space or str(home.id), kind, name)
    assert await refused(call, InvalidArgument) == expected
    assert world.space.calls == []


# Reading


async def test_any_member_reads_a_device_a_stranger_does_not_see_it(world: DeviceWorld) -> None:
    home = await projected_home(world)
    device = (await register(world, home.owner, home.room)).device
    for member in (home.owner, home.maintainer, home.guest, person("ADMIN")):
        assert (await world.handlers.get_device(member, str(device.id))).id == device.id
    assert (
        await refused(world.handlers.get_device(person(), str(device.id)), NotFound)
        == "DEVICE_NOT_FOUND"
    )
    assert (
        await refused(world.handlers.get_device(home.owner, str(uuid.uuid4())), NotFound)
        == "DEVICE_NOT_FOUND"
    )


async def test_a_home_lists_its_rooms_devices_a_room_only_its_own(world: DeviceWorld) -> None:
    home = await projected_home(world)
    in_home = (await register(world, home.owner, home.id, "A")).device
    world.clock.advance(seconds=1)
    in_room = (await register(world, home.owner, home.room, "B")).device
    elsewhere = await projected_home(world)
    await register(world, elsewhere.owner, elsewhere.id, "Not here")
    listed, _ = await world.handlers.list_devices(home.guest, str(home.id), 0, "")
    assert [device.id for device in listed] == [in_home.id, in_room.id]
    listed, _ = await world.handlers.list_devices(home.guest, str(home.room), 0, "")
    assert [device.id for device in listed] == [in_room.id]


async def test_devices_are_listed_page_by_page(world: DeviceWorld) -> None:
    home = await projected_home(world)
    ids = []
    for number in range(5):
        world.clock.advance(seconds=1)
        ids.append((await register(world, home.owner, home.id, f"D{number}")).device.id)
    seen, token = [], ""
    while True:
        page, token = await world.handlers.list_devices(home.owner, str(home.id), 2, token)
        assert len(page) <= 2
        seen += [device.id for device in page]
        if not token:
            break
    assert seen == ids


async def test_listing_a_space_of_another_home_is_refused_as_unknown(world: DeviceWorld) -> None:
    home = await projected_home(world)
    assert (
        await refused(world.handlers.list_devices(person(), str(home.id), 0, ""), NotFound)
        == "SPACE_NOT_FOUND"
    )


# Status


async def test_a_status_change_is_logged_and_announced(world: DeviceWorld) -> None:
    home = await projected_home(world)
    device = (await register(world, home.owner, home.id)).device
    updated = await world.handlers.update_status(home.maintainer, str(device.id), "ERROR")
    assert updated.status == "ERROR"
    assert world.devices.rows[device.id].status == "ERROR"
    assert world.logs.lines(device.id) == ["registered", "status OFFLINE -> ERROR"]
    [event] = events(world, device_pb2.DeviceStatusChanged)
    assert (event.old_status, event.new_status, event.space_id) == (
        device_pb2.OFFLINE,
        device_pb2.ERROR,
        str(home.id),
    )


async def test_the_same_status_again_writes_nothing(world: DeviceWorld) -> None:
    home = await projected_home(world)
    device = (await register(world, home.owner, home.id)).device
    commits = world.uow.commits
    assert (await world.handlers.update_status(home.owner, str(device.id), "OFFLINE")).status == (
        "OFFLINE"
    )
    assert world.logs.lines(device.id) == ["registered"]
    assert events(world, device_pb2.DeviceStatusChanged) == []
    assert world.uow.commits == commits + 1  # the transaction that found nothing to do


async def test_a_guest_may_not_set_a_status_a_stranger_is_told_nothing(
    world: DeviceWorld,
) -> None:
    home = await projected_home(world)
    device = (await register(world, home.owner, home.id)).device
    assert (
        await refused(
            world.handlers.update_status(home.guest, str(device.id), "ONLINE"), PermissionDenied
        )
        == "SPACE_ROLE_INSUFFICIENT"
    )
    assert (
        await refused(world.handlers.update_status(person(), str(device.id), "ONLINE"), NotFound)
        == "DEVICE_NOT_FOUND"
    )
    assert world.devices.rows[device.id].status == "OFFLINE"


async def test_an_unknown_status_is_refused(world: DeviceWorld) -> None:
    home = await projected_home(world)
    device = (await register(world, home.owner, home.id)).device
    assert (
        await refused(world.handlers.update_status(home.owner, str(device.id), ""), InvalidArgument)
        == "INVALID_DEVICE_STATUS"
    )


# Rename and move


async def test_a_device_is_renamed_and_moved_within_its_home(world: DeviceWorld) -> None:
    home = await projected_home(world)
    device = (await register(world, home.owner, home.id)).device
    renamed = await world.handlers.update_device(home.maintainer, str(device.id), "Kitchen", None)
    assert renamed.name == "Kitchen"
    moved = await world.handlers.update_device(
        home.maintainer, str(device.id), None, str(home.room)
    )
    assert (moved.space_id, moved.home_id, moved.name) == (home.room, home.id, "Kitchen")
    assert world.logs.lines(device.id) == ["registered", "renamed", "moved"]
    first, second = events(world, device_pb2.DeviceUpdated)
    assert (first.name, first.space_id) == ("Kitchen", str(home.id))
    assert (second.space_id, second.old_space_id) == (str(home.room), str(home.id))


async def test_a_move_to_another_home_is_refused(world: DeviceWorld) -> None:
    home = await projected_home(world)
    other = await projected_home(world)
    device = (await register(world, home.owner, home.id)).device
    for target in (other.id, other.room, uuid.uuid4()):
        assert (
            await refused(
                world.handlers.update_device(home.owner, str(device.id), None, str(target)),
                InvalidArgument,
            )
            == "SPACE_NOT_IN_HOME"
        )
    assert world.devices.rows[device.id].space_id == home.id


async def test_a_move_to_a_room_space_knows_but_the_projection_does_not(
    world: DeviceWorld,
) -> None:
    home = await projected_home(world)
    device = (await register(world, home.owner, home.id)).device
    new_room = world.space.new_room(home.id)
    moved = await world.handlers.update_device(home.owner, str(device.id), None, str(new_room))
    assert moved.space_id == new_room
    assert world.space.calls == [(new_room, uid(home.owner))]


async def test_an_update_without_changes_is_refused_or_writes_nothing(world: DeviceWorld) -> None:
    home = await projected_home(world)
    device = (await register(world, home.owner, home.id, "Same")).device
    assert (
        await refused(
            world.handlers.update_device(home.owner, str(device.id), None, None), InvalidArgument
        )
        == "NOTHING_TO_UPDATE"
    )
    same = await world.handlers.update_device(home.owner, str(device.id), "Same", str(home.id))
    assert same == device
    assert events(world, device_pb2.DeviceUpdated) == []


async def test_a_guest_may_not_rename(world: DeviceWorld) -> None:
    home = await projected_home(world)
    device = (await register(world, home.owner, home.id)).device
    assert (
        await refused(
            world.handlers.update_device(home.guest, str(device.id), "Mine", None), PermissionDenied
        )
        == "SPACE_ROLE_INSUFFICIENT"
    )


# Retirement and secrets


async def test_a_retired_device_is_gone_and_cannot_connect(world: DeviceWorld) -> None:
    home = await projected_home(world)
    registered = await register(world, home.owner, home.id)
    device = registered.device
    await world.handlers.retire(home.maintainer, str(device.id))
    assert world.devices.rows[device.id].retired_at == world.clock.now
    assert world.logs.lines(device.id) == ["registered", "retired"]
    [event] = events(world, device_pb2.DeviceRetired)
    assert event.device_id == str(device.id)
    assert (
        await refused(world.handlers.get_device(home.owner, str(device.id)), NotFound)
        == "DEVICE_NOT_FOUND"
    )
    assert (
        await refused(
            world.handlers.authenticate(str(device.id), registered.secret), Unauthenticated
        )
        == "DEVICE_CREDENTIALS_INVALID"
    )
    assert await world.handlers.count_in_space(str(home.id)) == 0


async def test_a_guest_may_not_retire_or_rotate(world: DeviceWorld) -> None:
    home = await projected_home(world)
    device = (await register(world, home.owner, home.id)).device
    for call in (world.handlers.retire, world.handlers.rotate_secret):
        assert await refused(call(home.guest, str(device.id)), PermissionDenied) == (
            "SPACE_ROLE_INSUFFICIENT"
        )
        assert await refused(call(person(), str(device.id)), NotFound) == "DEVICE_NOT_FOUND"
    assert world.devices.rows[device.id].retired_at is None


async def test_a_rotated_secret_replaces_the_old_one_at_once(world: DeviceWorld) -> None:
    home = await projected_home(world)
    registered = await register(world, home.owner, home.id)
    device_id = str(registered.device.id)
    new_secret = await world.handlers.rotate_secret(home.owner, device_id)
    assert new_secret != registered.secret
    assert (await world.handlers.authenticate(device_id, new_secret)).id == registered.device.id
    assert (
        await refused(world.handlers.authenticate(device_id, registered.secret), Unauthenticated)
        == "DEVICE_CREDENTIALS_INVALID"
    )
    assert world.logs.lines(registered.device.id) == ["registered", "secret rotated"]
    assert len(events(world, device_pb2.DeviceSecretRotated)) == 1


@pytest.mark.parametrize(
    ("device_id", "secret"),
    [
        ("not-a-uuid", "whatever"),
        ("x" * 6000, "whatever"),
        (str(uuid.uuid4()), "whatever"),
        (None, "wrong"),
        (None, ""),
        (None, "s" * 6000),
    ],
)
async def test_bad_device_credentials_get_one_answer(
    world: DeviceWorld, device_id: str | None, secret: str
) -> None:
    home = await projected_home(world)
    device = (await register(world, home.owner, home.id)).device
    call = world.handlers.authenticate(device_id or str(device.id), secret)
    assert await refused(call, Unauthenticated) == "DEVICE_CREDENTIALS_INVALID"


# Counting and logs


async def test_a_home_counts_its_rooms_devices(world: DeviceWorld) -> None:
    home = await projected_home(world)
    await register(world, home.owner, home.id)
    await register(world, home.owner, home.room)
    await register(world, home.owner, home.room)
    assert await world.handlers.count_in_space(str(home.id)) == 3
    assert await world.handlers.count_in_space(str(home.room)) == 2
    assert await world.handlers.count_in_space(str(uuid.uuid4())) == 0
    assert await refused(world.handlers.count_in_space("nope"), InvalidArgument) == "INVALID_ID"


async def test_logs_come_newest_first_filtered_and_paged(world: DeviceWorld) -> None:
    home = await projected_home(world)
    device = (await register(world, home.owner, home.id)).device
    for status in ("ONLINE", "ERROR", "OFFLINE"):
        world.clock.advance(seconds=1)
        await world.handlers.update_status(home.owner, str(device.id), status)
    everything, token = await world.handlers.list_logs(home.guest, str(device.id), None, 0, "")
    assert [entry.event for entry in everything] == [
        "status ERROR -> OFFLINE",
        "status ONLINE -> ERROR",
        "status OFFLINE -> ONLINE",
        "registered",
    ]
    assert token == ""
    changes, _ = await world.handlers.list_logs(home.guest, str(device.id), "DEVICE_CHANGED", 0, "")
    assert [entry.event for entry in changes] == ["registered"]
    first, token = await world.handlers.list_logs(home.guest, str(device.id), None, 3, "")
    rest, last = await world.handlers.list_logs(home.guest, str(device.id), None, 3, token)
    assert [entry.id for entry in first + rest] == [entry.id for entry in everything]
    assert last == ""


async def test_logs_are_refused_to_strangers_and_with_an_unknown_kind(world: DeviceWorld) -> None:
    home = await projected_home(world)
    device = (await register(world, home.owner, home.id)).device
    assert (
        await refused(world.handlers.list_logs(person(), str(device.id), None, 0, ""), NotFound)
        == "DEVICE_NOT_FOUND"
    )
    assert (
        await refused(
            world.handlers.list_logs(home.owner, str(device.id), "", 0, ""), InvalidArgument
        )
        == "INVALID_LOG_KIND"
    )
