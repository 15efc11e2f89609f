"""What the Space service's use cases read and write, independent of storage.

Handlers see only these: records as plain dataclasses, repositories and the
other services they ask as protocols. `repository.py` implements the
repositories on PostgreSQL, `clients.py` the other services over gRPC; unit
tests use dictionaries (tests/unit/space_fakes.py).
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from services.runtime.pagination import Cursor
from services.runtime.space_roles import Membership


@dataclass(frozen=True)
class SpaceRecord:
    id: uuid.UUID
    name: str
    # The home's primary OWNER. Repositories read a room's as its home's;
    # None while the home has no OWNER.
    owner_id: uuid.UUID | None
    # The home of a room; None for a home.
    parent_id: uuid.UUID | None
    # A home's: taken by each change of its members (0 for a room).
    membership_version: int
    created_at: datetime
    updated_at: datetime

    @property
    def home_id(self) -> uuid.UUID:
        return self.parent_id or self.id

    @property
    def is_home(self) -> bool:
        return self.parent_id is None


@dataclass(frozen=True)
class MemberRecord:
    """A user's membership of a home (rooms have none of their own)."""

    id: uuid.UUID
    space_id: uuid.UUID
    user_id: uuid.UUID
    role: str
    # GUEST only: the membership ends at this instant.
    expire_at: datetime | None
    created_at: datetime

    @property
    def membership(self) -> Membership:
        return Membership(self.role, self.expire_at)

    def is_live(self, now: datetime) -> bool:
        return self.membership.is_live(now)


@dataclass(frozen=True)
class SpaceAccess:
    """A space and one user's membership row of its home, read together."""

    space: SpaceRecord
    # Live or expired: callers decide at the moment they act.
    member: MemberRecord | None
    # The home's membership version this reading reflects.
    membership_version: int

    @property
    def membership(self) -> Membership | None:
        return self.member.membership if self.member else None


@dataclass(frozen=True)
class SpaceFilter:
    """Which spaces a listing returns: all of them with every field None."""

    # Spaces whose home this user is a live member of.
    member_id: uuid.UUID | None = None
    # Spaces whose home this user is an OWNER of.
    owner_id: uuid.UUID | None = None
    # Only the rooms of this home.
    parent_id: uuid.UUID | None = None


class Spaces(Protocol):
    async def add(self, space: SpaceRecord) -> None: ...

    async def count_created_for(self, user_id: uuid.UUID) -> int:
        """How many live homes were created for the user, whoever owns them now."""

    async def get(self, space_id: uuid.UUID) -> SpaceRecord | None: ...

    async def access(self, space_id: uuid.UUID, user_id: uuid.UUID) -> SpaceAccess | None:
        """The space and the user's membership row of its home; None for an unknown space."""

    async def lock_home(self, space_id: uuid.UUID) -> SpaceRecord | None:
        """The home of `space_id` (itself for a home), row-locked until the
        transaction ends. Every change of a home's members takes this lock
        first, so they happen one after another."""

    async def next_membership_version(self, home_id: uuid.UUID) -> int:
        """Take the home's next membership version (with its lock held)."""

    async def set_owner(self, home_id: uuid.UUID, owner_id: uuid.UUID | None) -> None: ...

    async def rename(self, space_id: uuid.UUID, name: str, now: datetime) -> None: ...

    async def rooms(self, home_id: uuid.UUID) -> list[SpaceRecord]: ...

    async def delete(self, space_ids: Sequence[uuid.UUID]) -> None:
        """Delete spaces (rooms before their home) and their members."""

    async def page(
        self, where: SpaceFilter, now: datetime, after: Cursor | None, limit: int
    ) -> list[SpaceRecord]:
        """In (created_at, id) order, after the cursor."""

    async def lock_homes_with_expired_guests(self, now: datetime, limit: int) -> list[uuid.UUID]:
        """Homes holding memberships expired at `now`, row-locked; homes another
        transaction holds are skipped (their turn comes next time)."""


class Members(Protocol):
    async def add(self, member: MemberRecord) -> None:
        """Insert; AlreadyExists (ALREADY_MEMBER) when the user has a row in the home."""

    async def get(self, home_id: uuid.UUID, user_id: uuid.UUID) -> MemberRecord | None:
        """The user's row, live or expired."""

    async def owners(self, home_id: uuid.UUID) -> list[uuid.UUID]:
        """The home's OWNERs, earliest member first."""

    async def save(self, member: MemberRecord) -> None:
        """Write role and expiry back."""

    async def remove(self, home_id: uuid.UUID, user_id: uuid.UUID) -> None: ...

    async def page(
        self, home_id: uuid.UUID, now: datetime, after: Cursor | None, limit: int
    ) -> list[MemberRecord]:
        """Live members in (created_at, id) order, after the cursor."""

    async def homes_of(self, user_id: uuid.UUID) -> list[uuid.UUID]:
        """Every home the user has a row in, live or expired."""

    async def remove_expired(
        self, home_ids: Sequence[uuid.UUID], now: datetime
    ) -> list[MemberRecord]:
        """Delete those homes' memberships expired at `now`; the rows deleted."""


class Deactivations(Protocol):
    """Accounts the User service deactivated, as its events told us."""

    async def hold(self, user_id: uuid.UUID) -> None:
        """Serialize, until the transaction ends, with anything else that
        adds or ends this user's memberships."""

    async def is_deactivated(self, user_id: uuid.UUID) -> bool: ...

    async def add(self, user_id: uuid.UUID, deactivated_at: datetime) -> bool:
        """Record a deactivation; False when a later change of the account
        (a reactivation) is already recorded: the deactivation is stale."""

    async def remove(self, user_id: uuid.UUID, reactivated_at: datetime) -> None:
        """Record a reactivation, unless a later change is already recorded."""


@dataclass(frozen=True)
class SpaceRepositories:
    """What one unit of work hands out."""

    spaces: Spaces
    members: Members
    deactivations: Deactivations


class UserDirectory(Protocol):
    """The User service, as this one asks it."""

    async def is_active(self, user_id: uuid.UUID) -> bool:
        """False for an unknown account as for a deactivated one."""


class DeviceInventory(Protocol):
    """The Device service, as this one asks it."""

    async def count(self, space_id: uuid.UUID) -> int:
        """Live devices in the space (and, for a home, in its rooms)."""
