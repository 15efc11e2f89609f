"""ListReadings: a device's readings over a range, raw or in buckets (readings.py
says which)."""

import uuid
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from warmhouse.device.v1 import device_pb2

from services.device import readings
from services.device.readings import (
    Buckets,
    ReadingPointRecord,
    Sample,
    TelemetrySettings,
    TimeRange,
    buckets,
    may_be_raw,
    raw_cutoff,
    raw_point,
    time_range,
)
from services.runtime.auth import Caller
from services.runtime.clock import Clock, utc_now
from services.runtime.request import parse_uuid
from services.runtime.timestamps import timestamp


class ReadingHistory(Protocol):
    async def raw(self, device_id: uuid.UUID, span: TimeRange, limit: int) -> list[Sample]:
        """Up to `limit` raw samples in the range, oldest first."""

    async def buckets(
        self, device_id: uuid.UUID, span: TimeRange, buckets: Buckets, limit: int
    ) -> list[ReadingPointRecord]:
        """A summary per bucket that holds samples, oldest first."""


class ReadingQueries:
    def __init__(
        self,
        read: Callable[[], AbstractAsyncContextManager[ReadingHistory]],
        authorize: Callable[[Caller, uuid.UUID], Awaitable[object]],
        settings: TelemetrySettings,
        clock: Clock = utc_now,
    ) -> None:
        self._read = read
        # Raises NotFound for a device the caller may not see (or that does not exist).
        self._authorize = authorize
        self._settings = settings
        self._clock = clock

    async def list_readings(
        self, caller: Caller, device_id: str, from_: str, to: str, max_points: int
    ) -> tuple[list[ReadingPointRecord], int]:
        """The points, oldest first, and the bucket length (0: raw samples)."""
        device = parse_uuid(device_id, "deviceId")
        now = self._clock()
        span = time_range(from_, to, now)
        points = readings.max_points(max_points)
        await self._authorize(caller, device)
        cutoff = raw_cutoff(now, self._settings.raw_days)
        async with self._read() as history:
            if may_be_raw(span, cutoff):
                # One more than fits: then there are too many.
                samples = await history.raw(device, span, points + 1)
                if len(samples) <= points:
                    return [raw_point(sample) for sample in samples], 0
            chosen = buckets(span, points, cutoff)
            return await history.buckets(device, span, chosen, points), chosen.seconds


def point_message(point: ReadingPointRecord) -> device_pb2.ReadingPoint:
    return device_pb2.ReadingPoint(
        time=timestamp(point.time),
        sample_count=point.sample_count,
        temperature_celsius=point.temperature,
        min_temperature_celsius=point.min_temperature,
        max_temperature_celsius=point.max_temperature,
        power_watts=point.power,
        heater_on_ratio=point.heater_on_ratio,
        gas_alarm=point.gas_alarm,
    )
