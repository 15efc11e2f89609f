"""Telemetry rules: alarms with hysteresis, and the resolution of a reading history.

Pure functions, no I/O; telemetry.py applies them to the adapter's batches and
reading_queries.py to ListReadings.

Alarms. A hazard's episode starts with the first sample that shows it and ends
with the first that shows it is over; one ALARM_RAISED and one ALARM_CLEARED
per episode, however many samples lie in between. OVERHEATING starts above the
device type's limit and ends only below the limit minus `HYSTERESIS_CELSIUS`,
so a temperature hovering at the limit does not raise an alarm per sample.
GAS_LEAK lasts while samples say gas_alarm is true. A sample that does not
carry a measurement (the field unset) says nothing about its hazard.

Resolution of ListReadings. Samples are kept twice: raw for
`raw_days` (default 7), and summed per device and hour (reading_hours) for
`hourly_days` (default 400). For a range [from, to):

1. When the range starts after the raw cut-off (now - raw_days) and holds at
   most `max_points` samples, the samples themselves are the answer
   (bucket_seconds 0).
2. Otherwise the answer is one point per bucket: the smallest of
   `BUCKET_SECONDS` for which the range touches at most `max_points` buckets.
   Buckets shorter than an hour are computed from the raw samples; an hour or
   longer, from reading_hours; a range reaching before the raw cut-off has
   only hourly data, so its buckets are at least an hour long.
3. When even a week is too fine (a long range and a small `max_points`),
   buckets are whole weeks, as many as keep the count within `max_points`.

Buckets are aligned to Monday 00:00 UTC (a multiple of every bucket length),
so an hour starts on the hour, a day at midnight UTC, and a week on a Monday.
The first bucket may start before `from`; it holds only samples from `from`
on, except that an hourly summary cannot be split: the hours that hold `from`
and `to` are counted whole.
"""

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from services.device.domain import CONTROLLER, HEATER, SENSOR
from services.runtime.config import Environment
from services.runtime.errors import InvalidArgument

OVERHEATING, GAS_LEAK = "OVERHEATING", "GAS_LEAK"
HAZARDS = frozenset({OVERHEATING, GAS_LEAK})
# Below the limit by this much before an overheating episode ends.
HYSTERESIS_CELSIUS = 5.0

RAW_DAYS, HOURLY_DAYS = 7, 400

DEFAULT_MAX_POINTS, MAX_POINTS = 200, 1000
DEFAULT_SPAN, MAX_SPAN = timedelta(days=1), timedelta(days=400)
HOUR_SECONDS, WEEK_SECONDS = 3600, 604800
BUCKET_SECONDS = (60, 300, 900, HOUR_SECONDS, 21600, 86400, WEEK_SECONDS)
# A Monday before any instant a request may name (those start in 1970).
BUCKET_ORIGIN = datetime(1969, 12, 29, tzinfo=UTC)
_FIRST_INSTANT = datetime(1970, 1, 1, tzinfo=UTC)
_END_INSTANT = datetime(9999, 1, 1, tzinfo=UTC)
# RFC 3339 (ASCII digits only), a time zone required; longer input is not parsed.
_RFC_3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}"
    r"(\.[0-9]{1,9})?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)
_MAX_INSTANT_LENGTH = 40


# Settings


@dataclass(frozen=True)
class OverheatLimits:
    """Above these temperatures (°C), by device type, a device is overheating."""

    heater: float = 90.0
    sensor: float = 60.0
    controller: float = 70.0

    def for_type(self, device_type: str) -> float:
        limits = {HEATER: self.heater, SENSOR: self.sensor, CONTROLLER: self.controller}
        return limits[device_type]


@dataclass(frozen=True)
class TelemetrySettings:
    overheat: OverheatLimits = OverheatLimits()
    # Raw samples are kept this long; hourly summaries, `hourly_days`.
    raw_days: int = RAW_DAYS
    hourly_days: int = HOURLY_DAYS

    @classmethod
    def from_environment(cls, env: Environment) -> "TelemetrySettings":
        default = OverheatLimits()
        return cls(
            overheat=OverheatLimits(
                heater=_celsius(env, "WARMHOUSE_DEVICE_OVERHEAT_CELSIUS_HEATER", default.heater),
                sensor=_celsius(env, "WARMHOUSE_DEVICE_OVERHEAT_CELSIUS_SENSOR", default.sensor),
                controller=_celsius(
                    env, "WARMHOUSE_DEVICE_OVERHEAT_CELSIUS_CONTROLLER", default.controller
                ),
            ),
            raw_days=env.integer("WARMHOUSE_DEVICE_RAW_READINGS_DAYS", RAW_DAYS, minimum=1),
            hourly_days=env.integer(
                "WARMHOUSE_DEVICE_HOURLY_READINGS_DAYS", HOURLY_DAYS, minimum=1
            ),
        )


def _celsius(env: Environment, name: str, default: float) -> float:
    # Whole degrees: the adapter accepts -100 to 200 °C.
    return float(env.integer(name, int(default), minimum=-100))


# Samples and alarms


@dataclass(frozen=True)
class Sample:
    """One telemetry sample; a measurement the device does not take is None."""

    sample_time: datetime
    temperature: float | None = None
    power: float | None = None
    heater_on: bool | None = None
    gas_alarm: bool | None = None

    @property
    def is_finite(self) -> bool:
        """NaN or infinity would poison every sum it entered."""
        return all(
            value is None or math.isfinite(value) for value in (self.temperature, self.power)
        )


def alarm_transitions(
    active: frozenset[str], reading: Sample, threshold: float
) -> tuple[frozenset[str], frozenset[str]]:
    """The hazards `reading` raises and those it clears, given the active ones."""
    raised: set[str] = set()
    cleared: set[str] = set()
    if reading.temperature is not None:
        if OVERHEATING not in active and reading.temperature > threshold:
            raised.add(OVERHEATING)
        elif OVERHEATING in active and reading.temperature < threshold - HYSTERESIS_CELSIUS:
            cleared.add(OVERHEATING)
    if reading.gas_alarm is not None:
        if reading.gas_alarm and GAS_LEAK not in active:
            raised.add(GAS_LEAK)
        elif not reading.gas_alarm and GAS_LEAK in active:
            cleared.add(GAS_LEAK)
    return frozenset(raised), frozenset(cleared)


@dataclass(frozen=True)
class AlarmChange:
    hazard: str
    # False: the episode ended.
    raised: bool
    # The sample that started or ended it.
    sample: Sample

    @property
    def line(self) -> str:
        """The log entry's line, e.g. "alarm: GAS_LEAK"."""
        return f"alarm: {self.hazard}" if self.raised else f"alarm cleared: {self.hazard}"


def alarm_changes(
    active: frozenset[str],
    samples: list[Sample],
    threshold: float,
    newest_before: datetime | None = None,
) -> tuple[list[AlarmChange], frozenset[str]]:
    """Every episode start and end along `samples` (in arrival order), and the
    hazards active after the last.

    Any sample may start an episode, however its device stamped it: a gas
    leak reported late, or by a device whose clock jumped back, is still a
    gas leak. Only a sample newer than `newest_before` (the device's latest
    reading before these) may end one: a late batch of older, normal samples
    does not end an episode newer ones started."""
    changes: list[AlarmChange] = []
    for sample in samples:
        raised, cleared = alarm_transitions(active, sample, threshold)
        if newest_before is not None and sample.sample_time <= newest_before:
            cleared = frozenset()
        changes += [AlarmChange(hazard, True, sample) for hazard in sorted(raised)]
        changes += [AlarmChange(hazard, False, sample) for hazard in sorted(cleared)]
        active = (active | raised) - cleared
    return changes, active


def newer_samples(samples: list[Sample], last_reading_at: datetime | None) -> list[Sample]:
    """The samples after the device's latest recorded one, in sample order:
    the candidates for its latest reading (a late batch of older samples goes
    into the history only)."""
    fresh = [s for s in samples if last_reading_at is None or s.sample_time > last_reading_at]
    return sorted(fresh, key=lambda sample: sample.sample_time)


# ListReadings


@dataclass(frozen=True)
class TimeRange:
    start: datetime
    # Exclusive.
    end: datetime


def _invalid_range(message: str, field: str) -> InvalidArgument:
    return InvalidArgument("INVALID_TIME_RANGE", message, field=field)


def _instant(value: str, field: str) -> datetime:
    """An RFC 3339 instant with a time zone, from 1970 to before 9999."""
    if len(value) > _MAX_INSTANT_LENGTH or not _RFC_3339.fullmatch(value):
        raise _invalid_range(
            f"{field} must be an RFC 3339 instant with a time zone, e.g. 2026-11-27T08:00:00Z",
            field,
        )
    try:
        # fromisoformat (3.11) takes "Z" and "T" but not their lower case.
        parsed = datetime.fromisoformat(value.upper()).astimezone(UTC)
    except (ValueError, OverflowError):
        raise _invalid_range(f"{field} is not a valid date and time", field) from None
    if not _FIRST_INSTANT <= parsed < _END_INSTANT:
        raise _invalid_range(f"{field} must be from 1970 to before the year 9999", field)
    return parsed


def time_range(from_: str, to: str, now: datetime) -> TimeRange:
    """The range a ListReadings request asks for: `to` defaults to now and
    `from` to a day before `to`; from < to, at most `MAX_SPAN` apart."""
    end = _instant(to, "to") if to else now
    start = _instant(from_, "from") if from_ else end - DEFAULT_SPAN
    if start >= end:
        raise _invalid_range("from must be before to", "from")
    if end - start > MAX_SPAN:
        raise _invalid_range(f"from and to must be at most {MAX_SPAN.days} days apart", "from")
    return TimeRange(start, end)


def max_points(requested: int) -> int:
    if requested < 0:
        raise InvalidArgument(
            "INVALID_MAX_POINTS", "maxPoints must not be negative", field="maxPoints"
        )
    return min(requested or DEFAULT_MAX_POINTS, MAX_POINTS)


def raw_cutoff(now: datetime, raw_days: int) -> datetime:
    """Raw samples before this may be gone already."""
    return now - timedelta(days=raw_days)


def may_be_raw(span: TimeRange, cutoff: datetime) -> bool:
    """Whether the raw samples of the whole range are still kept."""
    return span.start >= cutoff


@dataclass(frozen=True)
class Buckets:
    seconds: int
    # Every bucket starts a whole number of `seconds` after this.
    origin: datetime
    # From reading_hours, else from the raw samples.
    from_hours: bool


def bucket_count(span: TimeRange, seconds: int, origin: datetime = BUCKET_ORIGIN) -> int:
    """How many buckets of `seconds`, aligned to `origin`, the range touches."""
    size = timedelta(seconds=seconds)
    last = span.end - timedelta(microseconds=1)
    return (last - origin) // size - (span.start - origin) // size + 1


def buckets(span: TimeRange, points: int, cutoff: datetime) -> Buckets:
    """The buckets a range is summarised in when its raw samples will not do."""
    hourly_only = not may_be_raw(span, cutoff)
    for seconds in BUCKET_SECONDS:
        if hourly_only and seconds < HOUR_SECONDS:
            continue
        if bucket_count(span, seconds) <= points:
            return Buckets(seconds, BUCKET_ORIGIN, from_hours=seconds >= HOUR_SECONDS)
    # Whole weeks from the Monday the range starts in: ceil(length / weeks) ≤ points.
    origin = span.start - (span.start - BUCKET_ORIGIN) % timedelta(weeks=1)
    weeks = math.ceil((span.end - origin) / (timedelta(weeks=points)))
    return Buckets(weeks * WEEK_SECONDS, origin, from_hours=True)


@dataclass(frozen=True)
class ReadingPointRecord:
    """One raw sample, or a bucket's summary; None where no sample carried the field."""

    time: datetime
    sample_count: int
    temperature: float | None = None
    min_temperature: float | None = None
    max_temperature: float | None = None
    power: float | None = None
    # The share of samples with the heater on, 0 to 1.
    heater_on_ratio: float | None = None
    # Whether any sample was in gas alarm.
    gas_alarm: bool | None = None


def raw_point(sample: Sample) -> ReadingPointRecord:
    """A sample as a point: its own mean, minimum and maximum."""
    heater = None if sample.heater_on is None else float(sample.heater_on)
    return ReadingPointRecord(
        time=sample.sample_time,
        sample_count=1,
        temperature=sample.temperature,
        min_temperature=sample.temperature,
        max_temperature=sample.temperature,
        power=sample.power,
        heater_on_ratio=heater,
        gas_alarm=sample.gas_alarm,
    )
