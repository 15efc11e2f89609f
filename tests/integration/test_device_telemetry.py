"""Telemetry ingestion and the reading history on real PostgreSQL: the TelemetryBatch
handler fed directly (as the consumer does, in a transaction), alarms once per
episode under redelivery and concurrent replicas, ListReadings raw and bucketed,
and pruning."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from sqlalchemy import text
from warmhouse.device.v1 import device_pb2
from warmhouse.device_adapter.v1 import device_adapter_pb2

import services.device
from services.device import readings_repository, telemetry
from services.device.reading_queries import ReadingQueries
from services.device.readings import OverheatLimits, TelemetrySettings
from services.device.readings_repository import reading_history
from services.devstack.postgres_process import PostgresProcess
from services.runtime import database as db
from services.runtime.auth import Caller
from services.runtime.database import Database, Query, Record
from services.runtime.messaging import EventConsumer, EventContext
from services.runtime.outbox import MSG_ID_HEADER
from tests.fakes import Delivery, FakeClock
from tests.integration.hosts import fresh_database
from tests.polling import eventually

MIGRATIONS = Path(services.device.__file__).parent / "migrations"
NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
SETTINGS = TelemetrySettings(OverheatLimits(heater=90.0, sensor=60.0, controller=70.0))
SUBJECT = str(device_adapter_pb2.TelemetryBatch.DESCRIPTOR.full_name)
CALLER = Caller(str(uuid.uuid4()), "USER", "s1")

_ADD_DEVICE = Query(
    text(
        "INSERT INTO devices (id, space_id, home_id, type, name, status, secret_hash,"
        " created_at, updated_at, retired_at)"
        " VALUES (:id, :space_id, :space_id, :type, 'thermo', 'ONLINE', '\\x00', :now, :now,"
        " :retired_at)"
    )
)
_READINGS = Query(
    text(
        "SELECT sample_time, temperature, power, heater_on, gas_alarm FROM readings"
        " WHERE device_id = :id ORDER BY sample_time"
    )
)
_HOURS = Query(text("SELECT * FROM reading_hours WHERE device_id = :id ORDER BY hour"))
_LAST_READING = Query(text("SELECT last_reading, last_reading_at FROM devices WHERE id = :id"))
_LOGS = Query(
    text(
        "SELECT kind, event, reading FROM device_logs WHERE device_id = :id"
        ' ORDER BY "timestamp", id'
    )
)
_ALARMS = Query(text("SELECT hazard FROM device_alarms WHERE device_id = :id ORDER BY hazard"))
_OUTBOX = Query(
    text(
        "SELECT subject, payload FROM outbox WHERE subject LIKE 'warmhouse.device.v1.Dangerous%'"
        " ORDER BY created_at"
    )
)
_WAITING_FOR_A_LOCK = Query(
    text(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
)


@pytest.fixture(scope="module")
async def database(postgres: PostgresProcess) -> AsyncIterator[Database]:
    """One database for the module; each test uses devices of its own."""
    engine = await Database.connect(fresh_database(postgres), pool_size=4)
    try:
        await db.apply_migrations(engine, "runtime", db.RUNTIME_MIGRATIONS)
        await db.apply_migrations(engine, "device", MIGRATIONS)
        yield engine
    finally:
        await engine.close()


@dataclass(frozen=True)
class Device:
    id: uuid.UUID
    space_id: uuid.UUID


async def new_device(database: Database, kind: str = "HEATER", *, retired: bool = False) -> Device:
    device = Device(uuid.uuid4(), uuid.uuid4())
    async with database.transaction() as connection:
        await connection.execute(
            _ADD_DEVICE,
            id=device.id,
            space_id=device.space_id,
            type=kind,
            now=NOW,
            retired_at=NOW if retired else None,
        )
    return device


def received(
    device: Device | str, sample_time: datetime, **fields: Any
) -> device_adapter_pb2.TelemetryReceived:
    device_id = device if isinstance(device, str) else str(device.id)
    sample = device_adapter_pb2.TelemetryReceived(
        device_id=device_id,
        connection_id="connection-1",
        telemetry=device_adapter_pb2.Telemetry(**fields),
    )
    sample.telemetry.sample_time.FromDatetime(sample_time)
    sample.occur_time.FromDatetime(sample_time)
    return sample


def batch(*samples: device_adapter_pb2.TelemetryReceived) -> device_adapter_pb2.TelemetryBatch:
    return device_adapter_pb2.TelemetryBatch(samples=samples)


def handler(clock: FakeClock | None = None) -> telemetry.TelemetryIngest:
    return cast(
        telemetry.TelemetryIngest,
        telemetry.subscription(SETTINGS, clock=clock or FakeClock(NOW)).handle,
    )


async def feed(database: Database, event: device_adapter_pb2.TelemetryBatch) -> None:
    """Deliver `event` as the consumer does: in a transaction of its own."""
    context = EventContext(event_id=str(uuid.uuid4()), subject=SUBJECT)
    async with database.transaction() as connection:
        await handler()(connection, event, context)


async def rows(database: Database, query: Query, **params: Any) -> list[Record]:
    async with database.connection() as connection:
        return await connection.fetch(query, **params)


async def dangerous_events(database: Database, device: Device) -> list[tuple[str, Any]]:
    """(event name, event) of the device's alarm events in the outbox, oldest first."""
    found = []
    for row in await rows(database, _OUTBOX):
        kind = row["subject"].rsplit(".", 1)[-1]
        event = getattr(device_pb2, kind).FromString(row["payload"])
        if event.device_id == str(device.id):
            found.append((kind, event))
    return found


def at(minutes: float) -> datetime:
    return NOW + timedelta(minutes=minutes)


# Ingestion


async def test_a_batch_stores_raw_samples_hourly_sums_and_the_latest_reading(
    database: Database,
) -> None:
    device = await new_device(database)
    await feed(
        database,
        batch(
            received(device, at(-70), temperature_celsius=20.0, power_watts=100.0, heater_on=True),
            received(device, at(-50), temperature_celsius=24.0, heater_on=False, gas_alarm=False),
            received(device, at(-10), power_watts=50.0),
        ),
    )
    stored = await rows(database, _READINGS, id=device.id)
    assert [(r["sample_time"], r["temperature"], r["power"]) for r in stored] == [
        (at(-70), 20.0, 100.0),
        (at(-50), 24.0, None),
        (at(-10), None, 50.0),
    ]
    first, second = await rows(database, _HOURS, id=device.id)
    assert first["hour"] == NOW - timedelta(hours=2)
    assert (first["sample_count"], first["temperature_sum"], first["power_sum"]) == (1, 20.0, 100.0)
    assert second["hour"] == NOW - timedelta(hours=1)
    assert (second["sample_count"], second["temperature_count"], second["power_count"]) == (2, 1, 1)
    assert (second["temperature_min"], second["temperature_max"]) == (24.0, 24.0)
    assert (second["heater_count"], second["heater_on_count"], second["gas_alarm_any"]) == (
        1,
        0,
        False,
    )
    [last] = await rows(database, _LAST_READING, id=device.id)
    assert last["last_reading_at"] == at(-10)
    reading = device_pb2.Reading.FromString(last["last_reading"])
    assert reading.power_watts == 50.0
    assert not reading.HasField("temperature_celsius")
    assert reading.sample_time.ToDatetime(tzinfo=UTC) == at(-10)


async def test_a_later_batch_adds_to_the_hours_and_an_older_one_keeps_the_latest_reading(
    database: Database,
) -> None:
    device = await new_device(database, "SENSOR")
    await feed(database, batch(received(device, at(-5), temperature_celsius=21.0)))
    await feed(
        database,
        batch(
            received(device, at(-40), temperature_celsius=18.0, gas_alarm=True),
            received(device, at(-30), temperature_celsius=30.0),
        ),
    )
    [hour] = await rows(database, _HOURS, id=device.id)
    assert (hour["sample_count"], hour["temperature_sum"]) == (3, 69.0)
    assert (hour["temperature_min"], hour["temperature_max"], hour["gas_alarm_any"]) == (
        18.0,
        30.0,
        True,
    )
    [last] = await rows(database, _LAST_READING, id=device.id)
    assert last["last_reading_at"] == at(-5)
    assert device_pb2.Reading.FromString(last["last_reading"]).temperature_celsius == 21.0
    # A gas leak reported late is still a gas leak (and nothing newer ended it).
    assert [r["hazard"] for r in await rows(database, _ALARMS, id=device.id)] == ["GAS_LEAK"]


async def test_samples_of_unknown_retired_or_malformed_devices_are_dropped(
    database: Database,
) -> None:
    live, retired = await new_device(database), await new_device(database, retired=True)
    unknown = Device(uuid.uuid4(), uuid.uuid4())
    await feed(
        database,
        batch(
            received(retired, at(-3), temperature_celsius=120.0),
            received(unknown, at(-3), temperature_celsius=120.0),
            received("not-a-device", at(-3), temperature_celsius=120.0),
            received(live, at(-2), temperature_celsius=21.0),
        ),
    )
    assert len(await rows(database, _READINGS, id=live.id)) == 1
    for dropped in (retired, unknown):
        assert await rows(database, _READINGS, id=dropped.id) == []
        assert await rows(database, _HOURS, id=dropped.id) == []
    [last] = await rows(database, _LAST_READING, id=retired.id)
    assert last["last_reading"] is None
    assert await rows(database, _LOGS, id=retired.id) == []


# Alarms


async def test_an_overheating_episode_is_raised_once_and_cleared_once(database: Database) -> None:
    device = await new_device(database, "HEATER")
    hot = [received(device, at(i), temperature_celsius=95.0 + i) for i in range(5)]
    normal = [received(device, at(5 + i), temperature_celsius=40.0) for i in range(3)]
    await feed(database, batch(*hot[:3]))
    await feed(database, batch(*hot[3:]))
    assert [r["hazard"] for r in await rows(database, _ALARMS, id=device.id)] == ["OVERHEATING"]
    await feed(database, batch(*normal[:2]))
    await feed(database, batch(*normal[2:]))

    logs = await rows(database, _LOGS, id=device.id)
    assert [(r["kind"], r["event"]) for r in logs] == [
        ("ALARM_RAISED", "alarm: OVERHEATING"),
        ("ALARM_CLEARED", "alarm cleared: OVERHEATING"),
    ]
    assert device_pb2.Reading.FromString(logs[0]["reading"]).temperature_celsius == 95.0
    assert device_pb2.Reading.FromString(logs[1]["reading"]).temperature_celsius == 40.0
    events = await dangerous_events(database, device)
    assert [kind for kind, _ in events] == ["DangerousReadingDetected", "DangerousReadingCleared"]
    detected = events[0][1]
    assert (detected.space_id, detected.hazard) == (str(device.space_id), device_pb2.OVERHEATING)
    assert detected.reading.sample_time.ToDatetime(tzinfo=UTC) == at(0)
    assert await rows(database, _ALARMS, id=device.id) == []


async def test_a_gas_leak_within_one_batch_is_raised_and_cleared_in_order(
    database: Database,
) -> None:
    device = await new_device(database, "SENSOR")
    await feed(
        database,
        batch(
            received(device, at(0), gas_alarm=True, temperature_celsius=61.0),
            received(device, at(1), gas_alarm=True),
            received(device, at(2), gas_alarm=False),
        ),
    )
    logs = await rows(database, _LOGS, id=device.id)
    assert [r["event"] for r in logs] == [
        "alarm: GAS_LEAK",
        "alarm: OVERHEATING",
        "alarm cleared: GAS_LEAK",
    ]
    # The episode that ended leaves no row; the one still going does.
    assert [r["hazard"] for r in await rows(database, _ALARMS, id=device.id)] == ["OVERHEATING"]
    assert len(await dangerous_events(database, device)) == 3


async def test_a_redelivered_batch_has_no_second_effect(database: Database) -> None:
    device = await new_device(database)
    event = batch(*(received(device, at(i), temperature_celsius=99.0) for i in range(3)))
    consumer = EventConsumer(
        database,
        cast(JetStreamContext, None),  # process() alone: nothing is pulled
        telemetry.subscription(SETTINGS, clock=FakeClock(NOW)),
    )
    headers = {MSG_ID_HEADER: f"adapter-1-{uuid.uuid4()}"}
    first, again = (
        Delivery(SUBJECT, event.SerializeToString(), headers),
        Delivery(SUBJECT, event.SerializeToString(), headers),
    )
    await consumer.process(cast(Msg, first))
    await consumer.process(cast(Msg, again))
    assert (first.acks, again.acks) == ([True], [True])
    assert len(await rows(database, _READINGS, id=device.id)) == 3
    [hour] = await rows(database, _HOURS, id=device.id)
    assert hour["sample_count"] == 3
    assert [r["kind"] for r in await rows(database, _LOGS, id=device.id)] == ["ALARM_RAISED"]
    assert len(await dangerous_events(database, device)) == 1


async def test_a_batch_ingested_meanwhile_by_another_replica_waits_and_sees_the_first(
    database: Database,
) -> None:
    device = await new_device(database, "CONTROLLER")
    other = await new_device(database, "CONTROLLER")
    context = EventContext(event_id="first", subject=SUBJECT)
    async with database.transaction() as connection:
        await handler()(
            connection,
            batch(
                received(device, at(5), temperature_celsius=80.0),
                received(other, at(5), temperature_celsius=20.0),
            ),
            context,
        )
        # Another replica's batch: the devices in the other order, an older cool
        # sample (history only) and a newer hot one (the episode goes on).
        second = asyncio.create_task(
            feed(
                database,
                batch(
                    received(other, at(1), temperature_celsius=20.0),
                    received(device, at(1), temperature_celsius=40.0),
                    received(device, at(6), temperature_celsius=85.0),
                ),
            )
        )

        async def second_is_waiting() -> bool:
            [row] = await rows(database, _WAITING_FOR_A_LOCK)
            return bool(row["count"])

        await eventually(second_is_waiting, what="the second batch waiting for the devices")
    await second
    logs = await rows(database, _LOGS, id=device.id)
    assert [r["event"] for r in logs] == ["alarm: OVERHEATING"]
    assert len(await dangerous_events(database, device)) == 1
    assert [r["hazard"] for r in await rows(database, _ALARMS, id=device.id)] == ["OVERHEATING"]
    assert len(await rows(database, _READINGS, id=device.id)) == 3
    [last] = await rows(database, _LAST_READING, id=device.id)
    assert last["last_reading_at"] == at(6)


# ListReadings


def history(database: Database) -> ReadingQueries:
    async def anyone(caller: Caller, device_id: uuid.UUID) -> None:
        return None

    return ReadingQueries(reading_history(database), anyone, SETTINGS, FakeClock(NOW))


@pytest.fixture(scope="module")
async def three_days(database: Database) -> tuple[Device, list[float]]:
    """A heater's sample every 10 minutes over the 3 days before NOW: temperatures."""
    device = await new_device(database)
    temperatures = [20.0 + (i % 7) for i in range(3 * 144)]
    samples = [
        received(
            device,
            NOW - timedelta(days=3) + timedelta(minutes=10 * i),
            temperature_celsius=celsius,
            heater_on=i % 2 == 0,
            gas_alarm=i == 5,
        )
        for i, celsius in enumerate(temperatures)
    ]
    for start in range(0, len(samples), 100):
        await feed(database, batch(*samples[start : start + 100]))
    return device, temperatures


async def test_a_few_recent_samples_are_answered_raw(
    database: Database, three_days: tuple[Device, list[float]]
) -> None:
    device, temperatures = three_days
    points, bucket = await history(database).list_readings(
        CALLER, str(device.id), (NOW - timedelta(hours=2)).isoformat(), "", 0
    )
    assert bucket == 0
    assert len(points) == 12
    assert [p.temperature for p in points] == temperatures[-12:]
    assert [p.time for p in points] == sorted(p.time for p in points)
    assert all(p.sample_count == 1 for p in points)


async def test_a_day_in_100_points_is_summarised_from_raw_samples(
    database: Database, three_days: tuple[Device, list[float]]
) -> None:
    device, temperatures = three_days
    points, bucket = await history(database).list_readings(CALLER, str(device.id), "", "", 100)
    assert bucket == 900
    assert len(points) <= 100
    assert sum(p.sample_count for p in points) == 144
    # Quarter hours holding one or two samples 10 minutes apart.
    assert {p.sample_count for p in points} == {1, 2}
    assert all(p.time.minute % 15 == 0 for p in points)
    assert min(p.min_temperature or 99 for p in points) == min(temperatures[-144:])


async def test_a_week_in_10_points_is_summarised_by_day_from_the_hours(
    database: Database, three_days: tuple[Device, list[float]]
) -> None:
    device, temperatures = three_days
    points, bucket = await history(database).list_readings(
        CALLER, str(device.id), (NOW - timedelta(days=7)).isoformat(), NOW.isoformat(), 10
    )
    assert bucket == 86400
    assert [p.time for p in points] == [datetime(2026, 3, day, tzinfo=UTC) for day in (7, 8, 9, 10)]
    assert [p.sample_count for p in points] == [72, 144, 144, 72]
    day = temperatures[72 : 72 + 144]  # 2026-03-08, midnight to midnight
    assert points[1].temperature == pytest.approx(sum(day) / len(day))
    assert (points[1].min_temperature, points[1].max_temperature) == (min(day), max(day))
    assert points[1].heater_on_ratio == pytest.approx(0.5)
    assert [p.gas_alarm for p in points] == [True, False, False, False]


# Retention


async def test_pruning_forgets_raw_samples_and_hours_past_their_retention(
    database: Database,
) -> None:
    device = await new_device(database)
    old = NOW - timedelta(days=500)
    await feed(
        database,
        batch(
            *(received(device, old + timedelta(hours=i), power_watts=1.0) for i in range(3)),
            *(
                received(device, NOW - timedelta(days=10, hours=i), power_watts=2.0)
                for i in range(3)
            ),
            received(device, NOW - timedelta(hours=1), power_watts=3.0),
        ),
    )
    async with database.connection() as connection:
        # Slices of two: the loop goes on until a slice comes back short.
        raw, hours = await readings_repository.prune(
            connection, NOW - timedelta(days=7), NOW - timedelta(days=400), limit=2
        )
    assert raw >= 6
    assert hours >= 3
    assert [r["power"] for r in await rows(database, _READINGS, id=device.id)] == [3.0]
    assert [r["power_sum"] for r in await rows(database, _HOURS, id=device.id)] == [
        2.0,
        2.0,
        2.0,
        3.0,
    ]
    await telemetry.prune_readings(database, raw_days=7, hourly_days=1, now=NOW)
    assert [r["power_sum"] for r in await rows(database, _HOURS, id=device.id)] == [3.0]
