"""DeviceService with User and Space in-process, on real PostgreSQL and NATS:
who may do what, how fast Space's changes reach it, devices' life and logs."""

import asyncio
import itertools
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, TypeVar

import grpc
import pytest
from google.protobuf.message import Message
from nats.js import JetStreamContext
from sqlalchemy import text
from warmhouse.device.v1 import device_pb2
from warmhouse.space.v1 import space_pb2

from services.runtime import messaging
from services.runtime.config import RuntimeSettings
from services.runtime.database import Query
from tests.accounts import Metadata, refused
from tests.integration.households import (
    Household,
    add_member,
    as_service,
    events_about,
    new_home,
    new_household,
    new_room,
)
from tests.integration.mesh import Mesh, People, Person
from tests.polling import eventually

if TYPE_CHECKING:
    from warmhouse.device.v1.device_pb2_grpc import DeviceServiceAsyncStub
    from warmhouse.space.v1.space_pb2_grpc import SpaceServiceAsyncStub

Code = grpc.StatusCode
M = TypeVar("M", bound=Message)
DEVICE_STREAM = str(messaging.stream_config("device").name)
_MEMBERSHIP_ROLE = Query(
    text("SELECT role FROM memberships WHERE home_id = :home_id AND user_id = :user_id")
)


async def device_events(jetstream: JetStreamContext, kind: type[M], device_id: str) -> list[M]:
    """The events of that kind about the device published so far."""
    return await events_about(jetstream, DEVICE_STREAM, kind, "device_id", device_id)


def internal(runtime_settings: RuntimeSettings) -> Metadata:
    """A service credential, as the Device Adapter would send it."""
    return as_service(runtime_settings, "device-adapter")


async def register(
    devices: "DeviceServiceAsyncStub",
    by: Person,
    space_id: str,
    name: str = "Radiator",
    kind: device_pb2.DeviceType.ValueType = device_pb2.HEATER,
) -> device_pb2.RegisterDeviceResponse:
    request = device_pb2.RegisterDeviceRequest(space_id=space_id, type=kind, name=name)
    return await devices.RegisterDevice(request, metadata=by.auth)


async def device_id_in(devices: "DeviceServiceAsyncStub", household: Household) -> str:
    return str((await register(devices, household.owner, household.room)).device.device_id)


# Registering at once


async def test_a_device_is_registered_in_a_space_created_a_moment_ago(
    spaces: "SpaceServiceAsyncStub", devices: "DeviceServiceAsyncStub", people: People
) -> None:
    owner = await people.new()
    for number in range(3):
        # No wait for Space's events: the access check asks Space itself.
        home = await new_home(spaces, owner, f"Home {number}")
        registered = await register(devices, owner, home)
        room = await new_room(spaces, owner, home)
        in_room = await register(devices, owner, room, "In the room")
        assert (registered.device.space_id, in_room.device.space_id) == (home, room)
        assert registered.device.status == device_pb2.OFFLINE
        assert len(registered.device_secret) >= 43


# Who may do what

Call = Callable[["DeviceServiceAsyncStub", Household, Person], Awaitable[object]]


async def _get(devices: "DeviceServiceAsyncStub", home: Household, who: Person) -> object:
    request = device_pb2.GetDeviceRequest(device_id=await device_id_in(devices, home))
    return await devices.GetDevice(request, metadata=who.auth)


async def _list(devices: "DeviceServiceAsyncStub", home: Household, who: Person) -> object:
    request = device_pb2.ListDevicesRequest(space_id=home.home)
    return await devices.ListDevices(request, metadata=who.auth)


async def _logs(devices: "DeviceServiceAsyncStub", home: Household, who: Person) -> object:
    request = device_pb2.ListDeviceLogsRequest(device_id=await device_id_in(devices, home))
    return await devices.ListDeviceLogs(request, metadata=who.auth)


async def _register(devices: "DeviceServiceAsyncStub", home: Household, who: Person) -> object:
    return await register(devices, who, home.room)


async def _status(devices: "DeviceServiceAsyncStub", home: Household, who: Person) -> object:
    request = device_pb2.UpdateDeviceStatusRequest(
        device_id=await device_id_in(devices, home), status=device_pb2.ERROR
    )
    return await devices.UpdateDeviceStatus(request, metadata=who.auth)


async def _rename(devices: "DeviceServiceAsyncStub", home: Household, who: Person) -> object:
    request = device_pb2.UpdateDeviceRequest(
        device_id=await device_id_in(devices, home), name="Renamed"
    )
    return await devices.UpdateDevice(request, metadata=who.auth)


async def _move(devices: "DeviceServiceAsyncStub", home: Household, who: Person) -> object:
    request = device_pb2.UpdateDeviceRequest(
        device_id=await device_id_in(devices, home), space_id=home.home
    )
    return await devices.UpdateDevice(request, metadata=who.auth)


async def _retire(devices: "DeviceServiceAsyncStub", home: Household, who: Person) -> object:
    request = device_pb2.DeleteDeviceRequest(device_id=await device_id_in(devices, home))
    return await devices.DeleteDevice(request, metadata=who.auth)


async def _rotate(devices: "DeviceServiceAsyncStub", home: Household, who: Person) -> object:
    request = device_pb2.RotateDeviceSecretRequest(device_id=await device_id_in(devices, home))
    return await devices.RotateDeviceSecret(request, metadata=who.auth)


READS: dict[str, tuple[Call, str]] = {
    "GetDevice": (_get, "DEVICE_NOT_FOUND"),
    "ListDevices": (_list, "SPACE_NOT_FOUND"),
    "ListDeviceLogs": (_logs, "DEVICE_NOT_FOUND"),
}
CHANGES: dict[str, tuple[Call, str]] = {
    "RegisterDevice": (_register, "SPACE_NOT_FOUND"),
    "UpdateDeviceStatus": (_status, "DEVICE_NOT_FOUND"),
    "UpdateDevice": (_rename, "DEVICE_NOT_FOUND"),
    "UpdateDevice: move": (_move, "DEVICE_NOT_FOUND"),
    "DeleteDevice": (_retire, "DEVICE_NOT_FOUND"),
    "RotateDeviceSecret": (_rotate, "DEVICE_NOT_FOUND"),
}


@pytest.mark.parametrize("rpc", sorted(READS))
async def test_every_member_reads_a_stranger_is_told_nothing_exists(
    devices: "DeviceServiceAsyncStub", household: Household, rpc: str
) -> None:
    call, hidden = READS[rpc]
    h = household
    for who in (h.owner, h.maintainer, h.guest, h.admin):
        await call(devices, h, who)
    assert await refused(call(devices, h, h.stranger), Code.NOT_FOUND) == hidden


@pytest.mark.parametrize("rpc", sorted(CHANGES))
async def test_owners_maintainers_and_admins_manage_guests_may_not(
    devices: "DeviceServiceAsyncStub", household: Household, rpc: str
) -> None:
    call, hidden = CHANGES[rpc]
    h = household
    for who in (h.owner, h.maintainer, h.admin):
        await call(devices, h, who)
    assert await refused(call(devices, h, h.guest), Code.PERMISSION_DENIED) == (
        "SPACE_ROLE_INSUFFICIENT"
    )
    assert await refused(call(devices, h, h.stranger), Code.NOT_FOUND) == hidden


# Space's changes reach Device


async def is_hidden(call: Awaitable[object]) -> bool:
    """Whether the call is refused as NOT_FOUND (a probe for `eventually`:
    `refused` fails the test at once)."""
    try:
        await call
    except grpc.aio.AioRpcError as error:
        if error.code() != Code.NOT_FOUND:
            raise
        return True
    return False


async def test_a_removed_member_loses_access_within_two_seconds(
    mesh: Mesh, spaces: "SpaceServiceAsyncStub", devices: "DeviceServiceAsyncStub", people: People
) -> None:
    h = await new_household(spaces, people)
    device_id = await device_id_in(devices, h)
    get = device_pb2.GetDeviceRequest(device_id=device_id)
    await devices.GetDevice(get, metadata=h.maintainer.auth)

    async def projected_role() -> str | None:
        async with mesh.device.runtime.database.connection() as connection:
            return await connection.fetchval(  # type: ignore[no-any-return]
                _MEMBERSHIP_ROLE, home_id=uuid.UUID(h.home), user_id=uuid.UUID(h.maintainer.user_id)
            )

    # The copy grants it on its own: the removal must reach it, not a call to Space.
    assert await eventually(projected_role, what="the membership in the projection") == (
        "MAINTAINER"
    )
    removal = space_pb2.RemoveSpaceUserRequest(space_id=h.home, user_id=h.maintainer.user_id)
    await spaces.RemoveSpaceUser(removal, metadata=h.owner.auth)
    removed_at = time.monotonic()

    async def hidden() -> bool:
        return await is_hidden(devices.GetDevice(get, metadata=h.maintainer.auth))

    await eventually(hidden, within=2.0, what="the removal reaching Device")
    assert time.monotonic() - removed_at < 2.5


async def test_a_guest_loses_access_when_it_expires(
    spaces: "SpaceServiceAsyncStub", devices: "DeviceServiceAsyncStub", people: People
) -> None:
    h = await new_household(spaces, people)
    device_id = await device_id_in(devices, h)
    visitor = await people.new()
    ends = datetime.now(UTC) + timedelta(seconds=1.5)
    await add_member(spaces, h.owner, h.home, visitor.user_id, space_pb2.GUEST, ends)
    added_at = time.monotonic()
    get = device_pb2.GetDeviceRequest(device_id=device_id)
    assert (await devices.GetDevice(get, metadata=visitor.auth)).device.device_id == device_id

    async def hidden() -> bool:
        return await is_hidden(devices.GetDevice(get, metadata=visitor.auth))

    await eventually(hidden, within=2.0, what="the expiry reaching Device")
    # Not before the expiry: access was granted until then.
    assert time.monotonic() - added_at >= 1.0


# A device's life


async def test_a_status_change_is_logged_and_announced_once(
    mesh: Mesh, devices: "DeviceServiceAsyncStub", household: Household
) -> None:
    device_id = await device_id_in(devices, household)
    request = device_pb2.UpdateDeviceStatusRequest(device_id=device_id, status=device_pb2.ONLINE)
    for _ in range(2):  # the same status twice: one change
        answer = await devices.UpdateDeviceStatus(request, metadata=household.maintainer.auth)
        assert (answer.device_id, answer.status) == (device_id, device_pb2.ONLINE)
    logs = await devices.ListDeviceLogs(
        device_pb2.ListDeviceLogsRequest(device_id=device_id, kind=device_pb2.STATUS_CHANGED),
        metadata=household.guest.auth,
    )
    assert [entry.event for entry in logs.device_logs] == ["status OFFLINE -> ONLINE"]
    get = device_pb2.GetDeviceRequest(device_id=device_id)
    assert (await devices.GetDevice(get, metadata=household.guest.auth)).device.status == (
        device_pb2.ONLINE
    )

    async def announced() -> list[device_pb2.DeviceStatusChanged]:
        jetstream = mesh.device.runtime.jetstream
        return await device_events(jetstream, device_pb2.DeviceStatusChanged, device_id)

    [event] = await eventually(announced, within=5.0, what="DeviceStatusChanged")
    assert (event.space_id, event.old_status, event.new_status) == (
        household.room,
        device_pb2.OFFLINE,
        device_pb2.ONLINE,
    )


async def test_concurrent_status_changes_log_one_unbroken_history(
    devices: "DeviceServiceAsyncStub", household: Household
) -> None:
    device_id = await device_id_in(devices, household)
    statuses = [device_pb2.ONLINE, device_pb2.ERROR, device_pb2.OFFLINE] * 20
    await asyncio.gather(
        *(
            devices.UpdateDeviceStatus(
                device_pb2.UpdateDeviceStatusRequest(device_id=device_id, status=status),
                metadata=household.maintainer.auth,
            )
            for status in statuses
        )
    )
    request = device_pb2.ListDeviceLogsRequest(
        device_id=device_id, kind=device_pb2.STATUS_CHANGED, page_size=100
    )
    newest_first = (
        await devices.ListDeviceLogs(request, metadata=household.guest.auth)
    ).device_logs
    changes = [
        entry.event.removeprefix("status ").split(" -> ") for entry in reversed(newest_first)
    ]
    # Each change starts where the one before it ended, and the last is where the device is.
    assert all(earlier[1] == later[0] for earlier, later in itertools.pairwise(changes))
    device = (
        await devices.GetDevice(
            device_pb2.GetDeviceRequest(device_id=device_id), metadata=household.guest.auth
        )
    ).device
    assert changes[-1][1] == device_pb2.DeviceStatus.Name(device.status)


async def test_a_device_is_renamed_and_moved_within_its_home_only(
    spaces: "SpaceServiceAsyncStub",
    devices: "DeviceServiceAsyncStub",
    household: Household,
    people: People,
) -> None:
    h = household
    device_id = await device_id_in(devices, h)
    update = device_pb2.UpdateDeviceRequest(device_id=device_id, name="Bathroom", space_id=h.home)
    device = (await devices.UpdateDevice(update, metadata=h.maintainer.auth)).device
    assert (device.name, device.space_id) == ("Bathroom", h.home)
    other_home = await new_home(spaces, h.owner, "Cottage")
    for target in (other_home, str(uuid.uuid4())):
        move = device_pb2.UpdateDeviceRequest(device_id=device_id, space_id=target)
        call = devices.UpdateDevice(move, metadata=h.owner.auth)
        assert await refused(call, Code.INVALID_ARGUMENT) == "SPACE_NOT_IN_HOME"
    nothing = device_pb2.UpdateDeviceRequest(device_id=device_id)
    call = devices.UpdateDevice(nothing, metadata=h.owner.auth)
    assert await refused(call, Code.INVALID_ARGUMENT) == "NOTHING_TO_UPDATE"
    logs = await devices.ListDeviceLogs(
        device_pb2.ListDeviceLogsRequest(device_id=device_id), metadata=h.guest.auth
    )
    assert sorted(entry.event for entry in logs.device_logs) == ["moved", "registered", "renamed"]


async def test_a_retired_device_is_gone_and_cannot_connect(
    devices: "DeviceServiceAsyncStub", household: Household, runtime_settings: RuntimeSettings
) -> None:
    registered = await register(devices, household.owner, household.room)
    device_id = registered.device.device_id
    credentials = device_pb2.AuthenticateDeviceRequest(
        device_id=device_id, device_secret=registered.device_secret
    )
    authenticated = await devices.AuthenticateDevice(
        credentials, metadata=internal(runtime_settings)
    )
    assert (authenticated.space_id, authenticated.type) == (household.room, device_pb2.HEATER)
    retire = device_pb2.DeleteDeviceRequest(device_id=device_id)
    await devices.DeleteDevice(retire, metadata=household.maintainer.auth)
    get = devices.GetDevice(
        device_pb2.GetDeviceRequest(device_id=device_id), metadata=household.owner.auth
    )
    assert await refused(get, Code.NOT_FOUND) == "DEVICE_NOT_FOUND"
    again = devices.DeleteDevice(retire, metadata=household.owner.auth)
    assert await refused(again, Code.NOT_FOUND) == "DEVICE_NOT_FOUND"
    connect = devices.AuthenticateDevice(credentials, metadata=internal(runtime_settings))
    assert await refused(connect, Code.UNAUTHENTICATED) == "DEVICE_CREDENTIALS_INVALID"


async def test_a_rotated_secret_replaces_the_old_one(
    devices: "DeviceServiceAsyncStub", household: Household, runtime_settings: RuntimeSettings
) -> None:
    registered = await register(devices, household.owner, household.room)
    device_id = registered.device.device_id
    rotated = await devices.RotateDeviceSecret(
        device_pb2.RotateDeviceSecretRequest(device_id=device_id), metadata=household.owner.auth
    )
    old = device_pb2.AuthenticateDeviceRequest(
        device_id=device_id, device_secret=registered.device_secret
    )
    new = device_pb2.AuthenticateDeviceRequest(
        device_id=device_id, device_secret=rotated.device_secret
    )
    call = devices.AuthenticateDevice(old, metadata=internal(runtime_settings))
    assert await refused(call, Code.UNAUTHENTICATED) == "DEVICE_CREDENTIALS_INVALID"
    answer = await devices.AuthenticateDevice(new, metadata=internal(runtime_settings))
    assert answer.device_id == device_id


@pytest.mark.parametrize(
    ("device_id", "secret"),
    [
        (None, "wrong"),
        (None, ""),
        (None, "s" * 6000),
        (str(uuid.uuid4()), "whatever"),
        ("not-a-uuid", "whatever"),
        ("x" * 6000, "whatever"),
        ("\x00" * 36, "whatever"),
    ],
    ids=["wrong", "empty", "overlong", "unknown", "malformed", "6 KB id", "NUL id"],
)
async def test_bad_device_credentials_get_one_answer(
    devices: "DeviceServiceAsyncStub",
    household: Household,
    runtime_settings: RuntimeSettings,
    device_id: str | None,
    secret: str,
) -> None:
    real = (await register(devices, household.owner, household.room)).device.device_id
    request = device_pb2.AuthenticateDeviceRequest(
        device_id=device_id or real, device_secret=secret
    )
    call = devices.AuthenticateDevice(request, metadata=internal(runtime_settings))
    assert await refused(call, Code.UNAUTHENTICATED) == "DEVICE_CREDENTIALS_INVALID"


async def test_internal_methods_need_a_service_credential(
    devices: "DeviceServiceAsyncStub", household: Household
) -> None:
    registered = await register(devices, household.owner, household.room)
    authenticate = device_pb2.AuthenticateDeviceRequest(
        device_id=registered.device.device_id, device_secret=registered.device_secret
    )
    count = device_pb2.CountSpaceDevicesRequest(space_id=household.home)
    for metadata in ((), household.owner.auth, household.admin.auth):
        call = devices.AuthenticateDevice(authenticate, metadata=metadata)
        assert await refused(call, Code.UNAUTHENTICATED) == "SERVICE_CREDENTIAL_REQUIRED"
        counting = devices.CountSpaceDevices(count, metadata=metadata)
        assert await refused(counting, Code.UNAUTHENTICATED) == "SERVICE_CREDENTIAL_REQUIRED"


async def test_a_home_counts_its_rooms_devices(
    spaces: "SpaceServiceAsyncStub",
    devices: "DeviceServiceAsyncStub",
    people: People,
    runtime_settings: RuntimeSettings,
) -> None:
    owner = await people.new()
    home = await new_home(spaces, owner)
    room = await new_room(spaces, owner, home)
    await register(devices, owner, home)
    await register(devices, owner, room)
    retired = await register(devices, owner, room)
    await devices.DeleteDevice(
        device_pb2.DeleteDeviceRequest(device_id=retired.device.device_id), metadata=owner.auth
    )

    async def count(space_id: str) -> int:
        request = device_pb2.CountSpaceDevicesRequest(space_id=space_id)
        answer = await devices.CountSpaceDevices(request, metadata=internal(runtime_settings))
        return int(answer.device_count)

    assert (await count(home), await count(room), await count(str(uuid.uuid4()))) == (2, 1, 0)


# Lists


async def test_a_home_lists_its_rooms_devices_a_room_only_its_own_page_by_page(
    spaces: "SpaceServiceAsyncStub", devices: "DeviceServiceAsyncStub", people: People
) -> None:
    owner = await people.new()
    home = await new_home(spaces, owner)
    room = await new_room(spaces, owner, home)
    expected = []
    for number in range(5):
        space = home if number % 2 == 0 else room
        expected.append((await register(devices, owner, space, f"D{number}")).device.device_id)
    seen, token = [], ""
    while True:
        page = await devices.ListDevices(
            device_pb2.ListDevicesRequest(space_id=home, page_size=2, page_token=token),
            metadata=owner.auth,
        )
        assert len(page.devices) <= 2
        seen += [device.device_id for device in page.devices]
        token = page.next_page_token
        if not token:
            break
    assert seen == expected
    in_room = await devices.ListDevices(
        device_pb2.ListDevicesRequest(space_id=room), metadata=owner.auth
    )
    assert [device.device_id for device in in_room.devices] == expected[1::2]


async def test_logs_come_newest_first_filtered_and_paged(
    devices: "DeviceServiceAsyncStub", household: Household
) -> None:
    device_id = await device_id_in(devices, household)
    for status in (device_pb2.ONLINE, device_pb2.ERROR, device_pb2.OFFLINE):
        await devices.UpdateDeviceStatus(
            device_pb2.UpdateDeviceStatusRequest(device_id=device_id, status=status),
            metadata=household.owner.auth,
        )
    await devices.UpdateDevice(
        device_pb2.UpdateDeviceRequest(device_id=device_id, name="Renamed"),
        metadata=household.owner.auth,
    )
    everything = await devices.ListDeviceLogs(
        device_pb2.ListDeviceLogsRequest(device_id=device_id), metadata=household.guest.auth
    )
    assert [entry.event for entry in everything.device_logs] == [
        "renamed",
        "status ERROR -> OFFLINE",
        "status ONLINE -> ERROR",
        "status OFFLINE -> ONLINE",
        "registered",
    ]
    times = [entry.occur_time.ToDatetime() for entry in everything.device_logs]
    assert times == sorted(times, reverse=True)
    changes = await devices.ListDeviceLogs(
        device_pb2.ListDeviceLogsRequest(device_id=device_id, kind=device_pb2.DEVICE_CHANGED),
        metadata=household.guest.auth,
    )
    assert [entry.event for entry in changes.device_logs] == ["renamed", "registered"]
    assert {entry.kind for entry in changes.device_logs} == {device_pb2.DEVICE_CHANGED}
    paged, token = [], ""
    while True:
        page = await devices.ListDeviceLogs(
            device_pb2.ListDeviceLogsRequest(device_id=device_id, page_size=2, page_token=token),
            metadata=household.guest.auth,
        )
        paged += [entry.log_id for entry in page.device_logs]
        token = page.next_page_token
        if not token:
            break
    assert paged == [entry.log_id for entry in everything.device_logs]


# Input that is not what the contract allows


# Any number may arrive where the contract has an enum.
DeviceType = device_pb2.DeviceType.ValueType
DeviceStatus = device_pb2.DeviceStatus.ValueType
LogKind = device_pb2.DeviceLogKind.ValueType


def _bad_requests(device_id: str, space_id: str) -> list[tuple[str, Message]]:
    long_id, nul_id = "x" * 6000, "\x00" * 36
    pb = device_pb2

    def register(space: str = space_id, kind: int = 1, name: str = "a") -> Message:
        return pb.RegisterDeviceRequest(space_id=space, type=DeviceType(kind), name=name)

    def status(device: str = device_id, value: int = 1) -> Message:
        return pb.UpdateDeviceStatusRequest(device_id=device, status=DeviceStatus(value))

    return [
        ("GetDevice", pb.GetDeviceRequest(device_id=long_id)),
        ("GetDevice", pb.GetDeviceRequest(device_id=nul_id)),
        ("ListDevices", pb.ListDevicesRequest(space_id=long_id)),
        ("ListDevices", pb.ListDevicesRequest(space_id=space_id, page_size=-1)),
        ("ListDevices", pb.ListDevicesRequest(space_id=space_id, page_token="forged")),
        ("RegisterDevice", register(space=long_id)),
        ("RegisterDevice", register(kind=99)),
        ("RegisterDevice", register(kind=0)),
        ("RegisterDevice", register(name="\x00")),
        ("RegisterDevice", register(name="n" * 6000)),
        ("UpdateDeviceStatus", status(value=0)),
        ("UpdateDeviceStatus", status(value=42)),
        ("UpdateDeviceStatus", status(device=long_id)),
        ("ListDeviceLogs", pb.ListDeviceLogsRequest(device_id=device_id, kind=LogKind(99))),
        ("ListDeviceLogs", pb.ListDeviceLogsRequest(device_id=nul_id)),
        ("UpdateDevice", pb.UpdateDeviceRequest(device_id=device_id, name="a\x00b")),
        ("UpdateDevice", pb.UpdateDeviceRequest(device_id=device_id, space_id=long_id)),
        ("DeleteDevice", pb.DeleteDeviceRequest(device_id=long_id)),
        ("RotateDeviceSecret", pb.RotateDeviceSecretRequest(device_id=nul_id)),
    ]


async def test_malformed_input_is_an_invalid_argument_never_a_server_error(
    devices: "DeviceServiceAsyncStub", household: Household, runtime_settings: RuntimeSettings
) -> None:
    device_id = await device_id_in(devices, household)
    for method, request in _bad_requests(device_id, household.home):
        call = getattr(devices, method)(request, metadata=household.owner.auth)
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await call
        assert failure.value.code() == Code.INVALID_ARGUMENT, (method, failure.value.details())
        assert "xxxxxxxx" not in (failure.value.details() or "")
    count = device_pb2.CountSpaceDevicesRequest(space_id="x" * 6000)
    call = devices.CountSpaceDevices(count, metadata=internal(runtime_settings))
    assert await refused(call, Code.INVALID_ARGUMENT) == "INVALID_ID"


async def test_a_page_token_works_only_on_the_list_that_issued_it(
    devices: "DeviceServiceAsyncStub", household: Household
) -> None:
    for _ in range(2):
        await device_id_in(devices, household)
    first = await devices.ListDevices(
        device_pb2.ListDevicesRequest(space_id=household.home, page_size=1),
        metadata=household.owner.auth,
    )
    assert first.next_page_token
    elsewhere = devices.ListDevices(
        device_pb2.ListDevicesRequest(
            space_id=household.room, page_size=1, page_token=first.next_page_token
        ),
        metadata=household.owner.auth,
    )
    assert await refused(elsewhere, grpc.StatusCode.INVALID_ARGUMENT) == "INVALID_PAGE_TOKEN"
