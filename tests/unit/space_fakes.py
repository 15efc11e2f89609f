"""In-memory repositories, other services and a clock for the Space service's use cases."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from services.runtime.auth import Caller
from services.runtime.errors import AlreadyExists
from services.runtime.pagination import Cursor, PageTokens
from services.space.domain import SpaceLimits
from services.space.handlers import SpaceHandlers
from services.space.ports import (
    MemberRecord,
    SpaceAccess,
    SpaceFilter,
    SpaceRecord,
    SpaceRepositories,
)
from tests.fakes import FakeClock, FakeUnitOfWork


def _after(created_at: datetime, item_id: uuid.UUID, cursor: Cursor | None) -> bool:
    return cursor is None or (created_at, item_id) > (cursor.created_at, cursor.id)


@dataclass
class Store:
    """The tables: spaces as stored (rooms without an owner), memberships by (home, user)."""

    spaces: dict[uuid.UUID, SpaceRecord] = field(default_factory=dict)
    members: dict[tuple[uuid.UUID, uuid.UUID], MemberRecord] = field(default_factory=dict)
    deactivated: dict[uuid.UUID, datetime] = field(default_factory=dict)
    # Whom each home was created for.
    created_for: dict[uuid.UUID, uuid.UUID] = field(default_factory=dict)
    # When each account last changed (deactivated or reactivated), as recorded.
    account_changes: dict[uuid.UUID, datetime] = field(default_factory=dict)
    # Homes the last transaction locked, in order, and users it held.
    locked: list[uuid.UUID] = field(default_factory=list)
    held: list[uuid.UUID] = field(default_factory=list)

    def read(self, space: SpaceRecord) -> SpaceRecord:
        """As the repository reads it: a room with its home's owner."""
        return replace(space, owner_id=self.spaces[space.home_id].owner_id)


class FakeSpaces:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def add(self, space: SpaceRecord) -> None:
        self._store.spaces[space.id] = replace(
            space, owner_id=space.owner_id if space.is_home else None
        )
        if space.is_home and space.owner_id is not None:
            self._store.created_for[space.id] = space.owner_id

    async def count_created_for(self, user_id: uuid.UUID) -> int:
        return sum(
            1
            for space_id, user in self._store.created_for.items()
            if user == user_id and space_id in self._store.spaces
        )

    async def get(self, space_id: uuid.UUID) -> SpaceRecord | None:
        space = self._store.spaces.get(space_id)
        return self._store.read(space) if space else None

    async def access(self, space_id: uuid.UUID, user_id: uuid.UUID) -> SpaceAccess | None:
        space = self._store.spaces.get(space_id)
        if space is None:
            return None
        home = self._store.spaces[space.home_id]
        member = self._store.members.get((home.id, user_id))
        return SpaceAccess(self._store.read(space), member, home.membership_version)

    async def lock_home(self, space_id: uuid.UUID) -> SpaceRecord | None:
        space = self._store.spaces.get(space_id)
        if space is None:
            return None
        self._store.locked.append(space.home_id)
        return self._store.spaces[space.home_id]

    async def next_membership_version(self, home_id: uuid.UUID) -> int:
        home = self._store.spaces[home_id]
        self._store.spaces[home_id] = replace(home, membership_version=home.membership_version + 1)
        return home.membership_version + 1

    async def set_owner(self, home_id: uuid.UUID, owner_id: uuid.UUID | None) -> None:
        self._store.spaces[home_id] = replace(self._store.spaces[home_id], owner_id=owner_id)

    async def rename(self, space_id: uuid.UUID, name: str, now: datetime) -> None:
        self._store.spaces[space_id] = replace(
            self._store.spaces[space_id], name=name, updated_at=now
        )

    async def rooms(self, home_id: uuid.UUID) -> list[SpaceRecord]:
        rooms = [s for s in self._store.spaces.values() if s.parent_id == home_id]
        return [
            self._store.read(room) for room in sorted(rooms, key=lambda s: (s.created_at, s.id))
        ]

    async def delete(self, space_ids: Sequence[uuid.UUID]) -> None:
        for space_id in space_ids:
            del self._store.spaces[space_id]
            for key in [key for key in self._store.members if key[0] == space_id]:
                del self._store.members[key]

    async def page(
        self, where: SpaceFilter, now: datetime, after: Cursor | None, limit: int
    ) -> list[SpaceRecord]:
        def selected(space: SpaceRecord) -> bool:
            home_id = space.home_id
            if where.member_id is not None:
                member = self._store.members.get((home_id, where.member_id))
                if member is None or not member.is_live(now):
                    return False
            if where.owner_id is not None:
                member = self._store.members.get((home_id, where.owner_id))
                if member is None or member.role != "OWNER":
                    return False
            if where.parent_id is not None and space.parent_id != where.parent_id:
                return False
            return _after(space.created_at, space.id, after)

        found = sorted(
            (s for s in self._store.spaces.values() if selected(s)),
            key=lambda s: (s.created_at, s.id),
        )
        return [self._store.read(space) for space in found[:limit]]

    async def lock_homes_with_expired_guests(self, now: datetime, limit: int) -> list[uuid.UUID]:
        homes = sorted(
            {
                member.space_id
                for member in self._store.members.values()
                if member.expire_at is not None and member.expire_at <= now
            }
        )[:limit]
        self._store.locked.extend(homes)
        return homes


class FakeMembers:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def add(self, member: MemberRecord) -> None:
        key = (member.space_id, member.user_id)
        if key in self._store.members:
            raise AlreadyExists("ALREADY_MEMBER", "this user is already a member of the space")
        self._store.members[key] = member

    async def get(self, home_id: uuid.UUID, user_id: uuid.UUID) -> MemberRecord | None:
        return self._store.members.get((home_id, user_id))

    async def owners(self, home_id: uuid.UUID) -> list[uuid.UUID]:
        owners = [
            m for m in self._store.members.values() if m.space_id == home_id and m.role == "OWNER"
        ]
        return [m.user_id for m in sorted(owners, key=lambda m: (m.created_at, m.id))]

    async def save(self, member: MemberRecord) -> None:
        self._store.members[(member.space_id, member.user_id)] = member

    async def remove(self, home_id: uuid.UUID, user_id: uuid.UUID) -> None:
        self._store.members.pop((home_id, user_id), None)

    async def page(
        self, home_id: uuid.UUID, now: datetime, after: Cursor | None, limit: int
    ) -> list[MemberRecord]:
        found = sorted(
            (
                m
                for m in self._store.members.values()
                if m.space_id == home_id and m.is_live(now) and _after(m.created_at, m.id, after)
            ),
            key=lambda m: (m.created_at, m.id),
        )
        return found[:limit]

    async def homes_of(self, user_id: uuid.UUID) -> list[uuid.UUID]:
        return [home for home, user in self._store.members if user == user_id]

    async def remove_expired(
        self, home_ids: Sequence[uuid.UUID], now: datetime
    ) -> list[MemberRecord]:
        expired = [
            m
            for m in self._store.members.values()
            if m.space_id in home_ids and m.expire_at is not None and m.expire_at <= now
        ]
        for member in expired:
            del self._store.members[(member.space_id, member.user_id)]
        return expired


class FakeDeactivations:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def hold(self, user_id: uuid.UUID) -> None:
        self._store.held.append(user_id)

    async def is_deactivated(self, user_id: uuid.UUID) -> bool:
        return user_id in self._store.deactivated

    def _record(self, user_id: uuid.UUID, active: bool, at: datetime) -> bool:
        """Keep the newest state of an account; whether `at` was newer."""
        recorded = self._store.account_changes.get(user_id)
        if recorded is not None and recorded >= at:
            return False
        self._store.account_changes[user_id] = at
        if active:
            self._store.deactivated.pop(user_id, None)
        else:
            self._store.deactivated[user_id] = at
        return True

    async def add(self, user_id: uuid.UUID, deactivated_at: datetime) -> bool:
        return self._record(user_id, False, deactivated_at)

    async def remove(self, user_id: uuid.UUID, reactivated_at: datetime) -> None:
        self._record(user_id, True, reactivated_at)


@dataclass
class FakeUserDirectory:
    """Accounts the User service knows, and whether each is active."""

    accounts: dict[uuid.UUID, bool] = field(default_factory=dict)
    asked: list[uuid.UUID] = field(default_factory=list)

    async def is_active(self, user_id: uuid.UUID) -> bool:
        self.asked.append(user_id)
        return self.accounts.get(user_id, False)


@dataclass
class FakeDeviceInventory:
    devices: dict[uuid.UUID, int] = field(default_factory=dict)

    async def count(self, space_id: uuid.UUID) -> int:
        return self.devices.get(space_id, 0)


@dataclass
class SpaceWorld:
    """Handlers wired to fakes, and the fakes to look at."""

    handlers: SpaceHandlers
    uow: FakeUnitOfWork[SpaceRepositories]
    store: Store
    users: FakeUserDirectory
    devices: FakeDeviceInventory
    clock: FakeClock

    def person(self, role: str = "USER", *, active: bool = True) -> Caller:
        """A caller with an account the User service knows."""
        user_id = uuid.uuid4()
        self.users.accounts[user_id] = active
        return Caller(user_id=str(user_id), role=role, session_id=str(uuid.uuid4()))

    def admin(self) -> Caller:
        return self.person("ADMIN")


def space_world(limits: SpaceLimits | None = None) -> SpaceWorld:
    store = Store()
    repos = SpaceRepositories(FakeSpaces(store), FakeMembers(store), FakeDeactivations(store))
    uow = FakeUnitOfWork(repos)
    users, devices, clock = (
        FakeUserDirectory(),
        FakeDeviceInventory(),
        FakeClock(tick=timedelta(microseconds=1)),
    )
    handlers = SpaceHandlers(
        uow,
        users,
        devices,
        PageTokens(b"page-token-key-for-unit-tests-0123456789"),
        limits=limits,
        clock=clock,
    )
    return SpaceWorld(handlers, uow, store, users, devices, clock)
