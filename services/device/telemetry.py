"""Ingesting the adapter's TelemetryBatch events: history, latest reading, alarms.

One batch is one transaction of the runtime's EventConsumer, which also
records the event id there: a redelivered batch has no second effect. Per
batch, whatever its size, a bounded number of statements: lock the batch's
live devices (samples of unknown or retired ones are dropped), append the raw
samples, add them to the hourly summaries, record each device's newest
reading, read the active alarms, and write the episodes that start or end.
Only an alarm change costs a statement of its own (its outbox event): two per
episode, and hysteresis keeps episodes rare.

Alarms follow each device's newest samples only (those after its recorded
latest reading), in sample order; the device rows stay locked until commit,
so two replicas ingesting batches of one device take turns and the second
sees the first's alarms: an episode is raised once and cleared once.
"""

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from warmhouse.device.v1 import device_pb2
from warmhouse.device_adapter.v1 import device_adapter_pb2

from services.device import domain, readings_repository
from services.device.ports import DeviceLogRecord
from services.device.readings import (
    AlarmChange,
    OverheatLimits,
    Sample,
    TelemetrySettings,
    alarm_changes,
    newer_samples,
)
from services.device.readings_repository import AlarmRow, LastReading, LiveDevice, SqlTelemetry
from services.runtime.clock import Clock, utc_now
from services.runtime.database import Connection, Database
from services.runtime.device_links import ADAPTER_EVENT_RETENTION
from services.runtime.messaging import EventContext, Subscription
from services.runtime.outbox import add_event
from services.runtime.periodic import PeriodicJob
from services.runtime.timestamps import timestamp

log = logging.getLogger(__name__)
DURABLE = "device-telemetry"
PRUNE_EVERY = timedelta(hours=1)
_TICK = timedelta(microseconds=1)


@dataclass(frozen=True)
class IngestSummary:
    stored: int
    # Of unknown or retired devices, or unreadable.
    skipped: int
    raised: int
    cleared: int


def _moment(stamp: Timestamp) -> datetime | None:
    try:
        return stamp.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError):
        return None


def sample_of(received: device_adapter_pb2.TelemetryReceived) -> Sample | None:
    """The sample a TelemetryReceived carries; None when it cannot be stored."""
    telemetry = received.telemetry
    stamp = telemetry.sample_time if telemetry.HasField("sample_time") else received.occur_time
    sample_time = _moment(stamp)
    if sample_time is None:
        return None
    sample = Sample(
        sample_time=sample_time,
        temperature=(
            telemetry.temperature_celsius if telemetry.HasField("temperature_celsius") else None
        ),
        power=telemetry.power_watts if telemetry.HasField("power_watts") else None,
        heater_on=telemetry.heater_on if telemetry.HasField("heater_on") else None,
        gas_alarm=telemetry.gas_alarm if telemetry.HasField("gas_alarm") else None,
    )
    return sample if sample.is_finite else None


def reading_message(sample: Sample) -> device_pb2.Reading:
    return device_pb2.Reading(
        temperature_celsius=sample.temperature,
        power_watts=sample.power,
        heater_on=sample.heater_on,
        gas_alarm=sample.gas_alarm,
        sample_time=timestamp(sample.sample_time),
    )


def _parsed(batch: device_adapter_pb2.TelemetryBatch) -> tuple[list[tuple[uuid.UUID, Sample]], int]:
    """The batch's storable samples, in arrival order, and how many were not."""
    parsed: list[tuple[uuid.UUID, Sample]] = []
    for received in batch.samples:
        try:
            device = uuid.UUID(received.device_id)
        except ValueError:
            continue
        sample = sample_of(received)
        if sample is not None:
            parsed.append((device, sample))
    return parsed, len(batch.samples) - len(parsed)


def _by_device(samples: Sequence[tuple[uuid.UUID, Sample]]) -> dict[uuid.UUID, list[Sample]]:
    grouped: dict[uuid.UUID, list[Sample]] = {}
    for device, sample in samples:
        grouped.setdefault(device, []).append(sample)
    return grouped


class _AlarmWrites:
    """What a batch's alarm changes write: alarm rows, log entries, events."""

    def __init__(self, now: datetime) -> None:
        self._now = now
        self._last: datetime | None = None
        self.raised: list[AlarmRow] = []
        self.cleared: list[tuple[uuid.UUID, str]] = []
        self.logs: list[DeviceLogRecord] = []
        self.events: list[Message] = []

    def add(
        self,
        device: LiveDevice,
        raised_at: dict[str, datetime],
        changes: list[AlarmChange],
        after: frozenset[str],
    ) -> None:
        """`raised_at`: the episodes going on before the batch, and since when."""
        before = frozenset(raised_at)
        raised_at = dict(raised_at)
        for change in changes:
            at = self._record(device, change, raised_at.get(change.hazard))
            if change.raised:
                raised_at[change.hazard] = at
        # The net of the batch: an episode that starts and ends in it leaves no row.
        self.raised += [AlarmRow(device.id, h, raised_at[h]) for h in sorted(after - before)]
        self.cleared += [(device.id, hazard) for hazard in sorted(before - after)]

    def _time(self, not_before: datetime | None) -> datetime:
        """Now, but after the batch's previous change and after the episode's
        start: the device log lists them in the order they happened, even when
        another replica's clock, which raised the alarm, runs ahead of ours."""
        candidates = [self._now]
        candidates += [moment + _TICK for moment in (self._last, not_before) if moment is not None]
        self._last = max(candidates)
        return self._last

    def _record(self, device: LiveDevice, change: AlarmChange, since: datetime | None) -> datetime:
        at = self._time(None if change.raised else since)
        reading = reading_message(change.sample)
        self.logs.append(
            DeviceLogRecord(
                id=uuid.uuid4(),
                device_id=device.id,
                kind=domain.ALARM_RAISED if change.raised else domain.ALARM_CLEARED,
                event=change.line,
                timestamp=at,
                reading=reading.SerializeToString(),
            )
        )
        event_type = (
            device_pb2.DangerousReadingDetected
            if change.raised
            else device_pb2.DangerousReadingCleared
        )
        self.events.append(
            event_type(
                device_id=str(device.id),
                space_id=str(device.space_id),
                hazard=device_pb2.Hazard.Value(change.hazard),
                reading=reading,
                occur_time=timestamp(at),
            )
        )
        return at


async def ingest(
    connection: Connection,
    batch: device_adapter_pb2.TelemetryBatch,
    limits: OverheatLimits,
    now: datetime,
) -> IngestSummary:
    """Store one batch and act on its alarms, in the caller's transaction."""
    parsed, unreadable = _parsed(batch)
    if not parsed:
        return IngestSummary(0, unreadable, 0, 0)
    repo = SqlTelemetry(connection)
    devices = await repo.lock_live_devices(sorted({device for device, _ in parsed}))
    kept = [(device, sample) for device, sample in parsed if device in devices]
    if not kept:
        return IngestSummary(0, len(batch.samples), 0, 0)
    await repo.add_samples(kept)
    arrived = _by_device(kept)
    fresh = {
        device: newer_samples(samples, devices[device].last_reading_at)
        for device, samples in arrived.items()
    }
    fresh = {device: samples for device, samples in fresh.items() if samples}
    await repo.set_last_readings(
        [
            LastReading(
                device, samples[-1].sample_time, reading_message(samples[-1]).SerializeToString()
            )
            for device, samples in fresh.items()
        ]
    )
    # Alarms follow the samples in the order they arrived (see alarm_changes).
    writes = await _alarm_writes(repo, devices, arrived, limits, now)
    await repo.change_alarms(writes.raised, writes.cleared)
    await repo.add_logs(writes.logs)
    for event in writes.events:
        await add_event(connection, event)
    raised = sum(1 for entry in writes.logs if entry.kind == domain.ALARM_RAISED)
    return IngestSummary(
        stored=len(kept),
        skipped=unreadable + len(parsed) - len(kept),
        raised=raised,
        cleared=len(writes.logs) - raised,
    )


async def _alarm_writes(
    repo: SqlTelemetry,
    devices: dict[uuid.UUID, LiveDevice],
    arrived: dict[uuid.UUID, list[Sample]],
    limits: OverheatLimits,
    now: datetime,
) -> _AlarmWrites:
    active = await repo.active_alarms(sorted(arrived)) if arrived else {}
    writes = _AlarmWrites(now)
    for device_id in sorted(arrived):
        device = devices[device_id]
        going_on = active.get(device_id, {})
        changes, after = alarm_changes(
            frozenset(going_on),
            arrived[device_id],
            limits.for_type(device.type),
            device.last_reading_at,
        )
        writes.add(device, going_on, changes, after)
    return writes


class TelemetryIngest:
    """The TelemetryBatch consumer's handler."""

    def __init__(self, limits: OverheatLimits, *, clock: Clock = utc_now) -> None:
        self._limits = limits
        self._clock = clock

    async def __call__(
        self,
        connection: Connection,
        event: device_adapter_pb2.TelemetryBatch,
        context: EventContext,
    ) -> None:
        summary = await ingest(connection, event, self._limits, self._clock())
        if summary.skipped:
            log.info(
                "dropped %d samples of unknown or retired devices, or unreadable",
                summary.skipped,
                extra={"event": context.event_id},
            )


def subscription(
    settings: TelemetrySettings, *, clock: Clock = utc_now
) -> Subscription[device_adapter_pb2.TelemetryBatch]:
    return Subscription.of_event(
        DURABLE,
        "device-adapter",
        device_adapter_pb2.TelemetryBatch,
        TelemetryIngest(settings.overheat, clock=clock),
        retention=ADAPTER_EVENT_RETENTION,
    )


async def prune_readings(
    database: Database, raw_days: int, hourly_days: int, now: datetime | None = None
) -> tuple[int, int]:
    """Forget raw samples older than `raw_days` and hourly summaries older than
    `hourly_days`; how many of each went."""
    now = now or utc_now()
    async with database.connection() as connection:
        raw, hours = await readings_repository.prune(
            connection, now - timedelta(days=raw_days), now - timedelta(days=hourly_days)
        )
    if raw or hours:
        log.info("pruned %d raw readings and %d hourly summaries", raw, hours)
    return raw, hours


def pruning_job(
    database: Database, settings: TelemetrySettings, every: timedelta = PRUNE_EVERY
) -> PeriodicJob:
    return PeriodicJob(
        "device-readings-pruning",
        every,
        lambda: prune_readings(database, settings.raw_days, settings.hourly_days),
    )
