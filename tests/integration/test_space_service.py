"""SpaceService with User and Device in-process, on real PostgreSQL and NATS:
homes and rooms, who may do what, members' life (expiry, deactivation), what
is refused as bad input, and the membership events' versions."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, TypeAlias, TypeVar, cast

import grpc
import pytest
from google.protobuf.message import Message
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from warmhouse.device.v1 import device_pb2
from warmhouse.space.v1 import space_pb2
from warmhouse.user.v1 import user_pb2, user_pb2_grpc

from services.devstack.nats_process import NatsProcess
from services.runtime import messaging
from services.runtime.config import RuntimeSettings
from services.runtime.outbox import MSG_ID_HEADER
from services.runtime.timestamps import timestamp
from services.space.user_events import UserEvents
from tests.accounts import Metadata, refused, token_of
from tests.fakes import Delivery
from tests.integration.conftest import ADMIN
from tests.integration.households import (
    Household,
    Role,
    add_member,
    as_service,
    events_about,
    new_home,
    new_household,
    new_room,
    published,
)
from tests.integration.mesh import Mesh, People, Person
from tests.polling import eventually

if TYPE_CHECKING:
    from warmhouse.device.v1.device_pb2_grpc import DeviceServiceAsyncStub
    from warmhouse.space.v1.space_pb2_grpc import SpaceServiceAsyncStub
    from warmhouse.user.v1.user_pb2_grpc import UserServiceAsyncStub

Code = grpc.StatusCode
M = TypeVar("M", bound=Message)
SPACE_STREAM = str(messaging.stream_config("space").name)
USER_STREAM = str(messaging.stream_config("user").name)
HUGE = "y" * 6 * 1024
MembershipEvent: TypeAlias = (
    space_pb2.SpaceMemberAdded
    | space_pb2.SpaceMemberRoleChanged
    | space_pb2.SpaceMemberRemoved
    | space_pb2.SpaceMemberExpired
)
MEMBERSHIP_EVENTS: dict[str, type[MembershipEvent]] = {
    str(kind.DESCRIPTOR.full_name): kind
    for kind in (
        space_pb2.SpaceMemberAdded,
        space_pb2.SpaceMemberRoleChanged,
        space_pb2.SpaceMemberRemoved,
        space_pb2.SpaceMemberExpired,
    )
}


# Helpers


async def set_role(
    spaces: "SpaceServiceAsyncStub", by: Person, home: str, user_id: str, role: Role
) -> space_pb2.SpaceUser:
    request = space_pb2.UpdateSpaceUserRequest(space_id=home, user_id=user_id, role=role)
    return (await spaces.UpdateSpaceUser(request, metadata=by.auth)).space_user


async def member_ids(spaces: "SpaceServiceAsyncStub", by: Person, space_id: str) -> set[str]:
    request = space_pb2.ListSpaceUsersRequest(space_id=space_id, page_size=100)
    listed = await spaces.ListSpaceUsers(request, metadata=by.auth)
    return {member.user_id for member in listed.space_users}


async def get_space(spaces: "SpaceServiceAsyncStub", by: Person, space_id: str) -> space_pb2.Space:
    request = space_pb2.GetSpaceRequest(space_id=space_id)
    return (await spaces.GetSpace(request, metadata=by.auth)).space


@pytest.fixture
async def jetstream(nats_server: NatsProcess) -> AsyncIterator[JetStreamContext]:
    client = await messaging.connect(nats_server.url, "space-tests")
    try:
        yield client.jetstream()
    finally:
        await client.close()


@pytest.fixture
def users(mesh: Mesh) -> "UserServiceAsyncStub":
    return user_pb2_grpc.UserServiceStub(mesh.user_channel)


async def space_events(jetstream: JetStreamContext, kind: type[M], space_id: str) -> list[M]:
    """The events of that kind about the space published so far."""
    return await events_about(jetstream, SPACE_STREAM, kind, "space_id", space_id)


def internal(runtime_settings: RuntimeSettings) -> Metadata:
    """A service credential, as the Device service sends it."""
    return as_service(runtime_settings, "device")


async def admin_token(users: "UserServiceAsyncStub") -> Metadata:
    """The configured first administrator's, as User knows it (it acts on accounts)."""
    return await token_of(users, ADMIN.email, ADMIN.password)


# Homes and rooms


async def test_a_home_and_its_room(spaces: "SpaceServiceAsyncStub", people: People) -> None:
    owner = await people.new()
    home = await new_home(spaces, owner, "Квартира")
    room = await new_room(spaces, owner, home, "Кухня")
    read_home = await get_space(spaces, owner, home)
    assert (read_home.name, read_home.owner_id, read_home.parent_space_id) == (
        "Квартира",
        owner.user_id,
        "",
    )
    assert read_home.create_time.seconds
    assert read_home.update_time.seconds
    read_room = await get_space(spaces, owner, room)
    assert (read_room.name, read_room.owner_id, read_room.parent_space_id) == (
        "Кухня",
        owner.user_id,
        home,
    )
    rooms = await spaces.ListSpaces(
        space_pb2.ListSpacesRequest(parent_space_id=home), metadata=owner.auth
    )
    assert [space.space_id for space in rooms.spaces] == [room]
    mine = await spaces.ListSpaces(space_pb2.ListSpacesRequest(), metadata=owner.auth)
    assert [space.space_id for space in mine.spaces] == [home, room]
    member = await spaces.GetSpaceUser(
        space_pb2.GetSpaceUserRequest(space_id=room, user_id=owner.user_id), metadata=owner.auth
    )
    assert (member.space_user.space_id, member.space_user.role) == (home, space_pb2.OWNER)
    nested = spaces.CreateSpace(
        space_pb2.CreateSpaceRequest(name="Shelf", parent_space_id=room), metadata=owner.auth
    )
    assert await refused(nested, Code.INVALID_ARGUMENT) == "ROOMS_CANNOT_NEST"


async def test_admins_create_homes_for_active_users_only(
    spaces: "SpaceServiceAsyncStub", people: People, users: "UserServiceAsyncStub"
) -> None:
    admin, owner = people.admin(), await people.new()
    created = await spaces.CreateSpace(
        space_pb2.CreateSpaceRequest(name="Дача", owner_id=owner.user_id), metadata=admin.auth
    )
    assert (await get_space(spaces, owner, created.space_id)).owner_id == owner.user_id
    for_another = spaces.CreateSpace(
        space_pb2.CreateSpaceRequest(name="Not mine", owner_id=admin.user_id), metadata=owner.auth
    )
    assert await refused(for_another, Code.PERMISSION_DENIED) == "NOT_OWNER"
    gone = await people.new()
    await users.DeleteUser(
        user_pb2.DeleteUserRequest(user_id=gone.user_id), metadata=await admin_token(users)
    )
    answers = []
    for user_id in (str(uuid.uuid4()), gone.user_id):
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await spaces.CreateSpace(
                space_pb2.CreateSpaceRequest(name="x", owner_id=user_id), metadata=admin.auth
            )
        answers.append((failure.value.code(), failure.value.details()))
    assert answers[0] == answers[1] == (Code.INVALID_ARGUMENT, "no active user with this id")


# Who may do what: each RPC as each kind of caller


Call = Callable[["SpaceServiceAsyncStub", Household, Person], Awaitable[object]]


async def _create_room(spaces: "SpaceServiceAsyncStub", h: Household, by: Person) -> object:
    return await new_room(spaces, by, h.home, "Балкон")


async def _get(spaces: "SpaceServiceAsyncStub", h: Household, by: Person) -> object:
    return await get_space(spaces, by, h.room)


async def _list_rooms(spaces: "SpaceServiceAsyncStub", h: Household, by: Person) -> object:
    request = space_pb2.ListSpacesRequest(parent_space_id=h.home)
    return await spaces.ListSpaces(request, metadata=by.auth)


async def _get_member(spaces: "SpaceServiceAsyncStub", h: Household, by: Person) -> object:
    request = space_pb2.GetSpaceUserRequest(space_id=h.home, user_id=h.guest.user_id)
    return await spaces.GetSpaceUser(request, metadata=by.auth)


async def _list_members(spaces: "SpaceServiceAsyncStub", h: Household, by: Person) -> object:
    request = space_pb2.ListSpaceUsersRequest(space_id=h.home)
    return await spaces.ListSpaceUsers(request, metadata=by.auth)


async def _rename(spaces: "SpaceServiceAsyncStub", h: Household, by: Person) -> object:
    request = space_pb2.UpdateSpaceRequest(space_id=h.room, name="Renamed")
    return await spaces.UpdateSpace(request, metadata=by.auth)


READS: dict[str, Call] = {
    "GetSpace": _get,
    "ListSpaces": _list_rooms,
    "GetSpaceUser": _get_member,
    "ListSpaceUsers": _list_members,
}
# Changes that leave the household's membership as it is.
MANAGING: dict[str, Call] = {"CreateSpace": _create_room, "UpdateSpace": _rename}


@pytest.mark.parametrize("rpc", READS)
async def test_members_and_admins_read_strangers_get_404(
    spaces: "SpaceServiceAsyncStub", household: Household, rpc: str
) -> None:
    call = READS[rpc]
    for name in ("owner", "maintainer", "guest", "admin"):
        assert await call(spaces, household, household.callers()[name]), name
    assert await refused(call(spaces, household, household.stranger), Code.NOT_FOUND) == (
        "SPACE_NOT_FOUND"
    )


@pytest.mark.parametrize("rpc", MANAGING)
async def test_owners_and_admins_manage_others_are_refused(
    spaces: "SpaceServiceAsyncStub", household: Household, rpc: str
) -> None:
    call = MANAGING[rpc]
    for name in ("maintainer", "guest"):
        reason = await refused(
            call(spaces, household, household.callers()[name]), Code.PERMISSION_DENIED
        )
        assert reason == "SPACE_ROLE_INSUFFICIENT"
    assert await refused(call(spaces, household, household.stranger), Code.NOT_FOUND) == (
        "SPACE_NOT_FOUND"
    )
    for name in ("owner", "admin"):
        assert await call(spaces, household, household.callers()[name]), name


async def test_who_may_add_change_and_remove_members(
    spaces: "SpaceServiceAsyncStub", people: People
) -> None:
    h = await new_household(spaces, people)
    newcomer = await people.new()

    def add(by: Person) -> Awaitable[object]:
        request = space_pb2.AddSpaceUserRequest(
            space_id=h.home, user_id=newcomer.user_id, role=space_pb2.GUEST
        )
        return spaces.AddSpaceUser(request, metadata=by.auth)

    def change(by: Person, target: Person) -> Awaitable[object]:
        request = space_pb2.UpdateSpaceUserRequest(
            space_id=h.home, user_id=target.user_id, role=space_pb2.MAINTAINER
        )
        return spaces.UpdateSpaceUser(request, metadata=by.auth)

    def remove(by: Person, target: Person) -> Awaitable[object]:
        request = space_pb2.RemoveSpaceUserRequest(space_id=h.home, user_id=target.user_id)
        return spaces.RemoveSpaceUser(request, metadata=by.auth)

    for by, target in ((h.maintainer, h.guest), (h.guest, h.maintainer)):
        for call in (add(by), change(by, target), remove(by, target)):
            assert await refused(call, Code.PERMISSION_DENIED) == "SPACE_ROLE_INSUFFICIENT"
    for call in (add(h.stranger), change(h.stranger, h.guest), remove(h.stranger, h.guest)):
        assert await refused(call, Code.NOT_FOUND) == "SPACE_NOT_FOUND"
    assert await member_ids(spaces, h.owner, h.home) == {
        h.owner.user_id,
        h.maintainer.user_id,
        h.guest.user_id,
    }

    await add(h.owner)
    await change(h.owner, newcomer)
    await remove(h.owner, newcomer)
    await add(h.admin)
    await change(h.admin, newcomer)
    await remove(h.admin, newcomer)
    await remove(h.guest, h.guest)  # leaving needs no right
    assert await member_ids(spaces, h.owner, h.home) == {h.owner.user_id, h.maintainer.user_id}
    missing = remove(h.owner, h.guest)
    assert await refused(missing, Code.NOT_FOUND) == "MEMBER_NOT_FOUND"


async def test_who_may_delete_a_space(spaces: "SpaceServiceAsyncStub", people: People) -> None:
    h = await new_household(spaces, people)

    def delete(by: Person, space_id: str) -> Awaitable[object]:
        return spaces.DeleteSpace(space_pb2.DeleteSpaceRequest(space_id=space_id), metadata=by.auth)

    for by in (h.maintainer, h.guest):
        assert await refused(delete(by, h.room), Code.PERMISSION_DENIED) == (
            "SPACE_ROLE_INSUFFICIENT"
        )
    assert await refused(delete(h.stranger, h.room), Code.NOT_FOUND) == "SPACE_NOT_FOUND"
    await delete(h.admin, h.room)
    await delete(h.owner, h.home)
    for space_id in (h.home, h.room):
        gone = spaces.GetSpace(space_pb2.GetSpaceRequest(space_id=space_id), metadata=h.admin.auth)
        assert await refused(gone, Code.NOT_FOUND) == "SPACE_NOT_FOUND"


async def test_space_access_is_for_services_only(
    spaces: "SpaceServiceAsyncStub", household: Household, runtime_settings: RuntimeSettings
) -> None:
    request = space_pb2.GetSpaceAccessRequest(
        space_id=household.room, user_id=household.guest.user_id
    )
    access = await spaces.GetSpaceAccess(request, metadata=internal(runtime_settings))
    assert (access.space_id, access.home_space_id, access.role) == (
        household.room,
        household.home,
        space_pb2.GUEST,
    )
    assert access.membership_version >= 3
    stranger = await spaces.GetSpaceAccess(
        space_pb2.GetSpaceAccessRequest(
            space_id=household.home, user_id=household.stranger.user_id
        ),
        metadata=internal(runtime_settings),
    )
    assert stranger.role == space_pb2.SPACE_USER_ROLE_UNSPECIFIED
    unknown = spaces.GetSpaceAccess(
        space_pb2.GetSpaceAccessRequest(
            space_id=str(uuid.uuid4()), user_id=household.guest.user_id
        ),
        metadata=internal(runtime_settings),
    )
    assert await refused(unknown, Code.NOT_FOUND) == "SPACE_NOT_FOUND"
    for person in (household.owner, household.admin):
        await refused(spaces.GetSpaceAccess(request, metadata=person.auth), Code.UNAUTHENTICATED)


async def test_listing_by_user_or_owner_is_for_admins(
    spaces: "SpaceServiceAsyncStub", household: Household
) -> None:
    others = spaces.ListSpaces(
        space_pb2.ListSpacesRequest(user_id=household.owner.user_id), metadata=household.guest.auth
    )
    assert await refused(others, Code.PERMISSION_DENIED) == "ADMIN_REQUIRED"
    by_owner = spaces.ListSpaces(
        space_pb2.ListSpacesRequest(owner_id=household.owner.user_id), metadata=household.owner.auth
    )
    assert await refused(by_owner, Code.PERMISSION_DENIED) == "ADMIN_REQUIRED"
    owned = await spaces.ListSpaces(
        space_pb2.ListSpacesRequest(owner_id=household.owner.user_id, page_size=100),
        metadata=household.admin.auth,
    )
    home_and_rooms = {household.home, household.room}
    assert home_and_rooms <= {space.space_id for space in owned.spaces}
    assert all(household.home in (s.space_id, s.parent_space_id) for s in owned.spaces)
    joined = await spaces.ListSpaces(
        space_pb2.ListSpacesRequest(user_id=household.guest.user_id, page_size=100),
        metadata=household.admin.auth,
    )
    assert home_and_rooms <= {space.space_id for space in joined.spaces}
    assert all(household.home in (s.space_id, s.parent_space_id) for s in joined.spaces)
    not_owner = await spaces.ListSpaces(
        space_pb2.ListSpacesRequest(owner_id=household.guest.user_id, page_size=100),
        metadata=household.admin.auth,
    )
    assert list(not_owner.spaces) == []


# Members


async def test_a_member_is_added_once(spaces: "SpaceServiceAsyncStub", people: People) -> None:
    owner, newcomer = await people.new(), await people.new()
    home = await new_home(spaces, owner)
    member = await add_member(spaces, owner, home, newcomer.user_id, space_pb2.MAINTAINER)
    assert (member.space_id, member.user_id, member.role) == (
        home,
        newcomer.user_id,
        space_pb2.MAINTAINER,
    )
    again = add_member(spaces, owner, home, newcomer.user_id, space_pb2.GUEST)
    assert await refused(again, Code.ALREADY_EXISTS) == "ALREADY_MEMBER"
    assert await member_ids(spaces, newcomer, home) == {owner.user_id, newcomer.user_id}


async def test_the_last_owner_is_not_removed_demoted_or_let_go(
    spaces: "SpaceServiceAsyncStub", people: People
) -> None:
    h = await new_household(spaces, people)
    for by in (h.owner, h.admin):
        demote = set_role(spaces, by, h.home, h.owner.user_id, space_pb2.MAINTAINER)
        assert await refused(demote, Code.FAILED_PRECONDITION) == "LAST_OWNER"
        remove = spaces.RemoveSpaceUser(
            space_pb2.RemoveSpaceUserRequest(space_id=h.home, user_id=h.owner.user_id),
            metadata=by.auth,
        )
        assert await refused(remove, Code.FAILED_PRECONDITION) == "LAST_OWNER"
    assert (await get_space(spaces, h.guest, h.home)).owner_id == h.owner.user_id
    # With a second OWNER the first may go, and hands the home over.
    await set_role(spaces, h.owner, h.home, h.maintainer.user_id, space_pb2.OWNER)
    await spaces.RemoveSpaceUser(
        space_pb2.RemoveSpaceUserRequest(space_id=h.home, user_id=h.owner.user_id),
        metadata=h.owner.auth,
    )
    assert (await get_space(spaces, h.guest, h.home)).owner_id == h.maintainer.user_id


async def test_two_owners_demoting_each_other_at_once_leave_one_owner(
    spaces: "SpaceServiceAsyncStub", people: People
) -> None:
    for _ in range(3):  # a race lost once could be luck
        first, second = await people.new(), await people.new()
        home = await new_home(spaces, first)
        await add_member(spaces, first, home, second.user_id, space_pb2.OWNER)
        outcomes = await asyncio.gather(
            set_role(spaces, first, home, second.user_id, space_pb2.MAINTAINER),
            set_role(spaces, second, home, first.user_id, space_pb2.MAINTAINER),
            return_exceptions=True,
        )
        succeeded = [o for o in outcomes if isinstance(o, space_pb2.SpaceUser)]
        failed = [o for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
        assert len(succeeded) == len(failed) == 1, outcomes
        assert failed[0].code() in (Code.PERMISSION_DENIED, Code.FAILED_PRECONDITION)
        listed = await spaces.ListSpaceUsers(
            space_pb2.ListSpaceUsersRequest(space_id=home), metadata=people.admin().auth
        )
        owners = [m.user_id for m in listed.space_users if m.role == space_pb2.OWNER]
        assert len(owners) == 1
        assert (await get_space(spaces, people.admin(), home)).owner_id == owners[0]


# Time and accounts end memberships without anyone acting


async def test_a_guests_access_ends_at_its_expiry_and_is_announced(
    spaces: "SpaceServiceAsyncStub", people: People, jetstream: JetStreamContext
) -> None:
    owner, visitor = await people.new(), await people.new()
    home = await new_home(spaces, owner)
    room = await new_room(spaces, owner, home)
    expire_at = datetime.now(UTC) + timedelta(seconds=1.5)
    member = await add_member(spaces, owner, home, visitor.user_id, space_pb2.GUEST, expire_at)
    assert member.expire_time.ToDatetime(tzinfo=UTC) == expire_at
    assert (await get_space(spaces, visitor, room)).space_id == room

    async def locked_out() -> bool:
        for space_id in (home, room):
            try:
                await get_space(spaces, visitor, space_id)
            except grpc.aio.AioRpcError as error:
                if error.code() != Code.NOT_FOUND:
                    raise
            else:
                return False
        return True

    await eventually(locked_out, within=5, interval=0.1, what="the guest's access ending")
    assert datetime.now(UTC) >= expire_at, "not before its time"
    assert visitor.user_id not in await member_ids(spaces, owner, home)
    mine = await spaces.ListSpaces(space_pb2.ListSpacesRequest(), metadata=visitor.auth)
    assert list(mine.spaces) == []

    async def announced() -> list[space_pb2.SpaceMemberExpired]:
        return await space_events(jetstream, space_pb2.SpaceMemberExpired, home)

    [expired] = await eventually(announced, within=10, what="SpaceMemberExpired")
    assert (expired.user_id, expired.version) == (visitor.user_id, 3)


async def test_a_deactivated_user_loses_every_membership_and_its_homes_stay(
    spaces: "SpaceServiceAsyncStub", people: People, users: "UserServiceAsyncStub"
) -> None:
    h = await new_household(spaces, people)
    leaver = await people.new()
    own_home = await new_home(spaces, leaver, "Own")
    own_room = await new_room(spaces, leaver, own_home)
    await add_member(spaces, h.owner, h.home, leaver.user_id, space_pb2.MAINTAINER)
    await add_member(spaces, leaver, own_home, h.guest.user_id, space_pb2.GUEST)
    await users.DeleteUser(
        user_pb2.DeleteUserRequest(user_id=leaver.user_id), metadata=await admin_token(users)
    )

    async def memberships_ended() -> bool:
        return leaver.user_id not in await member_ids(spaces, h.admin, h.home) and (
            leaver.user_id not in await member_ids(spaces, h.admin, own_home)
        )

    await eventually(memberships_ended, within=10, what="the memberships ending")
    # Its own home stays, without an OWNER, its other members in it.
    for space_id in (own_home, own_room):
        assert (await get_space(spaces, h.guest, space_id)).owner_id == ""
    successor = await people.new()
    refused_add = add_member(spaces, h.owner, h.home, leaver.user_id, space_pb2.GUEST)
    assert await refused(refused_add, Code.INVALID_ARGUMENT) == "USER_NOT_AVAILABLE"
    await add_member(spaces, h.admin, own_home, successor.user_id, space_pb2.OWNER)
    assert (await get_space(spaces, successor, own_room)).owner_id == successor.user_id


async def test_a_redelivered_deactivation_has_no_second_effect(
    spaces: "SpaceServiceAsyncStub",
    people: People,
    users: "UserServiceAsyncStub",
    mesh: Mesh,
    jetstream: JetStreamContext,
) -> None:
    owner, member = await people.new(), await people.new()
    home = await new_home(spaces, owner)
    await add_member(spaces, owner, home, member.user_id, space_pb2.GUEST)
    admin = await admin_token(users)
    await users.DeleteUser(user_pb2.DeleteUserRequest(user_id=member.user_id), metadata=admin)

    async def removed() -> bool:
        return member.user_id not in await member_ids(spaces, owner, home)

    await eventually(removed, within=10, what="the membership ending")
    # Reactivated and added again: only a second run of the old event could remove it.
    await users.UpdateUser(
        user_pb2.UpdateUserRequest(user_id=member.user_id, is_active=True), metadata=admin
    )

    async def added_again() -> space_pb2.SpaceUser:
        return await add_member(spaces, owner, home, member.user_id, space_pb2.GUEST)

    await eventually(added_again, within=10, what="the reactivation reaching Space")

    async def original() -> Msg | None:
        messages = await published(jetstream, USER_STREAM, "warmhouse.user.v1.UserDeactivated")
        return next(
            (
                message
                for message in messages
                if user_pb2.UserDeactivated.FromString(message.data).user_id == member.user_id
            ),
            None,
        )

    message = await eventually(original, what="UserDeactivated on the stream")
    assert message is not None
    assert message.headers is not None
    runtime = mesh.space.runtime
    deactivated, _ = UserEvents().consumers(runtime.database, runtime.jetstream, runtime.relay)
    again = Delivery(
        message.subject, message.data, {MSG_ID_HEADER: message.headers[MSG_ID_HEADER]}, 2
    )
    await deactivated.process(cast(Msg, again))
    assert again.acks == [True]
    assert member.user_id in await member_ids(spaces, owner, home)


# Deleting


async def test_a_space_holding_a_device_is_not_deleted_and_a_home_goes_with_its_rooms(
    spaces: "SpaceServiceAsyncStub",
    devices: "DeviceServiceAsyncStub",
    people: People,
    jetstream: JetStreamContext,
) -> None:
    owner = await people.new()
    home = await new_home(spaces, owner)
    kitchen, bedroom = await new_room(spaces, owner, home), await new_room(spaces, owner, home)
    registered = await devices.RegisterDevice(
        device_pb2.RegisterDeviceRequest(space_id=kitchen, type=device_pb2.HEATER, name="Heater"),
        metadata=owner.auth,
    )
    for space_id in (home, kitchen):
        refusal = spaces.DeleteSpace(
            space_pb2.DeleteSpaceRequest(space_id=space_id), metadata=owner.auth
        )
        assert await refused(refusal, Code.FAILED_PRECONDITION) == "SPACE_HAS_DEVICES"
    assert (await get_space(spaces, owner, kitchen)).space_id == kitchen
    await devices.DeleteDevice(
        device_pb2.DeleteDeviceRequest(device_id=registered.device.device_id), metadata=owner.auth
    )
    await spaces.DeleteSpace(space_pb2.DeleteSpaceRequest(space_id=home), metadata=owner.auth)
    admin = people.admin()
    for space_id in (home, kitchen, bedroom):
        gone = spaces.GetSpace(space_pb2.GetSpaceRequest(space_id=space_id), metadata=admin.auth)
        assert await refused(gone, Code.NOT_FOUND) == "SPACE_NOT_FOUND"
    mine = await spaces.ListSpaces(space_pb2.ListSpacesRequest(), metadata=owner.auth)
    assert list(mine.spaces) == []

    async def announced() -> set[tuple[str, str]]:
        messages = await published(jetstream, SPACE_STREAM, "warmhouse.space.v1.SpaceDeleted")
        events = [space_pb2.SpaceDeleted.FromString(message.data) for message in messages]
        found = {
            (e.space_id, e.parent_space_id)
            for e in events
            if home in (e.space_id, e.parent_space_id)
        }
        return found if len(found) == 3 else set()

    assert await eventually(announced, what="SpaceDeleted for the home and its rooms") == {
        (home, ""),
        (kitchen, home),
        (bedroom, home),
    }


# Pages


async def test_spaces_and_members_are_listed_page_by_page(
    spaces: "SpaceServiceAsyncStub", people: People
) -> None:
    owner = await people.new()
    homes = [await new_home(spaces, owner, f"Home {n}") for n in range(3)]
    rooms = [await new_room(spaces, owner, homes[0], f"Room {n}") for n in range(2)]
    seen, token = [], ""
    while True:
        page = await spaces.ListSpaces(
            space_pb2.ListSpacesRequest(page_size=2, page_token=token), metadata=owner.auth
        )
        assert len(page.spaces) <= 2
        seen += [space.space_id for space in page.spaces]
        token = page.next_page_token
        if not token:
            break
    assert seen == [*homes, *rooms]

    newcomers = [await people.new() for _ in range(4)]
    for newcomer in newcomers:
        await add_member(spaces, owner, homes[0], newcomer.user_id, space_pb2.GUEST)
    members, token = [], ""
    while True:
        page_of_members = await spaces.ListSpaceUsers(
            space_pb2.ListSpaceUsersRequest(space_id=rooms[0], page_size=2, page_token=token),
            metadata=newcomers[0].auth,
        )
        members += [member.user_id for member in page_of_members.space_users]
        token = page_of_members.next_page_token
        if not token:
            break
    assert members == [owner.user_id, *(newcomer.user_id for newcomer in newcomers)]


# Bad input: always INVALID_ARGUMENT, never INTERNAL or UNKNOWN


def _bad_requests(
    h: Household,
) -> dict[str, Callable[["SpaceServiceAsyncStub"], Awaitable[object]]]:
    auth = h.owner.auth
    far = timestamp(datetime.now(UTC) + timedelta(days=1))
    cases: dict[str, Callable[[SpaceServiceAsyncStub], Awaitable[object]]] = {
        "6 KB space id (get)": lambda s: s.GetSpace(
            space_pb2.GetSpaceRequest(space_id=HUGE), metadata=auth
        ),
        "6 KB space id (delete)": lambda s: s.DeleteSpace(
            space_pb2.DeleteSpaceRequest(space_id=HUGE), metadata=auth
        ),
        "6 KB user id": lambda s: s.GetSpaceUser(
            space_pb2.GetSpaceUserRequest(space_id=h.home, user_id=HUGE), metadata=auth
        ),
        "6 KB owner id": lambda s: s.CreateSpace(
            space_pb2.CreateSpaceRequest(name="x", owner_id=HUGE), metadata=auth
        ),
        "6 KB parent id": lambda s: s.ListSpaces(
            space_pb2.ListSpacesRequest(parent_space_id=HUGE), metadata=auth
        ),
        "6 KB name": lambda s: s.CreateSpace(
            space_pb2.CreateSpaceRequest(name=HUGE), metadata=auth
        ),
        "NUL in a new name": lambda s: s.CreateSpace(
            space_pb2.CreateSpaceRequest(name="nul\x00byte"), metadata=auth
        ),
        "NUL in a rename": lambda s: s.UpdateSpace(
            space_pb2.UpdateSpaceRequest(space_id=h.home, name="nul\x00byte"), metadata=auth
        ),
        "tab in a name": lambda s: s.CreateSpace(
            space_pb2.CreateSpaceRequest(name="tab\there"), metadata=auth
        ),
        "empty name": lambda s: s.CreateSpace(space_pb2.CreateSpaceRequest(name=""), metadata=auth),
        "6 KB page token": lambda s: s.ListSpaces(
            space_pb2.ListSpacesRequest(page_token=HUGE), metadata=auth
        ),
        "negative page size": lambda s: s.ListSpaceUsers(
            space_pb2.ListSpaceUsersRequest(space_id=h.home, page_size=-1), metadata=auth
        ),
        "role 9": lambda s: s.AddSpaceUser(
            space_pb2.AddSpaceUserRequest(
                space_id=h.home, user_id=h.stranger.user_id, role=cast(Role, 9)
            ),
            metadata=auth,
        ),
        "no role": lambda s: s.UpdateSpaceUser(
            space_pb2.UpdateSpaceUserRequest(space_id=h.home, user_id=h.guest.user_id),
            metadata=auth,
        ),
        "expiry for a maintainer": lambda s: s.AddSpaceUser(
            space_pb2.AddSpaceUserRequest(
                space_id=h.home,
                user_id=h.stranger.user_id,
                role=space_pb2.MAINTAINER,
                expire_time=far,
            ),
            metadata=auth,
        ),
        "expiry before 1970": lambda s: s.AddSpaceUser(
            space_pb2.AddSpaceUserRequest(
                space_id=h.home,
                user_id=h.stranger.user_id,
                role=space_pb2.GUEST,
                expire_time=timestamp(datetime(1969, 12, 31, tzinfo=UTC)),
            ),
            metadata=auth,
        ),
        "members of a room": lambda s: s.AddSpaceUser(
            space_pb2.AddSpaceUserRequest(
                space_id=h.room, user_id=h.stranger.user_id, role=space_pb2.GUEST
            ),
            metadata=auth,
        ),
    }
    return cases


async def test_bad_input_is_invalid_argument(
    spaces: "SpaceServiceAsyncStub", household: Household
) -> None:
    for name, call in _bad_requests(household).items():
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await call(spaces)
        assert failure.value.code() == Code.INVALID_ARGUMENT, (name, failure.value.details())
        assert HUGE not in (failure.value.details() or ""), name


@pytest.mark.parametrize(
    ("seconds", "nanos"),
    [
        (253_402_300_800, 0),  # 10000-01-01
        (253_402_300_799, 999_999_999),  # the last instant of 9999: 'infinity' to asyncpg
        (253_370_764_800, 0),  # 9999-01-01
    ],
)
async def test_an_expiry_from_9999_on_is_invalid_argument(
    spaces: "SpaceServiceAsyncStub", household: Household, seconds: int, nanos: int
) -> None:
    request = space_pb2.AddSpaceUserRequest(
        space_id=household.home, user_id=household.stranger.user_id, role=space_pb2.GUEST
    )
    request.expire_time.seconds, request.expire_time.nanos = seconds, nanos
    failure = spaces.AddSpaceUser(request, metadata=household.owner.auth)
    assert await refused(failure, Code.INVALID_ARGUMENT) == "INVALID_TIMESTAMP"


async def test_a_huge_page_size_is_capped_not_refused(
    spaces: "SpaceServiceAsyncStub", household: Household
) -> None:
    listed = await spaces.ListSpaces(
        space_pb2.ListSpacesRequest(page_size=2**31 - 1), metadata=household.admin.auth
    )
    assert 2 <= len(listed.spaces) <= 100


# Versions


async def test_membership_events_carry_the_homes_versions_in_order(
    spaces: "SpaceServiceAsyncStub",
    people: People,
    jetstream: JetStreamContext,
    runtime_settings: RuntimeSettings,
) -> None:
    owner, maintainer, guest = await people.new(), await people.new(), await people.new()
    home = await new_home(spaces, owner)  # 1: the owner
    await new_room(spaces, owner, home)  # rooms take no version
    await add_member(spaces, owner, home, maintainer.user_id, space_pb2.MAINTAINER)  # 2
    await add_member(spaces, owner, home, guest.user_id, space_pb2.GUEST)  # 3
    await set_role(spaces, owner, home, guest.user_id, space_pb2.MAINTAINER)  # 4
    await spaces.RemoveSpaceUser(  # 5
        space_pb2.RemoveSpaceUserRequest(space_id=home, user_id=guest.user_id),
        metadata=guest.auth,
    )
    await set_role(spaces, owner, home, maintainer.user_id, space_pb2.OWNER)  # 6

    async def versions() -> list[tuple[str, int]]:
        found = []
        for message in await published(jetstream, SPACE_STREAM, "warmhouse.space.v1.>"):
            kind = MEMBERSHIP_EVENTS.get(message.subject)
            event = kind.FromString(message.data) if kind else None
            if event is not None and event.space_id == home:
                found.append((message.subject.rsplit(".", 1)[-1], event.version))
        return found if len(found) == 6 else []

    assert await eventually(versions, what="six membership events") == [
        ("SpaceMemberAdded", 1),
        ("SpaceMemberAdded", 2),
        ("SpaceMemberAdded", 3),
        ("SpaceMemberRoleChanged", 4),
        ("SpaceMemberRemoved", 5),
        ("SpaceMemberRoleChanged", 6),
    ]
    access = await spaces.GetSpaceAccess(
        space_pb2.GetSpaceAccessRequest(space_id=home, user_id=maintainer.user_id),
        metadata=internal(runtime_settings),
    )
    assert (access.role, access.membership_version) == (space_pb2.OWNER, 6)
