"""The Device service's repositories on PostgreSQL.

Every query of the service lives here, built with SQLAlchemy Core and
compiled once (`Query`); the classes implement the protocols of `ports.py`.
"""

import uuid
from datetime import datetime

from sqlalchemy import bindparam, select, text, update

from services.device.command_repository import SqlCommands
from services.device.heating_repository import SqlHeating
from services.device.ports import (
    DeviceLogRecord,
    DeviceRecord,
    DeviceRepositories,
    KnownSpace,
    Presence,
    ProjectedAccess,
)
from services.device.tables import device_logs, devices
from services.runtime.database import Connection, Query, Record
from services.runtime.pagination import Cursor
from services.runtime.space_roles import Membership

_ADD_DEVICE = Query(devices.insert())
_LIVE = (devices.c.id == bindparam("id")) & devices.c.retired_at.is_(None)
_LIVE_DEVICE = Query(select(devices).where(_LIVE))
_LOCK_LIVE_DEVICE = Query(select(devices).where(_LIVE).with_for_update())
# The hot path of every device RPC: the device, whether its space is known,
# and the caller's membership of its home, in one round trip.
_DEVICE_WITH_ACCESS = Query(
    text(
        "SELECT d.*, k.space_id IS NOT NULL AS space_known, k.deleted AS space_deleted,"
        " m.role AS member_role, m.expire_at AS member_expire_at"
        " FROM devices d"
        " LEFT JOIN known_spaces k ON k.space_id = d.space_id"
        " LEFT JOIN memberships m ON m.home_id = d.home_id AND m.user_id = :user_id"
        " WHERE d.id = :id AND d.retired_at IS NULL"
    )
)


def _device_list(column: str, *, after: bool) -> Query:
    keyset = " AND (created_at, id) > (:created_at, :id)" if after else ""
    return Query(
        text(
            f"SELECT * FROM devices WHERE {column} = :space_id AND retired_at IS NULL{keyset}"
            " ORDER BY created_at, id LIMIT :limit"
        )
    )


# (first page, a page after a cursor): a home's with its rooms', or one space's.
_BY_HOME = (_device_list("home_id", after=False), _device_list("home_id", after=True))
_BY_SPACE = (_device_list("space_id", after=False), _device_list("space_id", after=True))
_SAVE_DEVICE = Query(
    update(devices)
    .where(devices.c.id == bindparam("device_id"))
    .values(
        space_id=bindparam("space_id"),
        name=bindparam("name"),
        status=bindparam("status"),
        last_seen=bindparam("last_seen"),
        secret_hash=bindparam("secret_hash"),
        updated_at=bindparam("updated_at"),
        retired_at=bindparam("retired_at"),
        connection_id=bindparam("connection_id"),
        connected_at=bindparam("connected_at"),
        lease_until=bindparam("lease_until"),
        secret_rotated_at=bindparam("secret_rotated_at"),
    )
)
_COUNT_IN_SPACE = Query(
    text(
        "SELECT count(*) FROM devices"
        " WHERE (space_id = :space_id OR home_id = :space_id) AND retired_at IS NULL"
    )
)
_HOLD_HOME = Query(text("SELECT pg_advisory_xact_lock(hashtextextended(:home_id, 0))"))
_RETIRE_IN_SPACE = Query(
    text(
        "UPDATE devices SET retired_at = :now, updated_at = :now"
        " WHERE space_id = :space_id AND retired_at IS NULL RETURNING *"
    )
)


# Devices still on the reported stream, locked in id order (no deadlock with another batch).
_LOCK_REPORTED = Query(
    text(
        "SELECT d.* FROM devices d"
        " JOIN unnest(CAST(:ids AS uuid[]), CAST(:connections AS text[])) AS p(id, connection_id)"
        " ON d.id = p.id AND d.connection_id = p.connection_id AND d.retired_at IS NULL"
        " ORDER BY d.id FOR UPDATE OF d"
    )
)
_RENEW_LEASES = Query(
    text(
        "UPDATE devices SET lease_until = :lease_until,"
        " last_seen = GREATEST(devices.last_seen, p.seen),"
        # Still on the stream it connected with: connected (ERROR stays ERROR).
        " status = CASE WHEN devices.status = 'OFFLINE' THEN 'ONLINE' ELSE devices.status END"
        " FROM unnest(CAST(:ids AS uuid[]), CAST(:connections AS text[]),"
        " CAST(:seen AS timestamptz[])) AS p(id, connection_id, seen)"
        " WHERE devices.id = p.id AND devices.connection_id = p.connection_id"
        " AND devices.retired_at IS NULL"
    )
)
_RETIRED_AMONG = Query(
    text("SELECT id FROM devices WHERE id = ANY(:ids) AND retired_at IS NOT NULL ORDER BY id")
)
_LAPSED_LEASES = Query(
    text(
        "SELECT * FROM devices WHERE lease_until < :now AND retired_at IS NULL"
        " ORDER BY lease_until LIMIT :limit FOR UPDATE SKIP LOCKED"
    )
)

_DEVICE_FIELDS = tuple(column.name for column in devices.columns)


def _device(row: Record) -> DeviceRecord:
    return DeviceRecord(**{name: row[name] for name in _DEVICE_FIELDS})


def _membership(role: str | None, expire_at: datetime | None) -> Membership | None:
    return Membership(role, expire_at) if role is not None else None


class SqlDevices:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    async def add(self, device: DeviceRecord) -> None:
        await self._connection.execute(_ADD_DEVICE, **device.__dict__)

    async def get(self, device_id: uuid.UUID, *, lock: bool = False) -> DeviceRecord | None:
        query = _LOCK_LIVE_DEVICE if lock else _LIVE_DEVICE
        row = await self._connection.fetchrow(query, id=device_id)
        return _device(row) if row else None

    async def get_with_access(
        self, device_id: uuid.UUID, user_id: uuid.UUID
    ) -> tuple[DeviceRecord, ProjectedAccess] | None:
        row = await self._connection.fetchrow(_DEVICE_WITH_ACCESS, id=device_id, user_id=user_id)
        if row is None:
            return None
        device = _device(row)
        access = ProjectedAccess(
            home_id=device.home_id if row["space_known"] else None,
            deleted=bool(row["space_deleted"]),
            membership=_membership(row["member_role"], row["member_expire_at"]),
        )
        return device, access

    async def _list(
        self, queries: tuple[Query, Query], space_id: uuid.UUID, after: Cursor | None, limit: int
    ) -> list[DeviceRecord]:
        first, after_query = queries
        if after is None:
            rows = await self._connection.fetch(first, space_id=space_id, limit=limit)
        else:
            rows = await self._connection.fetch(
                after_query,
                space_id=space_id,
                created_at=after.created_at,
                id=after.id,
                limit=limit,
            )
        return [_device(row) for row in rows]

    async def list_in_home(
        self, home_id: uuid.UUID, after: Cursor | None, limit: int
    ) -> list[DeviceRecord]:
        return await self._list(_BY_HOME, home_id, after, limit)

    async def list_in_space(
        self, space_id: uuid.UUID, after: Cursor | None, limit: int
    ) -> list[DeviceRecord]:
        return await self._list(_BY_SPACE, space_id, after, limit)

    async def save(self, device: DeviceRecord) -> None:
        await self._connection.execute(
            _SAVE_DEVICE,
            device_id=device.id,
            space_id=device.space_id,
            name=device.name,
            status=device.status,
            last_seen=device.last_seen,
            secret_hash=device.secret_hash,
            updated_at=device.updated_at,
            retired_at=device.retired_at,
            connection_id=device.connection_id,
            connected_at=device.connected_at,
            lease_until=device.lease_until,
            secret_rotated_at=device.secret_rotated_at,
        )

    async def hold_home(self, home_id: uuid.UUID) -> None:
        await self._connection.execute(_HOLD_HOME, home_id=str(home_id))

    async def count_in_space(self, space_id: uuid.UUID) -> int:
        return int(await self._connection.fetchval(_COUNT_IN_SPACE, space_id=space_id))

    async def retire_in_space(self, space_id: uuid.UUID, now: datetime) -> list[DeviceRecord]:
        rows = await self._connection.fetch(_RETIRE_IN_SPACE, space_id=space_id, now=now)
        return [_device(row) for row in rows]

    async def renew_leases(
        self, reports: list[Presence], lease_until: datetime
    ) -> list[DeviceRecord]:
        # Sorted: two transactions locking overlapping devices take them in one order.
        ordered = sorted(reports, key=lambda report: report.device_id)
        columns = {
            "ids": [report.device_id for report in ordered],
            "connections": [report.connection_id for report in ordered],
        }
        rows = await self._connection.fetch(_LOCK_REPORTED, **columns)
        await self._connection.execute(
            _RENEW_LEASES,
            **columns,
            seen=[report.last_seen for report in ordered],
            lease_until=lease_until,
        )
        return [_device(row) for row in rows]

    async def retired_among(self, device_ids: list[uuid.UUID]) -> list[uuid.UUID]:
        rows = await self._connection.fetch(_RETIRED_AMONG, ids=device_ids)
        return [row["id"] for row in rows]

    async def lapsed_leases(self, now: datetime, limit: int) -> list[DeviceRecord]:
        rows = await self._connection.fetch(_LAPSED_LEASES, now=now, limit=limit)
        return [_device(row) for row in rows]


_ADD_LOG = Query(device_logs.insert())


def _log_list(*, by_kind: bool, after: bool) -> Query:
    kind = " AND kind = :kind" if by_kind else ""
    keyset = ' AND ("timestamp", id) < (:timestamp, :id)' if after else ""
    return Query(
        text(
            f"SELECT * FROM device_logs WHERE device_id = :device_id{kind}{keyset}"
            ' ORDER BY "timestamp" DESC, id DESC LIMIT :limit'
        )
    )


# Newest first; with a kind, on the index that leads with it.
_LOGS: dict[tuple[bool, bool], Query] = {
    (by_kind, after): _log_list(by_kind=by_kind, after=after)
    for by_kind in (False, True)
    for after in (False, True)
}


_LOG_FIELDS = tuple(column.name for column in device_logs.columns)


def _log(row: Record) -> DeviceLogRecord:
    return DeviceLogRecord(**{name: row[name] for name in _LOG_FIELDS})


class SqlDeviceLogs:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    async def add(self, entry: DeviceLogRecord) -> None:
        await self._connection.execute(_ADD_LOG, **entry.__dict__)

    async def list(
        self, device_id: uuid.UUID, kind: str | None, after: Cursor | None, limit: int
    ) -> list[DeviceLogRecord]:
        params: dict[str, object] = {"device_id": device_id, "limit": limit}
        if kind is not None:
            params["kind"] = kind
        if after is not None:
            params["timestamp"], params["id"] = after.created_at, after.id
        rows = await self._connection.fetch(_LOGS[(kind is not None, after is not None)], **params)
        return [_log(row) for row in rows]


_SPACE_ACCESS = Query(
    text(
        "SELECT k.home_id, k.deleted, m.role, m.expire_at FROM known_spaces k"
        " LEFT JOIN memberships m ON m.home_id = k.home_id AND m.user_id = :user_id"
        " WHERE k.space_id = :space_id"
    )
)
_LOCK_SPACE = Query(
    text("SELECT space_id, home_id, deleted FROM known_spaces WHERE space_id = :space_id FOR SHARE")
)
_REMEMBER_SPACE = Query(
    text(
        "INSERT INTO known_spaces (space_id, home_id) VALUES (:space_id, :home_id)"
        " ON CONFLICT (space_id) DO NOTHING"
    )
)
_MARK_DELETED = Query(
    text(
        "INSERT INTO known_spaces (space_id, home_id, deleted) VALUES (:space_id, :home_id, true)"
        " ON CONFLICT (space_id) DO UPDATE SET deleted = true"
    )
)
# Versions follow the order of a home's membership changes: a late or
# repeated event carries an older (or the same) one and changes nothing.
_APPLY_MEMBERSHIP = Query(
    text(
        "INSERT INTO memberships (home_id, user_id, role, expire_at, version)"
        " VALUES (:home_id, :user_id, :role, :expire_at, :version)"
        " ON CONFLICT (home_id, user_id) DO UPDATE"
        " SET role = EXCLUDED.role, expire_at = EXCLUDED.expire_at, version = EXCLUDED.version"
        " WHERE EXCLUDED.version > memberships.version"
        " RETURNING 1"
    )
)


class SqlSpaceProjection:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    async def access(self, space_id: uuid.UUID, user_id: uuid.UUID) -> ProjectedAccess:
        row = await self._connection.fetchrow(_SPACE_ACCESS, space_id=space_id, user_id=user_id)
        if row is None:
            return ProjectedAccess(home_id=None)
        return ProjectedAccess(
            home_id=row["home_id"],
            deleted=row["deleted"],
            membership=_membership(row["role"], row["expire_at"]),
        )

    async def lock_space(self, space_id: uuid.UUID) -> KnownSpace | None:
        row = await self._connection.fetchrow(_LOCK_SPACE, space_id=space_id)
        return KnownSpace(**row) if row else None

    async def remember_space(self, space_id: uuid.UUID, home_id: uuid.UUID) -> None:
        await self._connection.execute(_REMEMBER_SPACE, space_id=space_id, home_id=home_id)

    async def mark_deleted(self, space_id: uuid.UUID, home_id: uuid.UUID) -> None:
        await self._connection.execute(_MARK_DELETED, space_id=space_id, home_id=home_id)

    async def apply_membership(
        self,
        home_id: uuid.UUID,
        user_id: uuid.UUID,
        role: str | None,
        expire_at: datetime | None,
        version: int,
    ) -> bool:
        applied = await self._connection.fetchval(
            _APPLY_MEMBERSHIP,
            home_id=home_id,
            user_id=user_id,
            role=role,
            expire_at=expire_at,
            version=version,
        )
        return applied is not None


def sql_repositories(connection: Connection) -> DeviceRepositories:
    return DeviceRepositories(
        SqlDevices(connection),
        SqlDeviceLogs(connection),
        SqlSpaceProjection(connection),
        SqlCommands(connection),
        SqlHeating(connection),
    )
