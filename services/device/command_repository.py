"""The Device service's commands on PostgreSQL (the `Commands` protocol of ports.py)."""

import uuid
from datetime import datetime

from sqlalchemy import bindparam, select, text, update

from services.device.ports import CommandRecord
from services.device.tables import commands
from services.runtime.database import Connection, Query, Record
from services.runtime.pagination import Cursor

_ADD = Query(commands.insert())
_ONE = (commands.c.device_id == bindparam("device_id")) & (commands.c.id == bindparam("id"))
_GET = Query(select(commands).where(_ONE))
_LOCK = Query(select(commands).where(_ONE).with_for_update())
_SAVE = Query(
    update(commands)
    .where(commands.c.id == bindparam("command_id"))
    .values(
        status=bindparam("status"),
        message=bindparam("message"),
        sent_connection_id=bindparam("sent_connection_id"),
        updated_at=bindparam("updated_at"),
    )
)
_OPEN = "status IN ('QUEUED', 'SENT')"
_HOLD_DEVICE = Query(text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"))
_UNDELIVERED = Query(
    text(
        f"SELECT * FROM commands WHERE device_id = :device_id AND {_OPEN}"
        " AND expire_at > :now"
        " AND (sent_connection_id IS DISTINCT FROM :connection_id"
        " OR (status = 'SENT' AND updated_at < :resend_before))"
        " ORDER BY created_at, id"
    )
)
_COUNT_OPEN = Query(text(f"SELECT count(*) FROM commands WHERE device_id = :device_id AND {_OPEN}"))
_LAPSED = Query(
    text(
        "SELECT c.*, d.space_id AS device_space_id FROM commands c"
        " JOIN devices d ON d.id = c.device_id"
        f" WHERE c.{_OPEN} AND c.expire_at <= :now"
        " ORDER BY c.expire_at LIMIT :limit FOR UPDATE OF c SKIP LOCKED"
    )
)
# Oldest waiting command first: with more devices waiting than one sweep
# takes, none is passed over sweep after sweep.
_AWAITING_DELIVERY = Query(
    text(
        "SELECT c.device_id FROM commands c JOIN devices d ON d.id = c.device_id"
        f" WHERE c.{_OPEN} AND c.expire_at > :now"
        " AND d.lease_until IS NOT NULL AND d.retired_at IS NULL"
        " AND (c.sent_connection_id IS DISTINCT FROM d.connection_id"
        " OR (c.status = 'SENT' AND c.updated_at < :resend_before))"
        " GROUP BY c.device_id ORDER BY min(c.created_at) LIMIT :limit"
    )
)


def _listing(*, by_status: bool, after: bool) -> Query:
    status = " AND status = :status" if by_status else ""
    keyset = " AND (created_at, id) < (:created_at, :id)" if after else ""
    return Query(
        text(
            f"SELECT * FROM commands WHERE device_id = :device_id{status}{keyset}"
            " ORDER BY created_at DESC, id DESC LIMIT :limit"
        )
    )


_LISTINGS = {
    (by_status, after): _listing(by_status=by_status, after=after)
    for by_status in (False, True)
    for after in (False, True)
}
_FIELDS = tuple(column.name for column in commands.columns)


def _command(row: Record) -> CommandRecord:
    return CommandRecord(**{name: row[name] for name in _FIELDS})


class SqlCommands:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    async def add(self, command: CommandRecord) -> None:
        await self._connection.execute(_ADD, **command.__dict__)

    async def get(
        self, device_id: uuid.UUID, command_id: uuid.UUID, *, lock: bool = False
    ) -> CommandRecord | None:
        row = await self._connection.fetchrow(
            _LOCK if lock else _GET, device_id=device_id, id=command_id
        )
        return _command(row) if row else None

    async def listing(
        self, device_id: uuid.UUID, status: str | None, after: Cursor | None, limit: int
    ) -> list[CommandRecord]:
        params: dict[str, object] = {"device_id": device_id, "limit": limit}
        if status is not None:
            params["status"] = status
        if after is not None:
            params["created_at"], params["id"] = after.created_at, after.id
        query = _LISTINGS[(status is not None, after is not None)]
        return [_command(row) for row in await self._connection.fetch(query, **params)]

    async def undelivered(
        self, device_id: uuid.UUID, connection_id: str, now: datetime, resend_before: datetime
    ) -> list[CommandRecord]:
        rows = await self._connection.fetch(
            _UNDELIVERED,
            device_id=device_id,
            connection_id=connection_id,
            now=now,
            resend_before=resend_before,
        )
        return [_command(row) for row in rows]

    async def save(self, command: CommandRecord) -> None:
        await self._connection.execute(
            _SAVE,
            command_id=command.id,
            status=command.status,
            message=command.message,
            sent_connection_id=command.sent_connection_id,
            updated_at=command.updated_at,
        )

    async def hold_device(self, device_id: uuid.UUID) -> None:
        await self._connection.execute(_HOLD_DEVICE, key=f"commands:{device_id}")

    async def count_open(self, device_id: uuid.UUID) -> int:
        return int(await self._connection.fetchval(_COUNT_OPEN, device_id=device_id))

    async def lapsed(self, now: datetime, limit: int) -> list[tuple[CommandRecord, uuid.UUID]]:
        rows = await self._connection.fetch(_LAPSED, now=now, limit=limit)
        return [(_command(row), row["device_space_id"]) for row in rows]

    async def devices_awaiting_delivery(
        self, now: datetime, resend_before: datetime, limit: int
    ) -> list[uuid.UUID]:
        rows = await self._connection.fetch(
            _AWAITING_DELIVERY, now=now, resend_before=resend_before, limit=limit
        )
        return [row["device_id"] for row in rows]
