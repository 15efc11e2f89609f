"""Telemetry rules (services/device/readings.py) and the ListReadings use case on a fake
history: alarm episodes with hysteresis, ranges, and the choice of resolution."""

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import pytest
from warmhouse.device.v1 import device_pb2

from services.device.reading_queries import ReadingQueries, point_message
from services.device.readings import (
    BUCKET_SECONDS,
    GAS_LEAK,
    OVERHEATING,
    WEEK_SECONDS,
    Buckets,
    OverheatLimits,
    ReadingPointRecord,
    Sample,
    TelemetrySettings,
    TimeRange,
    alarm_changes,
    alarm_transitions,
    bucket_count,
    buckets,
    max_points,
    newer_samples,
    raw_cutoff,
    raw_point,
    time_range,
)
from services.runtime.auth import Caller
from services.runtime.config import ConfigError, Environment
from services.runtime.errors import InvalidArgument, NotFound
from tests.fakes import FakeClock, raises

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
LIMIT = 90.0
NONE: frozenset[str] = frozenset()


def at(minutes: float) -> datetime:
    return NOW + timedelta(minutes=minutes)


def hot(minutes: float = 0, celsius: float = 95.0) -> Sample:
    return Sample(at(minutes), temperature=celsius)


# Alarm transitions


def test_a_temperature_above_the_limit_raises_overheating() -> None:
    assert alarm_transitions(NONE, hot(), LIMIT) == (frozenset({OVERHEATING}), NONE)


def test_a_temperature_at_the_limit_is_not_overheating() -> None:
    assert alarm_transitions(NONE, hot(celsius=LIMIT), LIMIT) == (NONE, NONE)


def test_an_active_episode_is_not_raised_again() -> None:
    assert alarm_transitions(frozenset({OVERHEATING}), hot(celsius=120), LIMIT) == (NONE, NONE)


@pytest.mark.parametrize("celsius", [89.0, 86.0, 85.0])
def test_overheating_lasts_until_five_degrees_below_the_limit(celsius: float) -> None:
    assert alarm_transitions(frozenset({OVERHEATING}), hot(celsius=celsius), LIMIT) == (
        NONE,
        NONE,
    )


def test_overheating_ends_below_the_limit_minus_the_hysteresis() -> None:
    cooled = hot(celsius=84.9)
    assert alarm_transitions(frozenset({OVERHEATING}), cooled, LIMIT) == (
        NONE,
        frozenset({OVERHEATING}),
    )


def test_gas_alarm_raises_and_ends_a_gas_leak() -> None:
    assert alarm_transitions(NONE, Sample(NOW, gas_alarm=True), LIMIT) == (
        frozenset({GAS_LEAK}),
        NONE,
    )
    assert alarm_transitions(frozenset({GAS_LEAK}), Sample(NOW, gas_alarm=False), LIMIT) == (
        NONE,
        frozenset({GAS_LEAK}),
    )
    assert alarm_transitions(NONE, Sample(NOW, gas_alarm=False), LIMIT) == (NONE, NONE)


def test_a_sample_without_a_measurement_neither_raises_nor_clears_its_hazard() -> None:
    both = frozenset({OVERHEATING, GAS_LEAK})
    assert alarm_transitions(both, Sample(NOW, power=10.0, heater_on=False), LIMIT) == (
        NONE,
        NONE,
    )
    # Gas only: the overheating episode goes on.
    assert alarm_transitions(both, Sample(NOW, gas_alarm=False), LIMIT) == (
        NONE,
        frozenset({GAS_LEAK}),
    )
    # Temperature only: the gas leak goes on.
    assert alarm_transitions(both, Sample(NOW, temperature=20.0), LIMIT) == (
        NONE,
        frozenset({OVERHEATING}),
    )


def test_one_sample_may_raise_both_hazards() -> None:
    sample = Sample(NOW, temperature=100.0, gas_alarm=True)
    assert alarm_transitions(NONE, sample, LIMIT) == (frozenset({OVERHEATING, GAS_LEAK}), NONE)


def test_five_hot_samples_then_three_normal_ones_are_one_episode() -> None:
    samples = [hot(i) for i in range(5)] + [hot(5 + i, celsius=40.0) for i in range(3)]
    changes, active = alarm_changes(NONE, samples, LIMIT)
    assert [(c.hazard, c.raised, c.sample) for c in changes] == [
        (OVERHEATING, True, samples[0]),
        (OVERHEATING, False, samples[5]),
    ]
    assert active == NONE
    assert [c.line for c in changes] == ["alarm: OVERHEATING", "alarm cleared: OVERHEATING"]


def test_a_temperature_hovering_at_the_limit_is_one_episode() -> None:
    celsius = [91.0, 89.0, 91.0, 86.0, 92.0, 88.0]
    changes, active = alarm_changes(NONE, [hot(i, c) for i, c in enumerate(celsius)], LIMIT)
    assert [(c.hazard, c.raised) for c in changes] == [(OVERHEATING, True)]
    assert active == {OVERHEATING}


def test_an_episode_active_before_the_samples_is_continued_not_raised() -> None:
    changes, active = alarm_changes(frozenset({GAS_LEAK}), [Sample(NOW, gas_alarm=True)], LIMIT)
    assert changes == []
    assert active == {GAS_LEAK}


def test_only_samples_after_the_latest_reading_count_in_time_order() -> None:
    samples = [hot(3), hot(-1), hot(1), hot(0)]
    assert newer_samples(samples, at(0)) == [hot(1), hot(3)]
    assert newer_samples(samples, None) == [hot(-1), hot(0), hot(1), hot(3)]


def test_samples_with_non_finite_numbers_are_not_storable() -> None:
    assert Sample(NOW, temperature=21.5, power=0.0).is_finite
    assert not Sample(NOW, temperature=float("nan")).is_finite
    assert not Sample(NOW, power=float("inf")).is_finite


# Settings


def test_overheating_limits_by_device_type() -> None:
    limits = OverheatLimits()
    assert (limits.for_type("HEATER"), limits.for_type("SENSOR")) == (90.0, 60.0)
    assert limits.for_type("CONTROLLER") == 70.0


def test_settings_come_from_the_environment() -> None:
    assert TelemetrySettings.from_environment(Environment({})) == TelemetrySettings()
    settings = TelemetrySettings.from_environment(
        Environment(
            {
                "WARMHOUSE_DEVICE_OVERHEAT_CELSIUS_SENSOR": "45",
                "WARMHOUSE_DEVICE_RAW_READINGS_DAYS": "2",
                "WARMHOUSE_DEVICE_HOURLY_READINGS_DAYS": "30",
            }
        )
    )
    assert settings.overheat == OverheatLimits(heater=90.0, sensor=45.0, controller=70.0)
    assert (settings.raw_days, settings.hourly_days) == (2, 30)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("WARMHOUSE_DEVICE_RAW_READINGS_DAYS", "0"),
        ("WARMHOUSE_DEVICE_HOURLY_READINGS_DAYS", "a year"),
        ("WARMHOUSE_DEVICE_OVERHEAT_CELSIUS_HEATER", "90.5"),
    ],
)
def test_malformed_settings_stop_the_start(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        TelemetrySettings.from_environment(Environment({name: value}))


# Ranges


def test_an_empty_range_is_the_last_day() -> None:
    assert time_range("", "", NOW) == TimeRange(NOW - timedelta(days=1), NOW)


def test_an_empty_from_is_a_day_before_to() -> None:
    to = datetime(2026, 1, 5, tzinfo=UTC)
    assert time_range("", "2026-01-05T00:00:00Z", NOW) == TimeRange(to - timedelta(days=1), to)


def test_instants_in_any_offset_are_read_as_utc() -> None:
    span = time_range("2026-01-05t08:30:00.25+05:30", "2026-01-05 12:00:00z", NOW)
    assert span == TimeRange(
        datetime(2026, 1, 5, 3, 0, 0, 250000, tzinfo=UTC), datetime(2026, 1, 5, 12, tzinfo=UTC)
    )
    assert span.start.utcoffset() == timedelta(0)


def refusal(from_: str, to: str) -> InvalidArgument:
    with pytest.raises(InvalidArgument) as refused:
        time_range(from_, to, NOW)
    return refused.value


@pytest.mark.parametrize(
    ("from_", "to", "field"),
    [
        ("2026-01-05", "", "from"),
        ("2026-01-05T08:00:00", "", "from"),
        ("", "2026-01-05T08:00:00+0100", "to"),
        ("", "yesterday<script>", "to"),
        ("", "\uff12\uff10\uff12\uff16-01-05T08:00:00Z", "to"),
        ("2026-02-30T08:00:00Z", "", "from"),
        ("", "2026-01-05T08:00:00Z" + "0" * 100, "to"),
        ("1969-12-31T23:59:59Z", "1970-01-02T00:00:00Z", "from"),
        ("1970-01-01T00:00:00Z", "9999-01-01T00:00:00Z", "to"),
        ("2026-01-05T08:00:00Z", "2026-01-05T08:00:00Z", "from"),
        ("2026-01-06T00:00:00Z", "2026-01-05T00:00:00Z", "from"),
        ("2025-01-01T00:00:00Z", "2026-03-01T00:00:00Z", "from"),
        ("2026-03-11T00:00:00Z", "", "from"),
    ],
)
def test_a_bad_range_is_refused_naming_the_field(from_: str, to: str, field: str) -> None:
    refused = refusal(from_, to)
    assert refused.reason == "INVALID_TIME_RANGE"
    assert refused.metadata == {"field": field}


@pytest.mark.parametrize(
    ("from_", "to"),
    [
        ("2026-01-05T08:00:00Z<b>", ""),
        ("", "2026-13-45T08:00:00Z"),
        ("2026-01-06T08:00:00Z", "2026-01-05T08:00:00Z"),
        ("2024-01-06T08:00:00Z", "2026-01-05T08:00:00Z"),
    ],
)
def test_a_refusal_never_repeats_the_input(from_: str, to: str) -> None:
    refused = refusal(from_, to)
    for given in (from_, to):
        if given:
            assert given not in refused.message
            assert given[:10] not in refused.message
            assert given not in str(refused.metadata)


def test_a_range_of_exactly_400_days_is_allowed() -> None:
    span = time_range("2025-01-01T00:00:00Z", "2026-02-05T00:00:00Z", NOW)
    assert span.end - span.start == timedelta(days=400)


def test_max_points_default_cap_and_sign() -> None:
    assert (max_points(0), max_points(7), max_points(1000), max_points(5000)) == (
        200,
        7,
        1000,
        1000,
    )
    with pytest.raises(InvalidArgument) as refused:
        max_points(-1)
    assert (refused.value.reason, refused.value.metadata) == (
        "INVALID_MAX_POINTS",
        {"field": "maxPoints"},
    )


# Resolution

CUTOFF = raw_cutoff(NOW, 7)


def test_a_day_in_200_points_is_in_quarter_hours_from_raw_samples() -> None:
    chosen = buckets(TimeRange(NOW - timedelta(days=1), NOW), 200, CUTOFF)
    assert (chosen.seconds, chosen.from_hours) == (900, False)


def test_a_recent_week_in_200_points_is_in_hours_from_the_summaries() -> None:
    chosen = buckets(TimeRange(NOW - timedelta(days=6), NOW), 200, CUTOFF)
    assert (chosen.seconds, chosen.from_hours) == (3600, True)


def test_a_range_reaching_past_the_raw_cutoff_uses_hours_however_many_points() -> None:
    span = TimeRange(CUTOFF - timedelta(hours=2), CUTOFF + timedelta(hours=2))
    chosen = buckets(span, 1000, CUTOFF)
    assert (chosen.seconds, chosen.from_hours) == (3600, True)
    assert buckets(span, 1000, NOW - timedelta(days=30)).seconds == 60


def test_buckets_are_aligned_to_utc_hours_days_and_mondays() -> None:
    chosen = buckets(TimeRange(NOW - timedelta(days=100), NOW), 200, CUTOFF)
    assert chosen.seconds == 86400
    assert chosen.origin.weekday() == 0
    assert (chosen.origin.hour, chosen.origin.minute, chosen.origin.utcoffset()) == (
        0,
        0,
        timedelta(0),
    )


def test_an_unaligned_range_counts_the_partial_buckets_at_both_ends() -> None:
    span = TimeRange(NOW + timedelta(minutes=30), NOW + timedelta(hours=2, minutes=30))
    assert bucket_count(span, 3600) == 3
    assert bucket_count(TimeRange(NOW, NOW + timedelta(hours=2)), 3600) == 2


def test_a_long_range_in_few_points_is_in_whole_weeks() -> None:
    span = TimeRange(NOW - timedelta(days=400), NOW)
    chosen = buckets(span, 10, CUTOFF)
    assert chosen.from_hours
    assert chosen.seconds % WEEK_SECONDS == 0
    assert chosen.seconds > WEEK_SECONDS
    assert chosen.origin <= span.start
    assert bucket_count(span, chosen.seconds, chosen.origin) <= 10


@pytest.mark.parametrize("points", [1, 2, 3, 10, 59, 60, 100, 200, 1000])
@pytest.mark.parametrize(
    "length",
    [
        timedelta(minutes=1),
        timedelta(hours=5),
        timedelta(days=1),
        timedelta(days=9),
        timedelta(days=90, minutes=7),
        timedelta(days=400),
    ],
)
def test_the_buckets_chosen_never_exceed_max_points(points: int, length: timedelta) -> None:
    for start in (NOW - length, NOW - length - timedelta(minutes=17, seconds=3)):
        span = TimeRange(start, start + length)
        chosen = buckets(span, points, CUTOFF)
        assert bucket_count(span, chosen.seconds, chosen.origin) <= points
        if chosen.seconds in BUCKET_SECONDS and chosen.seconds > BUCKET_SECONDS[0]:
            # The smallest that fits: the next finer one would not.
            finer = BUCKET_SECONDS[BUCKET_SECONDS.index(chosen.seconds) - 1]
            hourly_only = start < CUTOFF and finer < 3600
            assert hourly_only or bucket_count(span, finer, chosen.origin) > points


def test_a_raw_sample_is_a_point_of_its_own() -> None:
    point = raw_point(Sample(NOW, temperature=21.5, heater_on=True))
    assert point == ReadingPointRecord(NOW, 1, 21.5, 21.5, 21.5, None, 1.0, None)


def test_a_point_message_leaves_what_no_sample_carried_unset() -> None:
    message = point_message(ReadingPointRecord(NOW, 3, power=12.5, gas_alarm=False))
    assert message.sample_count == 3
    assert message.power_watts == 12.5
    assert message.HasField("gas_alarm")
    assert not message.gas_alarm
    assert not message.HasField("temperature_celsius")
    assert not message.HasField("heater_on_ratio")
    assert message.time.ToDatetime(tzinfo=UTC) == NOW


# The use case, on a fake history

DEVICE = uuid.uuid4()
CALLER = Caller(str(uuid.uuid4()), "USER", "s1")


class FakeHistory:
    def __init__(self, samples: list[Sample]) -> None:
        self.samples = samples
        self.asked: list[str] = []

    async def raw(self, device_id: uuid.UUID, span: TimeRange, limit: int) -> list[Sample]:
        self.asked.append("raw")
        inside = [s for s in self.samples if span.start <= s.sample_time < span.end]
        return inside[:limit]

    async def buckets(
        self, device_id: uuid.UUID, span: TimeRange, buckets: Buckets, limit: int
    ) -> list[ReadingPointRecord]:
        self.asked.append(f"buckets {buckets.seconds} {buckets.from_hours}")
        return [ReadingPointRecord(span.start, len(self.samples))]


class Fixture:
    def __init__(self, samples: list[Sample]) -> None:
        self.history = FakeHistory(samples)
        self.authorized: list[uuid.UUID] = []
        self.visible = True
        self.queries = ReadingQueries(
            self._read, self._authorize, TelemetrySettings(), FakeClock(NOW)
        )

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[FakeHistory]:
        yield self.history

    async def _authorize(self, caller: Caller, device_id: uuid.UUID) -> None:
        self.authorized.append(device_id)
        if not self.visible:
            raise NotFound("DEVICE_NOT_FOUND", "no such device")


def minutes_back(count: int) -> list[Sample]:
    return [Sample(at(-i - 1), temperature=20.0 + i) for i in reversed(range(count))]


async def test_few_recent_samples_are_answered_raw_oldest_first() -> None:
    fixture = Fixture(minutes_back(5))
    points, bucket = await fixture.queries.list_readings(CALLER, str(DEVICE), "", "", 0)
    assert bucket == 0
    assert [p.time for p in points] == [at(-5), at(-4), at(-3), at(-2), at(-1)]
    assert fixture.authorized == [DEVICE]


async def test_more_samples_than_max_points_are_answered_in_buckets() -> None:
    fixture = Fixture(minutes_back(11))
    points, bucket = await fixture.queries.list_readings(CALLER, str(DEVICE), "", "", 10)
    # A day (noon to noon) in at most 10 buckets: 6 hours, from the summaries.
    assert bucket == 21600
    assert fixture.history.asked == ["raw", "buckets 21600 True"]
    assert points[0].sample_count == 11


async def test_a_range_before_the_raw_cutoff_does_not_read_raw_samples() -> None:
    fixture = Fixture(minutes_back(3))
    _, bucket = await fixture.queries.list_readings(
        CALLER, str(DEVICE), "2026-02-01T00:00:00Z", "2026-02-02T00:00:00Z", 0
    )
    assert (bucket, fixture.history.asked) == (3600, ["buckets 3600 True"])


async def test_a_malformed_id_is_refused_before_anything_is_read() -> None:
    fixture = Fixture(minutes_back(3))
    refused = await raises(
        fixture.queries.list_readings(CALLER, "not-a-uuid", "", "", 0), InvalidArgument
    )
    assert refused.reason == "INVALID_ID"
    assert fixture.authorized == []
    assert fixture.history.asked == []


async def test_a_bad_range_is_refused_before_the_access_check() -> None:
    fixture = Fixture(minutes_back(3))
    await raises(fixture.queries.list_readings(CALLER, str(DEVICE), "x", "", 0), InvalidArgument)
    assert fixture.authorized == []


async def test_a_device_the_caller_may_not_see_is_not_found_and_not_read() -> None:
    fixture = Fixture(minutes_back(3))
    fixture.visible = False
    await raises(fixture.queries.list_readings(CALLER, str(DEVICE), "", "", 0), NotFound)
    assert fixture.history.asked == []


def test_point_messages_are_reading_points() -> None:
    assert isinstance(point_message(raw_point(hot())), device_pb2.ReadingPoint)


def test_a_late_or_back_dated_gas_reading_still_raises_but_only_a_newer_one_clears() -> None:
    newest = at(10)
    leak, normal = Sample(at(0), gas_alarm=True), Sample(at(1), gas_alarm=False)
    changes, active = alarm_changes(NONE, [leak, normal], LIMIT, newest_before=newest)
    assert [(c.hazard, c.raised) for c in changes] == [("GAS_LEAK", True)]
    assert active == frozenset({"GAS_LEAK"})
    later = Sample(at(11), gas_alarm=False)
    changes, active = alarm_changes(active, [later], LIMIT, newest_before=newest)
    assert [(c.hazard, c.raised) for c in changes] == [("GAS_LEAK", False)]
    assert active == NONE
