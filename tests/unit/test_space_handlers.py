"""The Space service's use cases on in-memory repositories: no database, no broker."""

import uuid
from datetime import timedelta
from typing import TypeVar

import pytest
from google.protobuf.message import Message
from warmhouse.space.v1 import space_pb2

from services.runtime.auth import Caller
from services.runtime.errors import (
    AlreadyExists,
    DomainError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Throttled,
)
from services.runtime.space_roles import GUEST, MAINTAINER, OWNER
from services.space.domain import SpaceLimits
from services.space.expiry import GuestExpiry
from services.space.handlers import user_deactivated, user_reactivated
from tests.fakes import raises
from tests.unit.space_fakes import SpaceWorld, space_world

M = TypeVar("M", bound=Message)
E = TypeVar("E", bound=DomainError)


@pytest.fixture
def world() -> SpaceWorld:
    return space_world()


def events(world: SpaceWorld, kind: type[M]) -> list[M]:
    return [event for event in world.uow.events if isinstance(event, kind)]


def uid(caller: Caller) -> uuid.UUID:
    return uuid.UUID(caller.user_id)


class Home:
    """A home with one member of each role, a room, and a stranger."""

    def __init__(self, world: SpaceWorld) -> None:
        self.world = world
        self.owner = world.person()
        self.maintainer = world.person()
        self.guest = world.person()
        self.stranger = world.person()
        self.id = ""
        self.room_id = ""

    async def build(self) -> "Home":
        handlers = self.world.handlers
        self.id = str((await handlers.create_space(self.owner, "Home", "", "")).id)
        self.room_id = str((await handlers.create_space(self.owner, "Room", "", self.id)).id)
        await handlers.add_member(self.owner, self.id, self.maintainer.user_id, MAINTAINER, None)
        await handlers.add_member(self.owner, self.id, self.guest.user_id, GUEST, None)
        return self


@pytest.fixture
async def home(world: SpaceWorld) -> Home:
    return await Home(world).build()


# CreateSpace


async def test_homes_per_owner_and_rooms_per_home_are_limited() -> None:
    world = space_world(SpaceLimits(homes_per_owner=2, rooms_per_home=1))
    owner = world.person()
    home = await world.handlers.create_space(owner, "First", "", "")
    await world.handlers.create_space(owner, "Second", "", "")
    too_many = world.handlers.create_space(owner, "Third", "", "")
    assert (await raises(too_many, Throttled)).reason == "QUOTA_EXCEEDED"
    await world.handlers.create_space(owner, "Kitchen", "", str(home.id))
    one_room_more = world.handlers.create_space(owner, "Hall", "", str(home.id))
    assert (await raises(one_room_more, Throttled)).reason == "QUOTA_EXCEEDED"
    # An ADMIN creating for that owner is held to the owner's limit too.
    for_them = world.handlers.create_space(world.admin(), "Fourth", str(uid(owner)), "")
    assert (await raises(for_them, Throttled)).reason == "QUOTA_EXCEEDED"


async def test_handing_homes_over_neither_fills_anothers_quota_nor_frees_ones_own() -> None:
    world = space_world(SpaceLimits(homes_per_owner=1))
    giver, taker = world.person(), world.person()
    home = await world.handlers.create_space(giver, "Given away", "", "")
    await world.handlers.add_member(giver, str(home.id), taker.user_id, OWNER, None)
    await world.handlers.remove_member(giver, str(home.id), giver.user_id)
    assert (await world.handlers.create_space(taker, "Own", "", "")).owner_id == uid(taker)
    again = world.handlers.create_space(giver, "Another", "", "")
    assert (await raises(again, Throttled)).reason == "QUOTA_EXCEEDED"


async def test_a_new_home_has_its_owner_as_first_member_and_says_so(world: SpaceWorld) -> None:
    owner = world.person()
    home = await world.handlers.create_space(owner, " Квартира ", "", "")
    assert (home.name, home.owner_id, home.parent_id) == ("Квартира", uid(owner), None)
    member = world.store.members[(home.id, uid(owner))]
    assert (member.role, member.expire_at) == (OWNER, None)
    [created] = events(world, space_pb2.SpaceCreated)
    assert (created.space_id, created.owner_id, created.parent_space_id) == (
        str(home.id),
        owner.user_id,
        "",
    )
    [added] = events(world, space_pb2.SpaceMemberAdded)
    assert (added.user_id, added.role, added.version) == (owner.user_id, space_pb2.OWNER, 1)
    assert world.store.spaces[home.id].membership_version == 1
    assert world.users.asked == [], "creating one's own home asks nobody"


async def test_a_user_creates_only_homes_it_owns(world: SpaceWorld) -> None:
    caller, other = world.person(), world.person()
    refused = await raises(
        world.handlers.create_space(caller, "Not mine", other.user_id, ""), PermissionDenied
    )
    assert refused.reason == "NOT_OWNER"
    assert world.users.asked == []
    assert world.store.spaces == {}


async def test_an_admin_creates_homes_for_active_users_only(world: SpaceWorld) -> None:
    admin, owner = world.admin(), world.person()
    home = await world.handlers.create_space(admin, "Дача", owner.user_id, "")
    assert home.owner_id == uid(owner)
    assert (home.id, uid(admin)) not in world.store.members
    inactive = world.person(active=False)
    answers = [
        await raises(world.handlers.create_space(admin, "x", user_id, ""), InvalidArgument)
        for user_id in (str(uuid.uuid4()), inactive.user_id)
    ]
    assert {(a.reason, a.message) for a in answers} == {
        ("USER_NOT_AVAILABLE", "no active user with this id")
    }


async def test_an_account_deactivated_here_first_is_not_made_an_owner(world: SpaceWorld) -> None:
    admin, owner = world.admin(), world.person()
    # User still says "active" (its answer and our projection may differ for a moment).
    world.store.deactivated[uid(owner)] = world.clock.now
    refused = await raises(
        world.handlers.create_space(admin, "x", owner.user_id, ""), InvalidArgument
    )
    assert refused.reason == "USER_NOT_AVAILABLE"
    assert world.store.held == [uid(owner)]
    assert world.uow.events == []


@pytest.mark.parametrize(
    ("name", "owner_id", "parent", "reason"),
    [
        ("", "", "", "FIELD_REQUIRED"),
        ("x" * 101, "", "", "FIELD_TOO_LONG"),
        ("nul\x00", "", "", "INVALID_CHARACTERS"),
        ("ok", "not-a-uuid", "", "INVALID_ID"),
        ("ok", "x" * 6144, "", "INVALID_ID"),
        ("ok", "", "not-a-uuid", "INVALID_ID"),
    ],
)
async def test_bad_creations_are_refused(
    world: SpaceWorld, name: str, owner_id: str, parent: str, reason: str
) -> None:
    refused = await raises(
        world.handlers.create_space(world.person(), name, owner_id, parent), InvalidArgument
    )
    assert refused.reason == reason


async def test_a_room_reads_its_homes_owner_and_is_announced_with_its_home(
    world: SpaceWorld, home: Home
) -> None:
    room = await world.handlers.get_space(home.guest, home.room_id)
    assert (room.owner_id, str(room.parent_id), room.name) == (uid(home.owner), home.id, "Room")
    created = [e for e in events(world, space_pb2.SpaceCreated) if e.space_id == home.room_id]
    assert [e.parent_space_id for e in created] == [home.id]
    assert world.store.spaces[room.id].owner_id is None, "a room stores no owner of its own"


async def test_only_the_homes_owner_or_an_admin_adds_rooms(world: SpaceWorld, home: Home) -> None:
    for member in (home.maintainer, home.guest):
        refused = await raises(
            world.handlers.create_space(member, "Балкон", "", home.id), PermissionDenied
        )
        assert refused.reason == "SPACE_ROLE_INSUFFICIENT"
    for parent in (home.id, str(uuid.uuid4())):
        missing = await raises(
            world.handlers.create_space(home.stranger, "Балкон", "", parent), NotFound
        )
        assert missing.reason == "SPACE_NOT_FOUND"
    room = await world.handlers.create_space(world.admin(), "Балкон", "", home.id)
    assert str(room.parent_id) == home.id


async def test_rooms_do_not_nest(world: SpaceWorld, home: Home) -> None:
    refused = await raises(
        world.handlers.create_space(home.owner, "Шкаф", "", home.room_id), InvalidArgument
    )
    assert refused.reason == "ROOMS_CANNOT_NEST"


# GetSpace and ListSpaces


async def test_members_and_admins_read_strangers_and_expired_guests_do_not(
    world: SpaceWorld, home: Home
) -> None:
    for caller in (home.owner, home.maintainer, home.guest, world.admin()):
        for space_id in (home.id, home.room_id):
            assert str((await world.handlers.get_space(caller, space_id)).id) == space_id
    visitor = world.person()
    expiry = world.clock.now + timedelta(minutes=5)
    await world.handlers.add_member(home.owner, home.id, visitor.user_id, GUEST, expiry)
    assert await world.handlers.get_space(visitor, home.id)
    world.clock.now = expiry
    for caller in (home.stranger, visitor):
        refused = await raises(world.handlers.get_space(caller, home.id), NotFound)
        assert refused.reason == "SPACE_NOT_FOUND"
    unknown = await raises(world.handlers.get_space(home.owner, str(uuid.uuid4())), NotFound)
    assert unknown.message == refused.message


async def test_a_user_lists_the_homes_and_rooms_it_belongs_to_page_by_page(
    world: SpaceWorld, home: Home
) -> None:
    other = await world.handlers.create_space(home.guest, "Own", "", "")
    seen, token = [], ""
    while True:
        page, token = await world.handlers.list_spaces(home.guest, 1, token)
        assert len(page) <= 1
        seen += [str(space.id) for space in page]
        if not token:
            break
    assert seen == [home.id, home.room_id, str(other.id)]
    stranger, _ = await world.handlers.list_spaces(home.stranger, 0, "")
    assert stranger == []
    own, _ = await world.handlers.list_spaces(home.guest, 0, "", user_id=home.guest.user_id)
    assert len(own) == 3


async def test_listing_others_spaces_or_by_owner_is_for_admins(
    world: SpaceWorld, home: Home
) -> None:
    refused = await raises(
        world.handlers.list_spaces(home.guest, 0, "", user_id=home.owner.user_id),
        PermissionDenied,
    )
    assert refused.reason == "ADMIN_REQUIRED"
    refused = await raises(
        world.handlers.list_spaces(home.owner, 0, "", owner_id=home.owner.user_id),
        PermissionDenied,
    )
    assert refused.reason == "ADMIN_REQUIRED"
    admin = world.admin()
    other = await world.handlers.create_space(home.stranger, "Other", "", "")
    everything, _ = await world.handlers.list_spaces(admin, 100, "")
    assert {str(s.id) for s in everything} == {home.id, home.room_id, str(other.id)}
    owned, _ = await world.handlers.list_spaces(admin, 0, "", owner_id=home.owner.user_id)
    assert {str(s.id) for s in owned} == {home.id, home.room_id}
    by_guest, _ = await world.handlers.list_spaces(admin, 0, "", owner_id=home.guest.user_id)
    assert by_guest == []
    joined, _ = await world.handlers.list_spaces(admin, 0, "", user_id=home.guest.user_id)
    assert {str(s.id) for s in joined} == {home.id, home.room_id}


async def test_rooms_of_a_home_for_those_who_see_it(world: SpaceWorld, home: Home) -> None:
    rooms, _ = await world.handlers.list_spaces(home.guest, 0, "", parent_space_id=home.id)
    assert [str(room.id) for room in rooms] == [home.room_id]
    refused = await raises(
        world.handlers.list_spaces(home.stranger, 0, "", parent_space_id=home.id), NotFound
    )
    assert refused.reason == "SPACE_NOT_FOUND"


@pytest.mark.parametrize(
    ("size", "token", "reason"),
    [
        (-1, "", "INVALID_PAGE_SIZE"),
        (0, "bm9wZQ", "INVALID_PAGE_TOKEN"),
        (0, "x" * 6144, "INVALID_PAGE_TOKEN"),
    ],
)
async def test_bad_pages_are_refused(
    world: SpaceWorld, home: Home, size: int, token: str, reason: str
) -> None:
    for call in (
        world.handlers.list_spaces(home.owner, size, token),
        world.handlers.list_members(home.owner, home.id, size, token),
    ):
        assert (await raises(call, InvalidArgument)).reason == reason


async def test_a_huge_page_size_is_capped(world: SpaceWorld) -> None:
    owner = world.person()
    home = await world.handlers.create_space(owner, "Home", "", "")
    for number in range(100):
        await world.handlers.create_space(owner, f"Room {number}", "", str(home.id))
    page, token = await world.handlers.list_spaces(owner, 2**31 - 1, "")
    assert len(page) == 100
    assert token


# AddSpaceUser


async def test_each_added_member_takes_the_homes_next_version(
    world: SpaceWorld, home: Home
) -> None:
    added = events(world, space_pb2.SpaceMemberAdded)
    assert [(e.user_id, e.version) for e in added] == [
        (home.owner.user_id, 1),
        (home.maintainer.user_id, 2),
        (home.guest.user_id, 3),
    ]
    assert world.store.locked[-1] == uuid.UUID(home.id)
    expiry = world.clock.now + timedelta(hours=1)
    visitor = world.person()
    member = await world.handlers.add_member(home.owner, home.id, visitor.user_id, GUEST, expiry)
    assert (member.role, member.expire_at, str(member.space_id)) == (GUEST, expiry, home.id)
    last = events(world, space_pb2.SpaceMemberAdded)[-1]
    assert (last.version, last.expire_time.ToDatetime().timestamp()) == (
        4,
        expiry.replace(tzinfo=None).timestamp(),
    )


async def test_adding_a_member_twice_is_a_conflict(world: SpaceWorld, home: Home) -> None:
    refused = await raises(
        world.handlers.add_member(home.owner, home.id, home.guest.user_id, MAINTAINER, None),
        AlreadyExists,
    )
    assert refused.reason == "ALREADY_MEMBER"
    assert world.store.members[(uuid.UUID(home.id), uid(home.guest))].role == GUEST


async def test_who_may_add_members(world: SpaceWorld, home: Home) -> None:
    newcomer = world.person()
    for caller, kind in (
        (home.maintainer, PermissionDenied),
        (home.guest, PermissionDenied),
        (home.stranger, NotFound),
    ):
        await raises(
            world.handlers.add_member(caller, home.id, newcomer.user_id, GUEST, None), kind
        )
    assert newcomer.user_id not in {str(user) for user in world.users.asked}, (
        "whoever may not add members cannot probe accounts"
    )
    member = await world.handlers.add_member(world.admin(), home.id, newcomer.user_id, OWNER, None)
    assert member.role == OWNER


async def test_members_are_added_to_homes_not_rooms(world: SpaceWorld, home: Home) -> None:
    refused = await raises(
        world.handlers.add_member(home.owner, home.room_id, world.person().user_id, GUEST, None),
        InvalidArgument,
    )
    assert refused.reason == "MEMBERS_BELONG_TO_HOME"


async def test_only_active_accounts_are_added(world: SpaceWorld, home: Home) -> None:
    gone = world.person(active=False)
    answers = [
        await raises(
            world.handlers.add_member(home.owner, home.id, user_id, GUEST, None), InvalidArgument
        )
        for user_id in (str(uuid.uuid4()), gone.user_id)
    ]
    assert {(a.reason, a.message) for a in answers} == {
        ("USER_NOT_AVAILABLE", "no active user with this id")
    }
    lagging = world.person()
    world.store.deactivated[uid(lagging)] = world.clock.now
    refused = await raises(
        world.handlers.add_member(home.owner, home.id, lagging.user_id, GUEST, None),
        InvalidArgument,
    )
    assert refused.reason == "USER_NOT_AVAILABLE"


@pytest.mark.parametrize(
    ("role", "expires_in", "reason"),
    [
        ("ADMIN", None, "INVALID_ROLE"),
        (MAINTAINER, timedelta(hours=1), "EXPIRY_ONLY_FOR_GUESTS"),
        (GUEST, timedelta(hours=-1), "EXPIRY_IN_PAST"),
    ],
)
async def test_bad_terms_are_refused_before_anyone_is_asked(
    world: SpaceWorld, home: Home, role: str, expires_in: timedelta | None, reason: str
) -> None:
    expiry = world.clock.now + expires_in if expires_in else None
    newcomer = world.person()
    for call in (
        world.handlers.add_member(home.owner, home.id, newcomer.user_id, role, expiry),
        world.handlers.update_member(home.owner, home.id, home.guest.user_id, role, expiry),
    ):
        assert (await raises(call, InvalidArgument)).reason == reason
    assert world.users.asked.count(uid(newcomer)) == 0


async def test_an_expired_membership_not_yet_cleaned_up_is_replaced(
    world: SpaceWorld, home: Home
) -> None:
    visitor = world.person()
    expiry = world.clock.now + timedelta(minutes=1)
    await world.handlers.add_member(home.owner, home.id, visitor.user_id, GUEST, expiry)
    world.clock.now = expiry + timedelta(seconds=1)
    member = await world.handlers.add_member(home.owner, home.id, visitor.user_id, GUEST, None)
    assert member.expire_at is None
    [expired] = events(world, space_pb2.SpaceMemberExpired)
    added = events(world, space_pb2.SpaceMemberAdded)[-1]
    assert (expired.user_id, expired.version, added.version) == (visitor.user_id, 5, 6)


async def test_an_owner_added_to_an_ownerless_home_becomes_its_primary_owner(
    world: SpaceWorld, home: Home
) -> None:
    now = world.clock()
    await user_deactivated(world.uow.repos, _ignore, uid(home.owner), now, now)
    assert world.store.spaces[uuid.UUID(home.id)].owner_id is None
    successor = world.person()
    await world.handlers.add_member(world.admin(), home.id, successor.user_id, OWNER, None)
    assert (await world.handlers.get_space(successor, home.room_id)).owner_id == uid(successor)


async def _ignore(event: Message) -> None:
    return None


# GetSpaceUser and ListSpaceUsers


async def test_reading_members(world: SpaceWorld, home: Home) -> None:
    for caller in (home.owner, home.maintainer, home.guest, world.admin()):
        member = await world.handlers.get_member(caller, home.room_id, home.guest.user_id)
        assert (str(member.space_id), member.role) == (home.id, GUEST)
        listed, _ = await world.handlers.list_members(caller, home.id, 0, "")
        assert [m.user_id for m in listed] == [
            uid(home.owner),
            uid(home.maintainer),
            uid(home.guest),
        ]
    not_member = await raises(
        world.handlers.get_member(home.owner, home.id, home.stranger.user_id), NotFound
    )
    assert not_member.reason == "MEMBER_NOT_FOUND"
    for call in (
        world.handlers.get_member(home.stranger, home.id, home.owner.user_id),
        world.handlers.list_members(home.stranger, home.id, 0, ""),
    ):
        assert (await raises(call, NotFound)).reason == "SPACE_NOT_FOUND"


async def test_members_are_listed_page_by_page_and_expired_guests_are_not(
    world: SpaceWorld, home: Home
) -> None:
    expiry = world.clock.now + timedelta(minutes=1)
    await world.handlers.add_member(home.owner, home.id, world.person().user_id, GUEST, expiry)
    world.clock.now = expiry
    seen, token = [], ""
    while True:
        page, token = await world.handlers.list_members(home.owner, home.id, 2, token)
        seen += [member.user_id for member in page]
        if not token:
            break
    assert seen == [uid(home.owner), uid(home.maintainer), uid(home.guest)]


# UpdateSpaceUser


async def test_changing_a_role_takes_a_version_and_is_announced(
    world: SpaceWorld, home: Home
) -> None:
    expiry = world.clock.now + timedelta(days=1)
    changed = await world.handlers.update_member(
        home.owner, home.id, home.maintainer.user_id, GUEST, expiry
    )
    assert (changed.role, changed.expire_at) == (GUEST, expiry)
    [event] = events(world, space_pb2.SpaceMemberRoleChanged)
    assert (event.old_role, event.new_role, event.version) == (
        space_pb2.MAINTAINER,
        space_pb2.GUEST,
        4,
    )
    assert event.HasField("expire_time")
    again = await world.handlers.update_member(
        home.owner, home.id, home.maintainer.user_id, GUEST, expiry
    )
    assert again == changed
    assert len(events(world, space_pb2.SpaceMemberRoleChanged)) == 1, "no change, no event"


async def test_who_may_change_roles(world: SpaceWorld, home: Home) -> None:
    for caller, kind in (
        (home.maintainer, PermissionDenied),
        (home.guest, PermissionDenied),
        (home.stranger, NotFound),
    ):
        await raises(
            world.handlers.update_member(caller, home.id, home.guest.user_id, MAINTAINER, None),
            kind,
        )
    missing = await raises(
        world.handlers.update_member(home.owner, home.id, home.stranger.user_id, GUEST, None),
        NotFound,
    )
    assert missing.reason == "MEMBER_NOT_FOUND"
    on_room = await raises(
        world.handlers.update_member(home.owner, home.room_id, home.guest.user_id, GUEST, None),
        InvalidArgument,
    )
    assert on_room.reason == "MEMBERS_BELONG_TO_HOME"
    changed = await world.handlers.update_member(
        world.admin(), home.id, home.guest.user_id, MAINTAINER, None
    )
    assert changed.role == MAINTAINER


async def test_the_last_owner_is_not_demoted_even_by_an_admin(
    world: SpaceWorld, home: Home
) -> None:
    for caller in (home.owner, world.admin()):
        refused = await raises(
            world.handlers.update_member(caller, home.id, home.owner.user_id, MAINTAINER, None),
            DomainError,
        )
        assert refused.reason == "LAST_OWNER"
    assert world.store.members[(uuid.UUID(home.id), uid(home.owner))].role == OWNER


async def test_demoting_the_primary_owner_hands_over_to_the_earliest_owner(
    world: SpaceWorld, home: Home
) -> None:
    await world.handlers.update_member(home.owner, home.id, home.guest.user_id, OWNER, None)
    await world.handlers.update_member(home.owner, home.id, home.maintainer.user_id, OWNER, None)
    await world.handlers.update_member(home.guest, home.id, home.owner.user_id, GUEST, None)
    # The maintainer joined before the guest did.
    assert (await world.handlers.get_space(home.owner, home.id)).owner_id == uid(home.maintainer)


async def test_a_demoted_owner_can_no_longer_demote(world: SpaceWorld, home: Home) -> None:
    await world.handlers.update_member(home.owner, home.id, home.guest.user_id, OWNER, None)
    await world.handlers.update_member(home.guest, home.id, home.owner.user_id, MAINTAINER, None)
    refused = await raises(
        world.handlers.update_member(home.owner, home.id, home.guest.user_id, MAINTAINER, None),
        PermissionDenied,
    )
    assert refused.reason == "SPACE_ROLE_INSUFFICIENT"


# RemoveSpaceUser


async def test_a_member_leaves_and_an_owner_removes(world: SpaceWorld, home: Home) -> None:
    await world.handlers.remove_member(home.guest, home.id, home.guest.user_id)
    await world.handlers.remove_member(home.owner, home.id, home.maintainer.user_id)
    removed = events(world, space_pb2.SpaceMemberRemoved)
    assert [(e.user_id, e.reason, e.version) for e in removed] == [
        (home.guest.user_id, space_pb2.LEFT, 4),
        (home.maintainer.user_id, space_pb2.REMOVED, 5),
    ]
    await raises(world.handlers.get_space(home.guest, home.id), NotFound)
    again = await raises(
        world.handlers.remove_member(home.owner, home.id, home.guest.user_id), NotFound
    )
    assert again.reason == "MEMBER_NOT_FOUND"


async def test_who_may_remove_others(world: SpaceWorld, home: Home) -> None:
    for caller, target, kind in (
        (home.maintainer, home.guest, PermissionDenied),
        (home.guest, home.maintainer, PermissionDenied),
        (home.stranger, home.guest, NotFound),
    ):
        await raises(world.handlers.remove_member(caller, home.id, target.user_id), kind)
    assert len(world.store.members) == 3
    await world.handlers.remove_member(world.admin(), home.id, home.guest.user_id)
    assert len(world.store.members) == 2


async def test_the_last_owner_neither_leaves_nor_is_removed(world: SpaceWorld, home: Home) -> None:
    for caller in (home.owner, world.admin()):
        refused = await raises(
            world.handlers.remove_member(caller, home.id, home.owner.user_id), DomainError
        )
        assert refused.reason == "LAST_OWNER"
    await world.handlers.update_member(home.owner, home.id, home.maintainer.user_id, OWNER, None)
    await world.handlers.remove_member(home.owner, home.id, home.owner.user_id)
    assert (await world.handlers.get_space(home.maintainer, home.id)).owner_id == uid(
        home.maintainer
    )


# UpdateSpace and DeleteSpace


async def test_renaming(world: SpaceWorld, home: Home) -> None:
    for space_id in (home.id, home.room_id):
        renamed = await world.handlers.rename_space(home.owner, space_id, "Дом")
        assert (str(renamed.id), renamed.name) == (space_id, "Дом")
        for caller, kind in (
            (home.maintainer, PermissionDenied),
            (home.guest, PermissionDenied),
            (home.stranger, NotFound),
        ):
            await raises(world.handlers.rename_space(caller, space_id, "Мой"), kind)
    assert len(events(world, space_pb2.SpaceRenamed)) == 2
    await world.handlers.rename_space(home.owner, home.id, "Дом")
    assert len(events(world, space_pb2.SpaceRenamed)) == 2, "the same name is no change"
    refused = await raises(
        world.handlers.rename_space(home.owner, home.id, "\x00"), InvalidArgument
    )
    assert refused.reason == "INVALID_CHARACTERS"


async def test_a_space_holding_devices_is_not_deleted(world: SpaceWorld, home: Home) -> None:
    world.devices.devices[uuid.UUID(home.id)] = 1
    refused = await raises(world.handlers.delete_space(home.owner, home.id), DomainError)
    assert (refused.reason, refused.code.name) == ("SPACE_HAS_DEVICES", "FAILED_PRECONDITION")
    assert uuid.UUID(home.id) in world.store.spaces


async def test_deleting_a_home_deletes_its_rooms(world: SpaceWorld, home: Home) -> None:
    for caller, kind in (
        (home.maintainer, PermissionDenied),
        (home.guest, PermissionDenied),
        (home.stranger, NotFound),
    ):
        await raises(world.handlers.delete_space(caller, home.id), kind)
    await world.handlers.delete_space(home.owner, home.id)
    assert world.store.spaces == {}
    assert world.store.members == {}
    deleted = events(world, space_pb2.SpaceDeleted)
    assert [(e.space_id, e.parent_space_id) for e in deleted] == [
        (home.room_id, home.id),
        (home.id, ""),
    ]


async def test_a_room_is_deleted_alone(world: SpaceWorld, home: Home) -> None:
    await world.handlers.delete_space(world.admin(), home.room_id)
    assert list(world.store.spaces) == [uuid.UUID(home.id)]
    [deleted] = events(world, space_pb2.SpaceDeleted)
    assert (deleted.space_id, deleted.parent_space_id) == (home.room_id, home.id)


# GetSpaceAccess


async def test_access_names_the_home_the_live_role_and_the_version(
    world: SpaceWorld, home: Home
) -> None:
    access = await world.handlers.space_access(home.room_id, home.guest.user_id)
    assert (access.space.home_id, access.membership_version) == (uuid.UUID(home.id), 3)
    assert access.member is not None
    assert access.member.role == GUEST
    none = await world.handlers.space_access(home.id, home.stranger.user_id)
    assert none.member is None
    visitor = world.person()
    expiry = world.clock.now + timedelta(seconds=5)
    await world.handlers.add_member(home.owner, home.id, visitor.user_id, GUEST, expiry)
    world.clock.now = expiry
    assert (await world.handlers.space_access(home.id, visitor.user_id)).member is None
    missing = await raises(
        world.handlers.space_access(str(uuid.uuid4()), visitor.user_id), NotFound
    )
    assert missing.reason == "SPACE_NOT_FOUND"


# Deactivation and expiry


async def test_a_deactivated_account_loses_every_membership_once(
    world: SpaceWorld, home: Home
) -> None:
    other = await world.handlers.create_space(home.stranger, "Other", "", "")
    await world.handlers.add_member(home.stranger, str(other.id), home.owner.user_id, GUEST, None)
    written: list[Message] = []

    async def emit(event: Message) -> None:
        written.append(event)

    now = world.clock()
    ended = await user_deactivated(world.uow.repos, emit, uid(home.owner), now, now)
    assert ended == 2
    assert {
        (e.space_id, e.reason) for e in written if isinstance(e, space_pb2.SpaceMemberRemoved)
    } == {
        (home.id, space_pb2.USER_DEACTIVATED),
        (str(other.id), space_pb2.USER_DEACTIVATED),
    }
    assert world.store.spaces[uuid.UUID(home.id)].owner_id is None, "the home stays, ownerless"
    assert world.store.held[-1] == uid(home.owner)
    assert await user_deactivated(world.uow.repos, emit, uid(home.owner), now, now) == 0
    assert len(written) == 2


async def test_a_reactivated_account_may_be_added_again(world: SpaceWorld, home: Home) -> None:
    at = world.clock()
    await user_deactivated(world.uow.repos, _ignore, uid(home.guest), at, at)
    # A reactivation older than the deactivation changes nothing.
    await user_reactivated(world.uow.repos, uid(home.guest), at - timedelta(seconds=1))
    assert uid(home.guest) in world.store.deactivated
    await user_reactivated(world.uow.repos, uid(home.guest), at + timedelta(seconds=1))
    assert world.store.deactivated == {}
    member = await world.handlers.add_member(home.owner, home.id, home.guest.user_id, GUEST, None)
    assert member.role == GUEST


async def test_a_deactivation_arriving_after_a_later_reactivation_ends_nothing(
    world: SpaceWorld, home: Home
) -> None:
    # The two events come through different consumers, so in either order.
    deactivated_at = world.clock()
    await user_reactivated(world.uow.repos, uid(home.guest), deactivated_at + timedelta(seconds=1))
    ended = await user_deactivated(
        world.uow.repos, _ignore, uid(home.guest), deactivated_at, world.clock()
    )
    assert ended == 0
    assert (uuid.UUID(home.id), uid(home.guest)) in world.store.members
    assert uid(home.guest) not in world.store.deactivated


async def test_expired_guests_are_removed_and_announced(world: SpaceWorld, home: Home) -> None:
    soon, later = world.clock.now + timedelta(seconds=5), world.clock.now + timedelta(hours=1)
    first, second = world.person(), world.person()
    await world.handlers.add_member(home.owner, home.id, first.user_id, GUEST, soon)
    await world.handlers.add_member(home.owner, home.id, second.user_id, GUEST, later)
    expiry = GuestExpiry(world.uow, world.clock)
    assert await expiry.expire() == 0
    world.clock.now = soon
    assert await expiry.expire() == 1
    [expired] = events(world, space_pb2.SpaceMemberExpired)
    assert (expired.space_id, expired.user_id, expired.version) == (home.id, first.user_id, 6)
    remaining = {member.user_id for member in world.store.members.values()}
    assert uid(first) not in remaining
    assert uid(second) in remaining


async def test_expiry_works_through_many_homes_in_batches(world: SpaceWorld) -> None:
    expiry_at = world.clock.now + timedelta(seconds=5)
    for _ in range(5):
        owner = world.person()
        home = await world.handlers.create_space(owner, "Home", "", "")
        await world.handlers.add_member(
            owner, str(home.id), world.person().user_id, GUEST, expiry_at
        )
    world.clock.now = expiry_at
    assert await GuestExpiry(world.uow, world.clock, homes_per_transaction=2).expire() == 5
    assert len(events(world, space_pb2.SpaceMemberExpired)) == 5


async def test_the_caller_id_must_be_an_id(world: SpaceWorld) -> None:
    caller = Caller(user_id="not-a-uuid", role="USER", session_id="s")
    refused = await raises(world.handlers.create_space(caller, "Home", "", ""), InvalidArgument)
    assert refused.reason == "INVALID_ID"
