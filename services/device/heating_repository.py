"""Heating state on PostgreSQL (the `Heating` protocol of ports.py)."""

import uuid
from datetime import datetime

from sqlalchemy import bindparam, select, text
from sqlalchemy.dialects.postgresql import insert
from warmhouse.heating.v1 import heating_pb2

from services.device.ports import HeatingRecord
from services.device.tables import heating
from services.runtime.database import Connection, Query, Record

_GET = Query(select(heating).where(heating.c.device_id == bindparam("device_id")))
_UPSERT = insert(heating)
_SAVE = Query(
    _UPSERT.on_conflict_do_update(
        index_elements=[heating.c.device_id],
        set_={
            column.name: _UPSERT.excluded[column.name]
            for column in heating.columns
            if column.name != "device_id"
        },
    )
)
# Connected heating devices whose stream lacks the current plan: never written
# to this stream (it connected since), an older version written, or written a
# while ago and still not applied (the device may have missed it).
_AWAITING_PLAN = Query(
    text(
        "SELECT d.id AS device_id FROM devices d LEFT JOIN heating h ON h.device_id = d.id"
        " WHERE d.lease_until IS NOT NULL AND d.retired_at IS NULL"
        " AND d.type IN ('HEATER', 'CONTROLLER')"
        " AND (h.device_id IS NULL"
        " OR h.pushed_connection_id IS DISTINCT FROM d.connection_id"
        " OR h.pushed_version < h.desired_version"
        " OR (h.applied_version < h.desired_version AND h.pushed_at < :resend_before))"
        # Longest waiting first: devices that keep failing do not starve the rest.
        " ORDER BY h.pushed_at NULLS FIRST LIMIT :limit"
    )
)


def _record(row: Record) -> HeatingRecord:
    reported = row["reported"]
    return HeatingRecord(
        device_id=row["device_id"],
        desired=heating_pb2.HeatingPlan.FromString(row["desired"]),
        desired_at=row["desired_at"],
        desired_by=row["desired_by"],
        reported=heating_pb2.HeatingStatus.FromString(reported) if reported is not None else None,
        reported_version=row["reported_version"],
        reported_stream_at=row["reported_stream_at"],
        reported_at=row["reported_at"],
        pushed_version=row["pushed_version"],
        pushed_connection_id=row["pushed_connection_id"],
        pushed_at=row["pushed_at"],
        changes_window_start=row["changes_window_start"],
        changes_in_window=row["changes_in_window"],
        window_logged_at=row["window_logged_at"],
        window_open_logged=row["window_open_logged"],
    )


class SqlHeating:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    async def get(self, device_id: uuid.UUID) -> HeatingRecord | None:
        row = await self._connection.fetchrow(_GET, device_id=device_id)
        return _record(row) if row is not None else None

    async def save(self, record: HeatingRecord) -> None:
        await self._connection.execute(
            _SAVE,
            device_id=record.device_id,
            desired=record.desired.SerializeToString(),
            desired_version=record.desired.version,
            desired_at=record.desired_at,
            desired_by=record.desired_by,
            reported=record.reported.SerializeToString() if record.reported is not None else None,
            reported_version=record.reported_version,
            reported_stream_at=record.reported_stream_at,
            reported_at=record.reported_at,
            applied_version=record.applied_version,
            pushed_version=record.pushed_version,
            pushed_connection_id=record.pushed_connection_id,
            pushed_at=record.pushed_at,
            changes_window_start=record.changes_window_start,
            changes_in_window=record.changes_in_window,
            window_logged_at=record.window_logged_at,
            window_open_logged=record.window_open_logged,
        )

    async def devices_awaiting_plan(self, resend_before: datetime, limit: int) -> list[uuid.UUID]:
        rows = await self._connection.fetch(
            _AWAITING_PLAN, resend_before=resend_before, limit=limit
        )
        return [row["device_id"] for row in rows]
