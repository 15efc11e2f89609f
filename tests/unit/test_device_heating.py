"""Heating's desired state: versions, limits, the frost floor and who may change what,
on in-memory repositories."""

import math
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from warmhouse.device.v1 import device_pb2
from warmhouse.heating.v1 import heating_pb2

from services.device import heating_rules
from services.runtime.errors import (
    Conflict,
    DomainError,
    InvalidArgument,
    PermissionDenied,
    Throttled,
)
from services.runtime.timestamps import timestamp
from tests.fakes import raises
from tests.unit.device_fakes import DeviceWorld, device_world
from tests.unit.test_device_commands import send, set_target
from tests.unit.test_device_handlers import Home, events, person, projected_home, register

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


@pytest.fixture
def world() -> DeviceWorld:
    return device_world()


async def a_heater(world: DeviceWorld) -> tuple[Home, uuid.UUID]:
    home = await projected_home(world)
    return home, (await register(world, home.owner, home.room)).device.id


def change(
    device: uuid.UUID, version: int, **fields: object
) -> device_pb2.UpdateDesiredHeatingRequest:
    return device_pb2.UpdateDesiredHeatingRequest(
        device_id=str(device),
        version=version,
        **fields,  # type: ignore[arg-type]
    )


def slot(day: int, start: str, celsius: float) -> heating_pb2.ScheduleSlot:
    return heating_pb2.ScheduleSlot(day=day, start_time=start, target_celsius=celsius)  # type: ignore[arg-type]


def changed(**fields: object) -> heating_pb2.HeatingPlan:
    request = device_pb2.UpdateDesiredHeatingRequest(version=1, **fields)  # type: ignore[arg-type]
    return heating_rules.changed_plan(heating_rules.default_plan(), request, NOW)


def refusal(**fields: object) -> InvalidArgument:
    with pytest.raises(InvalidArgument) as refused:
        changed(**fields)
    return refused.value


# The rules.


def test_a_device_starts_with_the_documented_defaults() -> None:
    plan = heating_rules.default_plan()
    assert (plan.version, plan.mode, plan.target_celsius, plan.preset) == (
        1,
        heating_pb2.HEAT,
        20.0,
        heating_pb2.NONE,
    )
    assert (plan.limits.min_target_celsius, plan.limits.max_target_celsius) == (5.0, 30.0)
    assert plan.limits.frost_floor_celsius == 7.0
    assert plan.window_detection.enabled
    assert plan.time_zone == "UTC"


def test_every_change_raises_the_version_by_one() -> None:
    assert changed(mode=heating_pb2.AUTO).version == 2


@pytest.mark.parametrize("celsius", [6.9, 4.0, 30.5, math.nan, math.inf, -math.inf])
def test_a_target_below_the_frost_floor_or_outside_the_limits_is_refused(celsius: float) -> None:
    assert refusal(target_celsius=celsius).reason == "TEMPERATURE_OUT_OF_LIMITS"


def test_the_frost_floor_is_the_lowest_target_even_when_the_minimum_is_lower() -> None:
    assert changed(target_celsius=7.0).target_celsius == 7.0
    raised = heating_pb2.HeatingLimits(
        min_target_celsius=5, max_target_celsius=30, frost_floor_celsius=10
    )
    problem = refusal(limits=raised, target_celsius=9.5)
    assert problem.metadata["field"] == "targetCelsius"


def test_a_schedule_slot_below_the_frost_floor_is_refused() -> None:
    schedule = heating_pb2.WeeklySchedule(
        slots=[slot(heating_pb2.MONDAY, "07:00", 21), slot(heating_pb2.MONDAY, "22:00", 6)]
    )
    problem = refusal(schedule=schedule)
    assert problem.metadata["field"] == "schedule.slots[1].targetCelsius"


def test_limits_that_would_strand_a_setting_are_refused() -> None:
    # The default target (20) and comfort preset (21) lie above a maximum of 19.
    narrow = heating_pb2.HeatingLimits(
        min_target_celsius=5, max_target_celsius=19, frost_floor_celsius=7
    )
    assert refusal(limits=narrow).metadata["field"] == "targetCelsius"


@pytest.mark.parametrize(
    ("low", "high", "floor"),
    [(20, 10, 7), (4, 30, 7), (5, 31, 7), (5, 30, 4.9), (5, 30, 16), (5, 8, 9), (math.nan, 30, 7)],
)
def test_impossible_limits_are_refused(low: float, high: float, floor: float) -> None:
    limits = heating_pb2.HeatingLimits(
        min_target_celsius=low, max_target_celsius=high, frost_floor_celsius=floor
    )
    assert refusal(limits=limits).reason in {"INVALID_LIMITS", "OUT_OF_RANGE"}


@pytest.mark.parametrize(
    "bad",
    [
        slot(heating_pb2.DAY_OF_WEEK_UNSPECIFIED, "07:00", 20),
        slot(heating_pb2.MONDAY, "24:00", 20),
        slot(heating_pb2.MONDAY, "7:00", 20),
        slot(heating_pb2.MONDAY, "07:00\x00", 20),
        slot(heating_pb2.MONDAY, "07:0" + "0" * 6000, 20),
    ],
)
def test_a_malformed_slot_is_refused(bad: heating_pb2.ScheduleSlot) -> None:
    problem = refusal(schedule=heating_pb2.WeeklySchedule(slots=[bad]))
    assert problem.reason == "INVALID_SCHEDULE"
    assert "\x00" not in problem.message
    assert len(problem.message) < 200


def test_two_slots_starting_together_and_thirteen_in_a_day_are_refused() -> None:
    twice = [slot(heating_pb2.MONDAY, "07:00", 20), slot(heating_pb2.MONDAY, "07:00", 21)]
    assert refusal(schedule=heating_pb2.WeeklySchedule(slots=twice)).reason == "INVALID_SCHEDULE"
    many = [slot(heating_pb2.TUESDAY, f"{hour:02}:00", 20) for hour in range(13)]
    assert refusal(schedule=heating_pb2.WeeklySchedule(slots=many)).reason == "INVALID_SCHEDULE"


@pytest.mark.parametrize("zone", ["Mars/Olympus", "../../etc/passwd", "", "x" * 65, "UTC\x00"])
def test_an_unknown_time_zone_is_refused(zone: str) -> None:
    assert refusal(time_zone=zone).reason == "INVALID_TIME_ZONE"


def test_a_known_time_zone_is_kept() -> None:
    assert changed(time_zone="Europe/Moscow").time_zone == "Europe/Moscow"


def test_boost_lasts_an_hour_unless_told_otherwise() -> None:
    plan = changed(preset=heating_pb2.BOOST)
    assert plan.preset_end_time.ToDatetime(UTC) == NOW + timedelta(hours=1)
    later = changed(preset=heating_pb2.ECO, preset_end_time=timestamp(NOW + timedelta(days=2)))
    assert later.preset_end_time.ToDatetime(UTC) == NOW + timedelta(days=2)
    assert not changed(preset=heating_pb2.COMFORT).HasField("preset_end_time")


@pytest.mark.parametrize(
    "fields",
    [
        {"preset": heating_pb2.BOOST, "preset_end_time": timestamp(NOW - timedelta(minutes=1))},
        {"preset": heating_pb2.NONE, "preset_end_time": timestamp(NOW + timedelta(hours=1))},
        {"preset_end_time": timestamp(NOW + timedelta(hours=1))},
        {"preset": heating_pb2.PRESET_UNSPECIFIED},
        {"preset": 99},
        {"mode": heating_pb2.HEATING_MODE_UNSPECIFIED},
        {"mode": 42},
    ],
)
def test_preset_and_mode_mistakes_are_refused(fields: dict[str, object]) -> None:
    refusal(**fields)


@pytest.mark.parametrize(
    ("drop", "within", "pause"), [(0.1, 300, 1800), (1.5, 10, 1800), (1.5, 300, 10**6)]
)
def test_window_detection_settings_are_bounded(drop: float, within: int, pause: int) -> None:
    window = heating_pb2.WindowDetection(
        enabled=True, drop_celsius=drop, within_seconds=within, pause_seconds=pause
    )
    assert refusal(window_detection=window).reason == "OUT_OF_RANGE"


def test_an_ended_preset_no_longer_counts_as_a_difference() -> None:
    plan = changed(preset=heating_pb2.BOOST)
    status = heating_pb2.HeatingStatus(
        plan_version=2, mode=heating_pb2.HEAT, preset=heating_pb2.NONE
    )
    assert heating_rules.differences(plan, status, NOW) == ["preset"]
    assert heating_rules.differences(plan, status, NOW + timedelta(hours=2)) == []


def test_differences_name_what_the_device_does_not_do() -> None:
    plan = changed(mode=heating_pb2.HEAT, target_celsius=22)
    assert heating_rules.differences(plan, None, NOW) == ["plan_version"]
    behind = heating_pb2.HeatingStatus(
        plan_version=1,
        mode=heating_pb2.OFF,
        preset=heating_pb2.NONE,
        target_celsius=7,
        reason=heating_pb2.FROST_PROTECTION,
    )
    assert heating_rules.differences(plan, behind, NOW) == ["plan_version", "mode"]
    overridden = heating_pb2.HeatingStatus(
        plan_version=2,
        mode=heating_pb2.HEAT,
        preset=heating_pb2.NONE,
        target_celsius=25,
        reason=heating_pb2.LOCAL_OVERRIDE,
    )
    assert heating_rules.differences(plan, overridden, NOW) == ["target_celsius"]


# The use cases.


async def test_a_change_needs_the_version_read_and_a_stale_one_changes_nothing(
    world: DeviceWorld,
) -> None:
    home, device = await a_heater(world)
    read = await world.heating.get(home.owner, str(device))
    assert read.desired.plan.version == 1
    assert not read.HasField("reported")
    await world.heating.update(home.owner, change(device, 1, mode=heating_pb2.AUTO))
    stale = await raises(
        world.heating.update(home.maintainer, change(device, 1, target_celsius=23)), Conflict
    )
    assert stale.reason == "DESIRED_VERSION_STALE"
    assert stale.metadata["current_version"] == "2"
    after = await world.heating.get(home.owner, str(device))
    assert (after.desired.plan.version, after.desired.plan.target_celsius) == (2, 20.0)
    assert after.desired.updated_by == home.owner.user_id
    assert world.plans_woken == [device]
    published = events(world, device_pb2.DesiredHeatingChanged)
    assert [event.plan.version for event in published] == [2]
    assert world.logs.lines(device)[-1] == "desired v2: mode AUTO"


async def test_a_missing_version_or_an_empty_change_is_a_bad_request(world: DeviceWorld) -> None:
    home, device = await a_heater(world)
    missing = await raises(
        world.heating.update(home.owner, change(device, 0, target_celsius=21)), InvalidArgument
    )
    assert missing.reason == "VERSION_REQUIRED"
    empty = await raises(world.heating.update(home.owner, change(device, 1)), InvalidArgument)
    assert empty.reason == "NOTHING_TO_CHANGE"


async def test_a_guest_sets_the_temperature_only(world: DeviceWorld) -> None:
    home, device = await a_heater(world)
    await world.heating.update(home.guest, change(device, 1, target_celsius=22))
    for fields in (
        {"mode": heating_pb2.OFF},
        {"target_celsius": 21, "preset": heating_pb2.BOOST},
        {"schedule": heating_pb2.WeeklySchedule()},
        {
            "limits": heating_pb2.HeatingLimits(
                min_target_celsius=5, max_target_celsius=30, frost_floor_celsius=7
            )
        },
    ):
        await raises(
            world.heating.update(home.guest, change(device, 2, **fields)), PermissionDenied
        )
    await world.heating.update(home.maintainer, change(device, 2, mode=heating_pb2.OFF))
    plan = (await world.heating.get(home.guest, str(device))).desired.plan
    assert (plan.version, plan.target_celsius, plan.mode) == (3, 22.0, heating_pb2.OFF)


async def test_a_stranger_is_told_the_device_does_not_exist(world: DeviceWorld) -> None:
    _home, device = await a_heater(world)
    stranger = person()
    await raises(world.heating.get(stranger, str(device)), DomainError)
    refused = await raises(
        world.heating.update(stranger, change(device, 1, target_celsius=21)), DomainError
    )
    assert refused.reason == "DEVICE_NOT_FOUND"


async def test_a_sensor_has_no_heating(world: DeviceWorld) -> None:
    home = await projected_home(world)
    sensor = await world.handlers.register(home.owner, str(home.room), "SENSOR", "Thermometer")
    refused = await raises(world.heating.get(home.owner, str(sensor.device.id)), DomainError)
    assert refused.reason == "NOT_A_HEATING_DEVICE"


async def test_a_command_cannot_set_a_target_below_the_frost_floor(world: DeviceWorld) -> None:
    home, device = await a_heater(world)
    refused = await raises(send(world, home.owner, set_target(device, 6.5)), InvalidArgument)
    assert refused.reason == "TEMPERATURE_OUT_OF_LIMITS"
    limits = heating_pb2.HeatingLimits(
        min_target_celsius=5, max_target_celsius=24, frost_floor_celsius=7
    )
    await world.heating.update(home.owner, change(device, 1, limits=limits))
    await raises(send(world, home.owner, set_target(device, 25)), InvalidArgument)
    accepted = await send(world, home.owner, set_target(device, 24))
    assert accepted.status == device_pb2.QUEUED


def test_changes_are_counted_per_minute_and_refused_beyond_the_limit() -> None:
    start, count = heating_rules.count_change(None, 0, NOW)
    assert (start, count) == (NOW, 1)
    later = NOW + timedelta(seconds=30)
    assert heating_rules.count_change(start, 5, later) == (NOW, 6)
    with pytest.raises(Throttled) as refused:
        heating_rules.count_change(start, heating_rules.CHANGES_PER_MINUTE, later)
    assert refused.value.reason == "TOO_MANY_CHANGES"
    # A new minute starts afresh.
    next_minute = NOW + timedelta(minutes=1)
    assert heating_rules.count_change(start, 30, next_minute) == (next_minute, 1)


def test_window_moves_are_logged_at_most_every_half_minute() -> None:
    assert heating_rules.window_worth_logging(None, NOW)
    assert not heating_rules.window_worth_logging(NOW, NOW + timedelta(seconds=29))
    assert heating_rules.window_worth_logging(NOW, NOW + timedelta(seconds=30))


async def test_a_burst_of_changes_to_one_device_is_throttled(world: DeviceWorld) -> None:
    home, device = await a_heater(world)
    limit = heating_rules.CHANGES_PER_MINUTE
    for version in range(1, limit + 1):
        await world.heating.update(home.guest, change(device, version, target_celsius=20))
    refused = await raises(
        world.heating.update(home.guest, change(device, limit + 1, target_celsius=21)), Throttled
    )
    assert refused.reason == "TOO_MANY_CHANGES"
    world.clock.advance(seconds=61)
    changed = await world.heating.update(home.guest, change(device, limit + 1, target_celsius=21))
    assert changed.desired.version == limit + 2
