"""The Space service's repositories on PostgreSQL.

Every query of the service lives here, compiled once (`Query`); the classes
implement the protocols of `ports.py`, whose signatures know nothing of the
database, so handlers do not either.
"""

import itertools
import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import bindparam, text, update

from services.runtime.database import Connection, Query, Record, conflicts_as
from services.runtime.errors import AlreadyExists
from services.runtime.pagination import Cursor
from services.space.ports import (
    MemberRecord,
    SpaceAccess,
    SpaceFilter,
    SpaceRecord,
    SpaceRepositories,
)
from services.space.tables import space_users, spaces

# A space with its home (itself for a home): a room reads its home's owner.
_SPACE_COLUMNS = (
    "s.id, s.name, h.owner_id, s.parent_id, s.membership_version, s.created_at, s.updated_at"
)
_WITH_HOME = "spaces s JOIN spaces h ON h.id = COALESCE(s.parent_id, s.id)"

_ADD_SPACE = Query(spaces.insert())
_SPACE_BY_ID = Query(text(f"SELECT {_SPACE_COLUMNS} FROM {_WITH_HOME} WHERE s.id = :id"))
_ACCESS = Query(
    text(
        f"SELECT {_SPACE_COLUMNS}, h.membership_version AS home_version,"
        " m.id AS member_id, m.role, m.expire_at, m.created_at AS joined_at"
        f" FROM {_WITH_HOME}"
        " LEFT JOIN space_users m ON m.space_id = h.id AND m.user_id = :user_id"
        " WHERE s.id = :space_id"
    )
)
_LOCK_HOME = Query(
    text(
        "SELECT id, name, owner_id, parent_id, membership_version, created_at, updated_at"
        " FROM spaces WHERE id = (SELECT COALESCE(parent_id, id) FROM spaces WHERE id = :id)"
        " FOR UPDATE"
    )
)
_NEXT_VERSION = Query(
    text(
        "UPDATE spaces SET membership_version = membership_version + 1 WHERE id = :id"
        " RETURNING membership_version"
    )
)
_SET_OWNER = Query(
    update(spaces).where(spaces.c.id == bindparam("home_id")).values(owner_id=bindparam("owner"))
)
_RENAME = Query(
    update(spaces)
    .where(spaces.c.id == bindparam("space_id"))
    .values(name=bindparam("name"), updated_at=bindparam("now"))
)
_ROOMS = Query(
    text(
        f"SELECT {_SPACE_COLUMNS} FROM {_WITH_HOME} WHERE s.parent_id = :home_id"
        " ORDER BY s.created_at, s.id"
    )
)
# One statement: the rooms' references to their home are checked at its end.
_DELETE_SPACES = Query(text("DELETE FROM spaces WHERE id = ANY(CAST(:ids AS uuid[]))"))
_LOCK_HOMES_WITH_EXPIRED_GUESTS = Query(
    text(
        "SELECT id FROM spaces WHERE id IN ("
        "  SELECT DISTINCT space_id FROM space_users WHERE expire_at <= :now LIMIT :limit"
        ") ORDER BY id FOR UPDATE SKIP LOCKED"
    )
)


def _list_spaces(member: bool, owner: bool, parent: bool, after: bool) -> Query:
    """One listing statement per combination of filters, each with a plan of its own."""
    conditions = []
    if member:
        conditions.append(
            "h.id IN (SELECT m.space_id FROM space_users m WHERE m.user_id = :member_id"
            " AND (m.expire_at IS NULL OR m.expire_at > :now))"
        )
    if owner:
        conditions.append(
            "h.id IN (SELECT o.space_id FROM space_users o WHERE o.user_id = :owner_id"
            " AND o.role = 'OWNER')"
        )
    if parent:
        conditions.append("s.parent_id = :parent_id")
    if after:
        conditions.append("(s.created_at, s.id) > (:created_at, :id)")
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    return Query(
        text(
            f"SELECT {_SPACE_COLUMNS} FROM {_WITH_HOME}{where}"
            " ORDER BY s.created_at, s.id LIMIT :limit"
        )
    )


_LIST_SPACES = {flags: _list_spaces(*flags) for flags in itertools.product((False, True), repeat=4)}


def _space(row: Record) -> SpaceRecord:
    return SpaceRecord(
        id=row["id"],
        name=row["name"],
        owner_id=row["owner_id"],
        parent_id=row["parent_id"],
        membership_version=row["membership_version"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


class SqlSpaces:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    async def add(self, space: SpaceRecord) -> None:
        await self._connection.execute(
            _ADD_SPACE,
            id=space.id,
            name=space.name,
            # A room has no owner of its own: it reads its home's.
            owner_id=space.owner_id if space.is_home else None,
            created_for=space.owner_id if space.is_home else None,
            parent_id=space.parent_id,
            membership_version=space.membership_version,
            created_at=space.created_at,
            updated_at=space.updated_at,
        )

    async def count_created_for(self, user_id: uuid.UUID) -> int:
        return int(await self._connection.fetchval(_COUNT_CREATED_FOR, user_id=user_id))

    async def get(self, space_id: uuid.UUID) -> SpaceRecord | None:
        row = await self._connection.fetchrow(_SPACE_BY_ID, id=space_id)
        return _space(row) if row else None

    async def access(self, space_id: uuid.UUID, user_id: uuid.UUID) -> SpaceAccess | None:
        row = await self._connection.fetchrow(_ACCESS, space_id=space_id, user_id=user_id)
        if row is None:
            return None
        space = _space(row)
        member = None
        if row["member_id"] is not None:
            member = MemberRecord(
                id=row["member_id"],
                space_id=space.home_id,
                user_id=user_id,
                role=row["role"],
                expire_at=row["expire_at"],
                created_at=row["joined_at"],
            )
        return SpaceAccess(space, member, row["home_version"])

    async def lock_home(self, space_id: uuid.UUID) -> SpaceRecord | None:
        row = await self._connection.fetchrow(_LOCK_HOME, id=space_id)
        return _space(row) if row else None

    async def next_membership_version(self, home_id: uuid.UUID) -> int:
        return int(await self._connection.fetchval(_NEXT_VERSION, id=home_id))

    async def set_owner(self, home_id: uuid.UUID, owner_id: uuid.UUID | None) -> None:
        await self._connection.execute(_SET_OWNER, home_id=home_id, owner=owner_id)

    async def rename(self, space_id: uuid.UUID, name: str, now: datetime) -> None:
        await self._connection.execute(_RENAME, space_id=space_id, name=name, now=now)

    async def rooms(self, home_id: uuid.UUID) -> list[SpaceRecord]:
        return [_space(row) for row in await self._connection.fetch(_ROOMS, home_id=home_id)]

    async def delete(self, space_ids: Sequence[uuid.UUID]) -> None:
        await self._connection.execute(_DELETE_SPACES, ids=list(space_ids))

    async def page(
        self, where: SpaceFilter, now: datetime, after: Cursor | None, limit: int
    ) -> list[SpaceRecord]:
        flags = (
            where.member_id is not None,
            where.owner_id is not None,
            where.parent_id is not None,
            after is not None,
        )
        rows = await self._connection.fetch(
            _LIST_SPACES[flags],
            member_id=where.member_id,
            owner_id=where.owner_id,
            parent_id=where.parent_id,
            now=now,
            created_at=after.created_at if after else None,
            id=after.id if after else None,
            limit=limit,
        )
        return [_space(row) for row in rows]

    async def lock_homes_with_expired_guests(self, now: datetime, limit: int) -> list[uuid.UUID]:
        rows = await self._connection.fetch(_LOCK_HOMES_WITH_EXPIRED_GUESTS, now=now, limit=limit)
        return [row["id"] for row in rows]


def _already_member() -> AlreadyExists:
    return AlreadyExists("ALREADY_MEMBER", "this user is already a member of the space")


_MEMBER_CONFLICT = {"space_users_member_key": _already_member}
_ADD_MEMBER = Query(space_users.insert())
_MEMBER = Query(text("SELECT * FROM space_users WHERE space_id = :home_id AND user_id = :user_id"))
_OWNERS = Query(
    text(
        "SELECT user_id FROM space_users WHERE space_id = :home_id AND role = 'OWNER'"
        " ORDER BY created_at, id"
    )
)
_SAVE_MEMBER = Query(
    update(space_users)
    .where(space_users.c.id == bindparam("member_id"))
    .values(role=bindparam("role"), expire_at=bindparam("expire_at"))
)
_REMOVE_MEMBER = Query(
    text("DELETE FROM space_users WHERE space_id = :home_id AND user_id = :user_id")
)
_LIVE = "(expire_at IS NULL OR expire_at > :now)"
_FIRST_MEMBERS = Query(
    text(
        f"SELECT * FROM space_users WHERE space_id = :home_id AND {_LIVE}"
        " ORDER BY created_at, id LIMIT :limit"
    )
)
_MEMBERS_AFTER = Query(
    text(
        f"SELECT * FROM space_users WHERE space_id = :home_id AND {_LIVE}"
        " AND (created_at, id) > (:created_at, :id) ORDER BY created_at, id LIMIT :limit"
    )
)
_HOMES_OF = Query(text("SELECT space_id FROM space_users WHERE user_id = :user_id"))
_COUNT_CREATED_FOR = Query(text("SELECT count(*) FROM spaces WHERE created_for = :user_id"))
_REMOVE_EXPIRED = Query(
    text(
        "DELETE FROM space_users WHERE space_id = ANY(CAST(:home_ids AS uuid[]))"
        " AND expire_at <= :now RETURNING *"
    )
)


def _member(row: Record) -> MemberRecord:
    return MemberRecord(**row)


class SqlMembers:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    async def add(self, member: MemberRecord) -> None:
        with conflicts_as(_MEMBER_CONFLICT):
            await self._connection.execute(_ADD_MEMBER, **member.__dict__)

    async def get(self, home_id: uuid.UUID, user_id: uuid.UUID) -> MemberRecord | None:
        row = await self._connection.fetchrow(_MEMBER, home_id=home_id, user_id=user_id)
        return _member(row) if row else None

    async def owners(self, home_id: uuid.UUID) -> list[uuid.UUID]:
        return [row["user_id"] for row in await self._connection.fetch(_OWNERS, home_id=home_id)]

    async def save(self, member: MemberRecord) -> None:
        await self._connection.execute(
            _SAVE_MEMBER, member_id=member.id, role=member.role, expire_at=member.expire_at
        )

    async def remove(self, home_id: uuid.UUID, user_id: uuid.UUID) -> None:
        await self._connection.execute(_REMOVE_MEMBER, home_id=home_id, user_id=user_id)

    async def page(
        self, home_id: uuid.UUID, now: datetime, after: Cursor | None, limit: int
    ) -> list[MemberRecord]:
        if after is None:
            rows = await self._connection.fetch(
                _FIRST_MEMBERS, home_id=home_id, now=now, limit=limit
            )
        else:
            rows = await self._connection.fetch(
                _MEMBERS_AFTER,
                home_id=home_id,
                now=now,
                created_at=after.created_at,
                id=after.id,
                limit=limit,
            )
        return [_member(row) for row in rows]

    async def homes_of(self, user_id: uuid.UUID) -> list[uuid.UUID]:
        return [row["space_id"] for row in await self._connection.fetch(_HOMES_OF, user_id=user_id)]

    async def remove_expired(
        self, home_ids: Sequence[uuid.UUID], now: datetime
    ) -> list[MemberRecord]:
        rows = await self._connection.fetch(_REMOVE_EXPIRED, home_ids=list(home_ids), now=now)
        return [_member(row) for row in rows]


# Keyed by the account's id as text, like every transaction that adds or
# ends the account's memberships.
_HOLD_USER = Query(text("SELECT pg_advisory_xact_lock(hashtextextended(:user_id, 0))"))
_IS_DEACTIVATED = Query(
    text("SELECT 1 FROM account_states WHERE user_id = :user_id AND NOT is_active")
)
# Only a state newer than the one recorded replaces it; RETURNING says whether it did.
_RECORD_STATE = Query(
    text(
        "INSERT INTO account_states (user_id, is_active, changed_at)"
        " VALUES (:user_id, :is_active, :at)"
        " ON CONFLICT (user_id) DO UPDATE"
        " SET is_active = EXCLUDED.is_active, changed_at = EXCLUDED.changed_at"
        " WHERE account_states.changed_at < EXCLUDED.changed_at"
        " RETURNING 1"
    )
)


class SqlDeactivations:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    async def hold(self, user_id: uuid.UUID) -> None:
        await self._connection.execute(_HOLD_USER, user_id=str(user_id))

    async def is_deactivated(self, user_id: uuid.UUID) -> bool:
        return await self._connection.fetchval(_IS_DEACTIVATED, user_id=user_id) is not None

    async def add(self, user_id: uuid.UUID, deactivated_at: datetime) -> bool:
        recorded = await self._connection.fetchval(
            _RECORD_STATE, user_id=user_id, is_active=False, at=deactivated_at
        )
        return recorded is not None

    async def remove(self, user_id: uuid.UUID, reactivated_at: datetime) -> None:
        await self._connection.execute(
            _RECORD_STATE, user_id=user_id, is_active=True, at=reactivated_at
        )


def sql_repositories(connection: Connection) -> SpaceRepositories:
    """The repositories bound to one connection (and its transaction, if any)."""
    return SpaceRepositories(
        SqlSpaces(connection), SqlMembers(connection), SqlDeactivations(connection)
    )
