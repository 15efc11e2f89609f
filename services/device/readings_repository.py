"""SQL for telemetry (migrations/0003_readings.sql): ingestion, history, pruning.

Ingestion is set-based: a batch's samples travel as arrays (unnest), so a
batch costs the same few round trips whether it holds one sample or a
thousand.
"""

import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text

from services.device.ports import DeviceLogRecord
from services.device.readings import (
    BUCKET_ORIGIN,
    Buckets,
    ReadingPointRecord,
    Sample,
    TimeRange,
)
from services.runtime.database import Connection, Database, Query, Record

# Locked in id order: two batches sharing devices (two replicas) cannot
# deadlock, and the second sees the alarms and last reading the first wrote.
# NO KEY UPDATE leaves foreign-key checks (device logs written meanwhile) free.
_LOCK_LIVE_DEVICES = Query(
    text(
        "SELECT id, space_id, type, last_reading_at FROM devices"
        " WHERE id = ANY(CAST(:ids AS uuid[])) AND retired_at IS NULL"
        " ORDER BY id FOR NO KEY UPDATE"
    )
)
_SAMPLES = (
    "unnest(CAST(:device_ids AS uuid[]), CAST(:sample_times AS timestamptz[]),"
    " CAST(:temperatures AS float8[]), CAST(:powers AS float8[]),"
    " CAST(:heater_on AS boolean[]), CAST(:gas_alarm AS boolean[]))"
    " AS s (device_id, sample_time, temperature, power, heater_on, gas_alarm)"
)
_ADD_SAMPLES = Query(
    text(
        "INSERT INTO readings (device_id, sample_time, temperature, power, heater_on, gas_alarm)"
        f" SELECT * FROM {_SAMPLES}"
    )
)
# Grouped first: one row per (device, hour), so ON CONFLICT meets each once.
_ADD_TO_HOURS = Query(
    text(
        "INSERT INTO reading_hours AS h (device_id, hour, sample_count,"
        " temperature_count, temperature_sum, temperature_min, temperature_max,"
        " power_count, power_sum, heater_count, heater_on_count, gas_alarm_any)"
        " SELECT device_id, date_bin(interval '1 hour', sample_time, CAST(:origin AS timestamptz)),"
        " count(*), count(temperature), coalesce(sum(temperature), 0),"
        " min(temperature), max(temperature), count(power), coalesce(sum(power), 0),"
        " count(heater_on), count(*) FILTER (WHERE heater_on), bool_or(gas_alarm)"
        f" FROM {_SAMPLES} GROUP BY 1, 2"
        " ON CONFLICT (device_id, hour) DO UPDATE SET"
        " sample_count = h.sample_count + EXCLUDED.sample_count,"
        " temperature_count = h.temperature_count + EXCLUDED.temperature_count,"
        " temperature_sum = h.temperature_sum + EXCLUDED.temperature_sum,"
        # least/greatest skip NULLs: an hour's first temperature sets both.
        " temperature_min = least(h.temperature_min, EXCLUDED.temperature_min),"
        " temperature_max = greatest(h.temperature_max, EXCLUDED.temperature_max),"
        " power_count = h.power_count + EXCLUDED.power_count,"
        " power_sum = h.power_sum + EXCLUDED.power_sum,"
        " heater_count = h.heater_count + EXCLUDED.heater_count,"
        " heater_on_count = h.heater_on_count + EXCLUDED.heater_on_count,"
        " gas_alarm_any = greatest(h.gas_alarm_any, EXCLUDED.gas_alarm_any)"
    )
)
_SET_LAST_READINGS = Query(
    text(
        "UPDATE devices d SET last_reading = v.reading, last_reading_at = v.sample_time"
        " FROM unnest(CAST(:ids AS uuid[]), CAST(:readings AS bytea[]),"
        " CAST(:sample_times AS timestamptz[])) AS v (id, reading, sample_time)"
        " WHERE d.id = v.id AND (d.last_reading_at IS NULL OR d.last_reading_at < v.sample_time)"
    )
)
_ACTIVE_ALARMS = Query(
    text(
        "SELECT device_id, hazard, raised_at FROM device_alarms"
        " WHERE device_id = ANY(CAST(:ids AS uuid[]))"
    )
)
_RAISE_ALARMS = Query(
    text(
        "INSERT INTO device_alarms (device_id, hazard, raised_at)"
        " SELECT * FROM unnest(CAST(:device_ids AS uuid[]), CAST(:hazards AS text[]),"
        " CAST(:raised_at AS timestamptz[]))"
    )
)
_CLEAR_ALARMS = Query(
    text(
        "DELETE FROM device_alarms a"
        " USING unnest(CAST(:device_ids AS uuid[]), CAST(:hazards AS text[]))"
        " AS c (device_id, hazard)"
        " WHERE a.device_id = c.device_id AND a.hazard = c.hazard"
    )
)
_ADD_LOGS = Query(
    text(
        'INSERT INTO device_logs (id, device_id, kind, event, reading, "timestamp")'
        " SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:device_ids AS uuid[]),"
        " CAST(:kinds AS text[]), CAST(:events AS text[]), CAST(:readings AS bytea[]),"
        " CAST(:timestamps AS timestamptz[]))"
    )
)


@dataclass(frozen=True)
class LiveDevice:
    id: uuid.UUID
    space_id: uuid.UUID
    type: str
    # The newest sample's time so far; None before the first.
    last_reading_at: datetime | None


@dataclass(frozen=True)
class LastReading:
    device_id: uuid.UUID
    sample_time: datetime
    # A serialized warmhouse.device.v1.Reading.
    reading: bytes


@dataclass(frozen=True)
class AlarmRow:
    device_id: uuid.UUID
    hazard: str
    raised_at: datetime


def _sample_arrays(samples: Sequence[tuple[uuid.UUID, Sample]]) -> dict[str, list[object]]:
    return {
        "device_ids": [device for device, _ in samples],
        "sample_times": [sample.sample_time for _, sample in samples],
        "temperatures": [sample.temperature for _, sample in samples],
        "powers": [sample.power for _, sample in samples],
        "heater_on": [sample.heater_on for _, sample in samples],
        "gas_alarm": [sample.gas_alarm for _, sample in samples],
    }


class SqlTelemetry:
    """What ingesting one batch reads and writes, inside the consumer's transaction."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    async def lock_live_devices(self, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, LiveDevice]:
        """The live devices among `ids`, row-locked until the transaction ends."""
        rows = await self._connection.fetch(_LOCK_LIVE_DEVICES, ids=list(ids))
        return {row["id"]: LiveDevice(**row) for row in rows}

    async def add_samples(self, samples: Sequence[tuple[uuid.UUID, Sample]]) -> None:
        """Append the raw samples and add them to their hours' summaries."""
        arrays = _sample_arrays(samples)
        await self._connection.execute(_ADD_SAMPLES, **arrays)
        await self._connection.execute(_ADD_TO_HOURS, origin=BUCKET_ORIGIN, **arrays)

    async def set_last_readings(self, latest: Sequence[LastReading]) -> None:
        """Record each device's newest sample, unless a newer one is recorded."""
        if latest:
            await self._connection.execute(
                _SET_LAST_READINGS,
                ids=[last.device_id for last in latest],
                readings=[last.reading for last in latest],
                sample_times=[last.sample_time for last in latest],
            )

    async def active_alarms(self, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, dict[str, datetime]]:
        """Per device, the hazards whose episode goes on, and when each was raised."""
        rows = await self._connection.fetch(_ACTIVE_ALARMS, ids=list(ids))
        active: dict[uuid.UUID, dict[str, datetime]] = {}
        for row in rows:
            active.setdefault(row["device_id"], {})[row["hazard"]] = row["raised_at"]
        return active

    async def change_alarms(
        self, raised: Sequence[AlarmRow], cleared: Sequence[tuple[uuid.UUID, str]]
    ) -> None:
        if cleared:
            await self._connection.execute(
                _CLEAR_ALARMS,
                device_ids=[device for device, _ in cleared],
                hazards=[hazard for _, hazard in cleared],
            )
        if raised:
            await self._connection.execute(
                _RAISE_ALARMS,
                device_ids=[row.device_id for row in raised],
                hazards=[row.hazard for row in raised],
                raised_at=[row.raised_at for row in raised],
            )

    async def add_logs(self, entries: Sequence[DeviceLogRecord]) -> None:
        if entries:
            await self._connection.execute(
                _ADD_LOGS,
                ids=[entry.id for entry in entries],
                device_ids=[entry.device_id for entry in entries],
                kinds=[entry.kind for entry in entries],
                events=[entry.event for entry in entries],
                readings=[entry.reading for entry in entries],
                timestamps=[entry.timestamp for entry in entries],
            )


# History

_RAW = Query(
    text(
        "SELECT sample_time, temperature, power, heater_on, gas_alarm FROM readings"
        " WHERE device_id = :device_id AND sample_time >= :start AND sample_time < :end"
        " ORDER BY sample_time LIMIT :limit"
    )
)
_BUCKET = "date_bin(make_interval(secs => :seconds), {column}, CAST(:origin AS timestamptz))"
_RAW_BUCKETS = Query(
    text(
        f"SELECT {_BUCKET.format(column='sample_time')} AS time, count(*) AS sample_count,"
        " avg(temperature) AS temperature,"
        " min(temperature) AS min_temperature, max(temperature) AS max_temperature,"
        " avg(power) AS power,"
        " CAST(avg(CAST(heater_on AS integer)) AS float8) AS heater_on_ratio,"
        " bool_or(gas_alarm) AS gas_alarm"
        " FROM readings"
        " WHERE device_id = :device_id AND sample_time >= :start AND sample_time < :end"
        " GROUP BY 1 ORDER BY 1 LIMIT :limit"
    )
)
# The hour holding `start` counts whole: a summary cannot be split.
_HOUR_BUCKETS = Query(
    text(
        f"SELECT {_BUCKET.format(column='hour')} AS time,"
        " CAST(sum(sample_count) AS bigint) AS sample_count,"
        " sum(temperature_sum) / NULLIF(CAST(sum(temperature_count) AS float8), 0)"
        " AS temperature,"
        " min(temperature_min) AS min_temperature, max(temperature_max) AS max_temperature,"
        " sum(power_sum) / NULLIF(CAST(sum(power_count) AS float8), 0) AS power,"
        " CAST(sum(heater_on_count) AS float8) / NULLIF(CAST(sum(heater_count) AS float8), 0)"
        " AS heater_on_ratio,"
        " bool_or(gas_alarm_any) AS gas_alarm"
        " FROM reading_hours"
        " WHERE device_id = :device_id AND hour < :end"
        " AND hour >= date_bin(interval '1 hour', CAST(:start AS timestamptz),"
        " CAST(:origin AS timestamptz))"
        " GROUP BY 1 ORDER BY 1 LIMIT :limit"
    )
)


def _point(row: Record) -> ReadingPointRecord:
    return ReadingPointRecord(
        time=row["time"],
        sample_count=row["sample_count"],
        temperature=row["temperature"],
        min_temperature=row["min_temperature"],
        max_temperature=row["max_temperature"],
        power=row["power"],
        heater_on_ratio=row["heater_on_ratio"],
        gas_alarm=row["gas_alarm"],
    )


class SqlReadingHistory:
    """A device's readings over a range (reading_queries.ReadingHistory)."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    async def raw(self, device_id: uuid.UUID, span: TimeRange, limit: int) -> list[Sample]:
        rows = await self._connection.fetch(
            _RAW, device_id=device_id, start=span.start, end=span.end, limit=limit
        )
        return [Sample(**row) for row in rows]

    async def buckets(
        self, device_id: uuid.UUID, span: TimeRange, buckets: Buckets, limit: int
    ) -> list[ReadingPointRecord]:
        rows = await self._connection.fetch(
            _HOUR_BUCKETS if buckets.from_hours else _RAW_BUCKETS,
            device_id=device_id,
            start=span.start,
            end=span.end,
            seconds=float(buckets.seconds),
            origin=buckets.origin,
            limit=limit,
        )
        return [_point(row) for row in rows]


def reading_history(
    database: Database,
) -> Callable[[], AbstractAsyncContextManager[SqlReadingHistory]]:
    """What ReadingQueries reads through: a pooled connection per request."""

    @asynccontextmanager
    async def read() -> AsyncIterator[SqlReadingHistory]:
        async with database.connection() as connection:
            yield SqlReadingHistory(connection)

    return read


# Retention

# In slices, each its own statement: no transaction holds millions of rows.
_PRUNE_RAW = Query(
    text(
        "DELETE FROM readings WHERE ctid = ANY(ARRAY("
        "SELECT ctid FROM readings WHERE sample_time < :cutoff LIMIT :limit))"
    )
)
_PRUNE_HOURS = Query(
    text(
        "DELETE FROM reading_hours WHERE (device_id, hour) IN ("
        "SELECT device_id, hour FROM reading_hours WHERE hour < :cutoff LIMIT :limit)"
    )
)
PRUNE_SLICE = 10_000


async def _prune(connection: Connection, query: Query, cutoff: datetime, limit: int) -> int:
    total = 0
    while True:
        status = await connection.execute(query, cutoff=cutoff, limit=limit)
        deleted = int(status.rsplit(" ", 1)[-1])
        total += deleted
        if deleted < limit:
            return total


async def prune(
    connection: Connection,
    raw_cutoff: datetime,
    hourly_cutoff: datetime,
    limit: int = PRUNE_SLICE,
) -> tuple[int, int]:
    """Delete raw samples before `raw_cutoff` and hourly summaries before
    `hourly_cutoff`, on an autocommit connection; how many of each went."""
    raw = await _prune(connection, _PRUNE_RAW, raw_cutoff, limit)
    hours = await _prune(connection, _PRUNE_HOURS, hourly_cutoff, limit)
    return raw, hours
