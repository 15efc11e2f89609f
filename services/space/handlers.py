"""Space Management use cases: each one transaction, its events in the outbox.

Handlers depend on the `UnitOfWork` protocol, the repositories of `ports.py`
and the two services they ask (`UserDirectory`, `DeviceInventory`); a clock
comes in through the constructor, so unit tests replace them all.

Every change of a home's members locks the home row first, takes the home's
next membership version and writes it into its event: changes of one home
happen one after another (a "last OWNER" check cannot race), and versions
follow commit order. Rights are checked against the caller's membership as
it is under that lock, not as it was when the request arrived.
"""

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime

from google.protobuf.message import Message
from warmhouse.space.v1 import space_pb2

from services.runtime.auth import Caller
from services.runtime.clock import Clock, utc_now
from services.runtime.errors import AlreadyExists, DomainError, InvalidArgument, PermissionDenied
from services.runtime.pagination import Cursor, PageTokens, page_size
from services.runtime.quotas import check_quota
from services.runtime.request import parse_uuid
from services.runtime.space_roles import OWNER, Right
from services.runtime.text import display_name
from services.runtime.timestamps import timestamp
from services.runtime.unit_of_work import Transaction, UnitOfWork
from services.runtime.user_status import user_not_available
from services.space import domain
from services.space.ports import (
    DeviceInventory,
    MemberRecord,
    SpaceAccess,
    SpaceFilter,
    SpaceRecord,
    SpaceRepositories,
    UserDirectory,
)

Tx = Transaction[SpaceRepositories]
# Writes an event in the current transaction (a unit of work's or a consumer's).
Emit = Callable[[Message], Awaitable[object]]


def _role(role: str) -> space_pb2.SpaceUserRole.ValueType:
    return space_pb2.SpaceUserRole.Value(role)


def _member_added(member: MemberRecord, version: int) -> space_pb2.SpaceMemberAdded:
    event = space_pb2.SpaceMemberAdded(
        space_id=str(member.space_id),
        user_id=str(member.user_id),
        role=_role(member.role),
        occur_time=timestamp(member.created_at),
        version=version,
    )
    if member.expire_at is not None:
        event.expire_time.CopyFrom(timestamp(member.expire_at))
    return event


def _space_cursor(space: SpaceRecord) -> Cursor:
    return Cursor(space.created_at, space.id)


def _member_cursor(member: MemberRecord) -> Cursor:
    return Cursor(member.created_at, member.id)


async def settle_owner(repos: SpaceRepositories, home: SpaceRecord) -> None:
    """Keep the home's primary owner one of its OWNERs (None when it has none)."""
    owner = domain.primary_owner(home.owner_id, await repos.members.owners(home.id))
    if owner != home.owner_id:
        await repos.spaces.set_owner(home.id, owner)


async def end_membership(
    repos: SpaceRepositories,
    emit: Emit,
    home: SpaceRecord,
    member: MemberRecord,
    reason: space_pb2.SpaceMemberRemovalReason.ValueType,
    now: datetime,
) -> None:
    """Remove a member (the home locked) and announce it."""
    await repos.members.remove(home.id, member.user_id)
    version = await repos.spaces.next_membership_version(home.id)
    await settle_owner(repos, home)
    await emit(
        space_pb2.SpaceMemberRemoved(
            space_id=str(home.id),
            user_id=str(member.user_id),
            occur_time=timestamp(now),
            version=version,
            reason=reason,
        )
    )


async def announce_expiry(repos: SpaceRepositories, emit: Emit, member: MemberRecord) -> None:
    """A guest's membership, already deleted, expired (its home locked)."""
    version = await repos.spaces.next_membership_version(member.space_id)
    await emit(
        space_pb2.SpaceMemberExpired(
            space_id=str(member.space_id),
            user_id=str(member.user_id),
            version=version,
            occur_time=timestamp(member.expire_at or member.created_at),
        )
    )


async def user_deactivated(
    repos: SpaceRepositories, emit: Emit, user_id: uuid.UUID, at: datetime, now: datetime
) -> int:
    """End every membership of a deactivated account; how many ended. Its
    homes stay, without an OWNER if it was their only one, for an ADMIN to
    give a new one."""
    await repos.deactivations.hold(user_id)
    if not await repos.deactivations.add(user_id, at):
        return 0  # reactivated since: a late event must not end newer memberships
    ended = 0
    # In id order, as every transaction that locks several homes does.
    for home_id in sorted(await repos.members.homes_of(user_id)):
        home = await repos.spaces.lock_home(home_id)
        member = await repos.members.get(home_id, user_id) if home is not None else None
        if home is None or member is None:
            continue  # the home was deleted, or the member left, meanwhile
        await end_membership(
            repos, emit, home, member, space_pb2.SpaceMemberRemovalReason.USER_DEACTIVATED, now
        )
        ended += 1
    return ended


async def user_reactivated(repos: SpaceRepositories, user_id: uuid.UUID, at: datetime) -> None:
    """The account may be added to spaces again (its old memberships stay ended)."""
    await repos.deactivations.hold(user_id)
    await repos.deactivations.remove(user_id, at)


class SpaceHandlers:
    def __init__(
        self,
        uow: UnitOfWork[SpaceRepositories],
        users: UserDirectory,
        devices: DeviceInventory,
        page_tokens: PageTokens,
        *,
        limits: domain.SpaceLimits | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self._limits = limits or domain.SpaceLimits()
        self._uow = uow
        self._users = users
        self._devices = devices
        self._page_tokens = page_tokens
        self._clock = clock

    # Reading and locking a space with the caller's membership

    async def _read_access(self, space_id: uuid.UUID, user_id: uuid.UUID) -> SpaceAccess:
        async with self._uow.read() as repos:
            access = await repos.spaces.access(space_id, user_id)
        if access is None:
            raise domain.space_not_found()
        return access

    @staticmethod
    async def _locked_access(tx: Tx, space_id: uuid.UUID, user_id: uuid.UUID) -> SpaceAccess:
        """The space and the caller's membership, read with its home locked."""
        home = await tx.repos.spaces.lock_home(space_id)
        access = await tx.repos.spaces.access(space_id, user_id) if home is not None else None
        if access is None:
            raise domain.space_not_found()
        return access

    @staticmethod
    def _may_manage_members(caller: Caller, access: SpaceAccess, now: datetime) -> None:
        """Non-members learn nothing (404); members are told a room holds no
        members (400) before they are told they may not (403)."""
        domain.authorize(caller, access.membership, Right.READ, now)
        domain.require_home(access.space.is_home)
        domain.authorize(caller, access.membership, Right.MANAGE_MEMBERS, now)

    async def _admit(self, repos: SpaceRepositories, user_id: uuid.UUID, field: str) -> None:
        """Hold the account (a deactivation being applied waits, or has been
        applied) and refuse it if it was deactivated."""
        await repos.deactivations.hold(user_id)
        if await repos.deactivations.is_deactivated(user_id):
            raise user_not_available(field)

    # Spaces

    async def create_space(
        self, caller: Caller, name: str, owner_id: str, parent_space_id: str
    ) -> SpaceRecord:
        name = display_name(name)
        caller_id = caller.user_uuid
        if parent_space_id:
            parent = parse_uuid(parent_space_id, "parentSpaceId")
            return await self._create_room(caller, caller_id, name, parent)
        owner = parse_uuid(owner_id, "ownerId") if owner_id else caller_id
        if owner != caller_id:
            if not caller.is_admin:
                raise PermissionDenied("NOT_OWNER", "you may only create spaces you own")
            if not await self._users.is_active(owner):
                raise user_not_available("ownerId")
        now = self._clock()
        home = SpaceRecord(uuid.uuid4(), name, owner, None, 1, now, now)
        member = MemberRecord(uuid.uuid4(), home.id, owner, OWNER, None, now)
        async with self._uow.transaction() as tx:
            # Under the owner's hold: concurrent creations are counted one by one.
            await self._admit(tx.repos, owner, "ownerId")
            check_quota(
                await tx.repos.spaces.count_created_for(owner),
                self._limits.homes_per_owner,
                "homes per owner",
            )
            await tx.repos.spaces.add(home)
            await tx.repos.members.add(member)
            await tx.add_event(
                space_pb2.SpaceCreated(
                    space_id=str(home.id),
                    name=name,
                    owner_id=str(owner),
                    occur_time=timestamp(now),
                )
            )
            await tx.add_event(_member_added(member, home.membership_version))
        return home

    async def _create_room(
        self, caller: Caller, caller_id: uuid.UUID, name: str, parent: uuid.UUID
    ) -> SpaceRecord:
        now = self._clock()
        async with self._uow.transaction() as tx:
            # Locked: a home being deleted either sees this room or is gone.
            access = await self._locked_access(tx, parent, caller_id)
            domain.authorize(caller, access.membership, Right.READ, now)
            if not access.space.is_home:
                raise InvalidArgument(
                    "ROOMS_CANNOT_NEST", "a room cannot hold rooms", field="parentSpaceId"
                )
            domain.authorize(caller, access.membership, Right.MANAGE_MEMBERS, now)
            home = access.space
            rooms = await tx.repos.spaces.rooms(home.id)
            check_quota(len(rooms), self._limits.rooms_per_home, "rooms per home")
            room = SpaceRecord(uuid.uuid4(), name, home.owner_id, home.id, 0, now, now)
            await tx.repos.spaces.add(room)
            await tx.add_event(
                space_pb2.SpaceCreated(
                    space_id=str(room.id),
                    name=name,
                    owner_id=str(home.owner_id or ""),
                    occur_time=timestamp(now),
                    parent_space_id=str(home.id),
                )
            )
        return room

    async def get_space(self, caller: Caller, space_id: str) -> SpaceRecord:
        access = await self._read_access(parse_uuid(space_id, "spaceId"), caller.user_uuid)
        domain.authorize(caller, access.membership, Right.READ, self._clock())
        return access.space

    async def list_spaces(
        self,
        caller: Caller,
        requested_size: int,
        page_token: str,
        *,
        user_id: str = "",
        owner_id: str = "",
        parent_space_id: str = "",
    ) -> tuple[list[SpaceRecord], str]:
        limit = page_size(requested_size)
        caller_id = caller.user_uuid
        member = parse_uuid(user_id, "userId") if user_id else None
        owner = parse_uuid(owner_id, "ownerId") if owner_id else None
        parent = parse_uuid(parent_space_id, "parentSpaceId") if parent_space_id else None
        now = self._clock()
        if not caller.is_admin:
            if owner is not None:
                raise PermissionDenied(
                    "ADMIN_REQUIRED", "only an administrator may list spaces by owner"
                )
            if member not in (None, caller_id):
                raise PermissionDenied(
                    "ADMIN_REQUIRED", "only an administrator may list another user's spaces"
                )
            member = caller_id
        listing = f"spaces:{member}:{owner}:{parent}"
        cursor = self._page_tokens.decode(page_token, listing=listing)
        if parent is not None:
            access = await self._read_access(parent, caller_id)
            domain.authorize(caller, access.membership, Right.READ, now)
        async with self._uow.read() as repos:
            spaces = await repos.spaces.page(
                SpaceFilter(member, owner, parent), now, cursor, limit + 1
            )
        return self._page_tokens.page(spaces, limit, _space_cursor, listing=listing)

    async def rename_space(self, caller: Caller, space_id: str, name: str) -> SpaceRecord:
        target = parse_uuid(space_id, "spaceId")
        name = display_name(name)
        caller_id = caller.user_uuid
        now = self._clock()
        async with self._uow.transaction() as tx:
            # Under the home's lock: a deletion or the caller's removal either
            # happened first (and is seen) or waits for this rename.
            access = await self._locked_access(tx, target, caller_id)
            domain.authorize(caller, access.membership, Right.READ, now)
            domain.authorize(caller, access.membership, Right.MANAGE_MEMBERS, now)
            if access.space.name == name:
                return access.space
            await tx.repos.spaces.rename(target, name, now)
            await tx.add_event(
                space_pb2.SpaceRenamed(space_id=str(target), name=name, occur_time=timestamp(now))
            )
        return replace(access.space, name=name, updated_at=now)

    async def delete_space(self, caller: Caller, space_id: str) -> None:
        """A space and, for a home, its rooms; refused while any holds a device."""
        target = parse_uuid(space_id, "spaceId")
        caller_id = caller.user_uuid
        access = await self._read_access(target, caller_id)
        domain.authorize(caller, access.membership, Right.READ, self._clock())
        domain.authorize(caller, access.membership, Right.MANAGE_MEMBERS, self._clock())
        if await self._devices.count(target) > 0:
            raise DomainError("SPACE_HAS_DEVICES", "retire or move its devices first")
        now = self._clock()
        async with self._uow.transaction() as tx:
            # Locked: no room is added to a home while it is being deleted.
            access = await self._locked_access(tx, target, caller_id)
            domain.authorize(caller, access.membership, Right.READ, now)
            domain.authorize(caller, access.membership, Right.MANAGE_MEMBERS, now)
            space = access.space
            rooms = await tx.repos.spaces.rooms(space.id) if space.is_home else []
            await tx.repos.spaces.delete([*(room.id for room in rooms), space.id])
            for deleted in (*rooms, space):
                await tx.add_event(
                    space_pb2.SpaceDeleted(
                        space_id=str(deleted.id),
                        parent_space_id=str(deleted.parent_id or ""),
                        occur_time=timestamp(now),
                    )
                )

    # Members

    async def add_member(
        self,
        caller: Caller,
        space_id: str,
        user_id: str,
        role: str,
        expire_at: datetime | None,
    ) -> MemberRecord:
        home_id = parse_uuid(space_id, "spaceId")
        target = parse_uuid(user_id, "userId")
        caller_id = caller.user_uuid
        domain.check_terms(role, expire_at, self._clock())
        # Before asking User: whoever may not add members learns nothing about accounts.
        self._may_manage_members(caller, await self._read_access(home_id, caller_id), self._clock())
        if not await self._users.is_active(target):
            raise user_not_available("userId")
        now = self._clock()
        async with self._uow.transaction() as tx:
            await self._admit(tx.repos, target, "userId")
            access = await self._locked_access(tx, home_id, caller_id)
            self._may_manage_members(caller, access, now)
            home = access.space
            existing = await tx.repos.members.get(home.id, target)
            if existing is not None:
                if existing.is_live(now):
                    raise AlreadyExists(
                        "ALREADY_MEMBER", "this user is already a member of the space"
                    )
                # Expired, and the expiry job has not come by yet: it ends now.
                await tx.repos.members.remove(home.id, target)
                await announce_expiry(tx.repos, tx.add_event, existing)
            member = MemberRecord(uuid.uuid4(), home.id, target, role, expire_at, now)
            await tx.repos.members.add(member)
            version = await tx.repos.spaces.next_membership_version(home.id)
            await settle_owner(tx.repos, home)
            await tx.add_event(_member_added(member, version))
        return member

    async def get_member(self, caller: Caller, space_id: str, user_id: str) -> MemberRecord:
        """A user's live membership of the space's home (a room answers with its home)."""
        space = parse_uuid(space_id, "spaceId")
        target = parse_uuid(user_id, "userId")
        access = await self._read_access(space, caller.user_uuid)
        now = self._clock()
        domain.authorize(caller, access.membership, Right.READ, now)
        async with self._uow.read() as repos:
            member = await repos.members.get(access.space.home_id, target)
        if member is None or not member.is_live(now):
            raise domain.member_not_found()
        return member

    async def list_members(
        self, caller: Caller, space_id: str, requested_size: int, page_token: str
    ) -> tuple[list[MemberRecord], str]:
        space = parse_uuid(space_id, "spaceId")
        limit = page_size(requested_size)
        listing = f"members:{space}"
        cursor = self._page_tokens.decode(page_token, listing=listing)
        access = await self._read_access(space, caller.user_uuid)
        now = self._clock()
        domain.authorize(caller, access.membership, Right.READ, now)
        async with self._uow.read() as repos:
            members = await repos.members.page(access.space.home_id, now, cursor, limit + 1)
        return self._page_tokens.page(members, limit, _member_cursor, listing=listing)

    async def update_member(
        self,
        caller: Caller,
        space_id: str,
        user_id: str,
        role: str,
        expire_at: datetime | None,
    ) -> MemberRecord:
        """Set a member's role and expiry (unset: never). Unchanged: nothing written."""
        home_id = parse_uuid(space_id, "spaceId")
        target = parse_uuid(user_id, "userId")
        caller_id = caller.user_uuid
        now = self._clock()
        domain.check_terms(role, expire_at, now)
        async with self._uow.transaction() as tx:
            access = await self._locked_access(tx, home_id, caller_id)
            self._may_manage_members(caller, access, now)
            home = access.space
            member = await tx.repos.members.get(home.id, target)
            if member is None or not member.is_live(now):
                raise domain.member_not_found()
            if (member.role, member.expire_at) == (role, expire_at):
                return member
            if member.role == OWNER and role != OWNER:
                domain.check_owner_remains(await tx.repos.members.owners(home.id), target)
            changed = replace(member, role=role, expire_at=expire_at)
            await tx.repos.members.save(changed)
            version = await tx.repos.spaces.next_membership_version(home.id)
            await settle_owner(tx.repos, home)
            event = space_pb2.SpaceMemberRoleChanged(
                space_id=str(home.id),
                user_id=str(target),
                old_role=_role(member.role),
                new_role=_role(role),
                version=version,
                occur_time=timestamp(now),
            )
            if expire_at is not None:
                event.expire_time.CopyFrom(timestamp(expire_at))
            await tx.add_event(event)
        return changed

    async def remove_member(self, caller: Caller, space_id: str, user_id: str) -> None:
        """An OWNER or an ADMIN removes a member; any member may leave."""
        home_id = parse_uuid(space_id, "spaceId")
        target = parse_uuid(user_id, "userId")
        caller_id = caller.user_uuid
        leaving = target == caller_id
        now = self._clock()
        async with self._uow.transaction() as tx:
            access = await self._locked_access(tx, home_id, caller_id)
            domain.authorize(caller, access.membership, Right.READ, now)
            domain.require_home(access.space.is_home)
            if not leaving:
                domain.authorize(caller, access.membership, Right.MANAGE_MEMBERS, now)
            home = access.space
            member = await tx.repos.members.get(home.id, target)
            if member is None or not member.is_live(now):
                raise domain.member_not_found()
            if member.role == OWNER:
                domain.check_owner_remains(await tx.repos.members.owners(home.id), target)
            reasons = space_pb2.SpaceMemberRemovalReason
            reason = reasons.LEFT if leaving else reasons.REMOVED
            await end_membership(tx.repos, tx.add_event, home, member, reason, now)

    # For other services

    async def space_access(self, space_id: str, user_id: str) -> SpaceAccess:
        """A space's home and the user's live membership (None if none)."""
        space = parse_uuid(space_id, "spaceId")
        user = parse_uuid(user_id, "userId")
        async with self._uow.read() as repos:
            access = await repos.spaces.access(space, user)
        if access is None:
            raise domain.space_not_found()
        if access.member is not None and not access.member.is_live(self._clock()):
            return replace(access, member=None)
        return access
