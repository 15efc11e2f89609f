"""The simulator's heating firmware (services/simulator/heating.py) and its plan storage:
pure, explicit datetimes, no clock and no network."""

import math
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from warmhouse.heating.v1 import heating_pb2
from warmhouse.heating.v1.heating_pb2 import HeatingPlan, ScheduleSlot

from services.simulator import flash
from services.simulator.heating import (
    HeatingFirmware,
    Setpoint,
    Slot,
    factory_plan,
    next_slot_start,
    slot_in_force,
    slots_of,
    start_instant,
    start_minute,
    zone_of,
)

# 2030-01-07 is a Monday.
MONDAY = datetime(2030, 1, 7, tzinfo=UTC)
BERLIN = ZoneInfo("Europe/Berlin")


def at(days: int, clock: str, zone: Any = UTC) -> datetime:
    """`clock` ("HH:MM") on the day `days` after MONDAY, local to `zone`, as UTC."""
    hours, minutes = (int(part) for part in clock.split(":"))
    day = MONDAY.date() + timedelta(days=days)
    local = datetime(day.year, day.month, day.day, hours, minutes, tzinfo=zone)
    return local.astimezone(UTC)


def slot(day: int, start: str, celsius: float) -> ScheduleSlot:
    return ScheduleSlot(day=day, start_time=start, target_celsius=celsius)  # type: ignore[arg-type]


def plan(version: int = 1, **fields: Any) -> HeatingPlan:
    """The factory plan with `fields` replaced (slots= for the schedule)."""
    result = factory_plan()
    result.version = version
    slots = fields.pop("slots", None)
    if slots is not None:
        result.schedule.slots.extend(slots)
    for name, value in fields.items():
        if isinstance(value, datetime):
            getattr(result, name).FromDatetime(value)
        elif hasattr(value, "DESCRIPTOR"):
            getattr(result, name).CopyFrom(value)
        else:
            setattr(result, name, value)
    return result


def firmware(**fields: Any) -> HeatingFirmware:
    return HeatingFirmware(plan(**fields))


def decided(device: HeatingFirmware, now: datetime) -> tuple[float, str]:
    point = device.decide(now)
    return point.target_celsius, heating_pb2.HeatingReason.Name(point.reason)


# Three slots on Monday, one on Wednesday, one late on Sunday.
WEEK = [
    slot(heating_pb2.MONDAY, "12:00", 19.0),
    slot(heating_pb2.MONDAY, "06:00", 21.0),
    slot(heating_pb2.MONDAY, "22:00", 17.0),
    slot(heating_pb2.WEDNESDAY, "07:30", 22.0),
    slot(heating_pb2.SUNDAY, "23:00", 16.0),
]


def auto(**fields: Any) -> HeatingFirmware:
    return firmware(mode=heating_pb2.AUTO, slots=WEEK, **fields)


# The factory defaults.


def test_a_device_without_a_plan_runs_the_defaults_as_version_0() -> None:
    device = HeatingFirmware()

    point = device.decide(MONDAY)

    assert device.version == 0
    assert point == Setpoint(
        target_celsius=20.0,
        reason=heating_pb2.MANUAL_TARGET,
        mode=heating_pb2.HEAT,
        preset=heating_pb2.NONE,
        preset_end_time=None,
        schedule_slot=None,
        window_open=False,
        window_open_until=None,
    )
    assert device.rules.frost_floor_celsius == 7.0
    assert device.rules.window.enabled
    assert device.status(MONDAY, heater_on=False, temperature=None).plan_version == 0


# The schedule.


@pytest.mark.parametrize(
    ("days", "clock", "celsius"),
    [
        (0, "05:59", 16.0),  # before the week's first slot: the week's last (Sunday 23:00)
        (0, "06:00", 21.0),  # a slot holds from its very start
        (0, "11:59", 21.0),
        (0, "12:00", 19.0),  # several a day
        (0, "22:30", 17.0),
        (1, "09:00", 17.0),  # Monday's last runs through Tuesday
        (2, "07:29", 17.0),
        (2, "07:30", 22.0),
        (6, "22:59", 22.0),  # Wednesday's runs until Sunday 23:00
        (6, "23:30", 16.0),
    ],
)
def test_the_slot_in_force_is_the_latest_started_wrapping_over_the_week(
    days: int, clock: str, celsius: float
) -> None:
    device = auto()

    point = device.decide(at(days, clock))

    assert point.reason == heating_pb2.SCHEDULE
    assert point.target_celsius == celsius
    assert point.schedule_slot is not None
    assert point.schedule_slot.target_celsius == celsius


def test_the_slot_is_reported_as_the_plan_gave_it() -> None:
    point = auto().decide(at(2, "08:00"))
    assert point.schedule_slot is not None
    assert point.schedule_slot.to_proto() == slot(heating_pb2.WEDNESDAY, "07:30", 22.0)


def test_a_single_slot_holds_all_week() -> None:
    one = (Slot(3 * 24 * 60 + 9 * 60, 18.5),)  # Thursday 09:00
    for days in range(7):
        in_force = slot_in_force(one, UTC, at(days, "00:00"))
        assert in_force == one[0]


def test_the_schedule_runs_in_the_plans_time_zone_across_daylight_saving() -> None:
    daily = [slot(day, "07:00", 22.0) for day in range(1, 8)] + [
        slot(day, "22:00", 17.0) for day in range(1, 8)
    ]
    device = firmware(mode=heating_pb2.AUTO, slots=daily, time_zone="Europe/Berlin")
    winter_morning = datetime(2030, 1, 7, 6, 0, tzinfo=UTC)  # 07:00 CET
    summer_morning = datetime(2030, 7, 1, 5, 0, tzinfo=UTC)  # 07:00 CEST

    assert decided(device, winter_morning - timedelta(minutes=1)) == (17.0, "SCHEDULE")
    assert decided(device, winter_morning) == (22.0, "SCHEDULE")
    assert decided(device, summer_morning - timedelta(minutes=1)) == (17.0, "SCHEDULE")
    assert decided(device, summer_morning) == (22.0, "SCHEDULE")
    # The clocks go forward on Sunday 2030-03-31: Saturday's 07:00 is 06:00 UTC, Sunday's 05:00.
    saturday_noon = datetime(2030, 3, 30, 12, 0, tzinfo=UTC)
    assert device.next_change(saturday_noon) == datetime(2030, 3, 30, 21, 0, tzinfo=UTC)
    saturday_night = datetime(2030, 3, 30, 21, 0, tzinfo=UTC)
    assert device.next_change(saturday_night) == datetime(2030, 3, 31, 5, 0, tzinfo=UTC)


# Daylight saving in Berlin, 2030: on Sunday 2030-03-31 the clocks skip 02:00-03:00 CET
# (they jump at 01:00 UTC); on Sunday 2030-10-27 they repeat 02:00-03:00 (00:00-01:00 UTC
# in CEST, then 01:00-02:00 UTC in CET).
SPRING = datetime(2030, 3, 31, tzinfo=UTC)
AUTUMN = datetime(2030, 10, 27, tzinfo=UTC)
SUNDAY_NIGHT = [
    slot(heating_pb2.SATURDAY, "22:00", 16.0),
    slot(heating_pb2.SUNDAY, "01:30", 17.0),
    slot(heating_pb2.SUNDAY, "02:30", 21.0),  # skipped in spring, repeated in autumn
    slot(heating_pb2.SUNDAY, "03:30", 19.0),
]


def berlin_night() -> HeatingFirmware:
    return firmware(mode=heating_pb2.AUTO, slots=SUNDAY_NIGHT, time_zone="Europe/Berlin")


def minutes(start: datetime, count: int) -> list[datetime]:
    return [start + timedelta(minutes=minute) for minute in range(count)]


def slots_taken_up(device: HeatingFirmware, times: list[datetime]) -> list[tuple[datetime, str]]:
    """When the slot in force changed, minute by minute, and to which start."""
    changes: list[tuple[datetime, str]] = []
    for now in times:
        in_force = device.decide(now).schedule_slot
        assert in_force is not None
        if not changes or changes[-1][1] != in_force.start_time:
            changes.append((now, in_force.start_time))
    return changes


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        # 01:30 CET; 02:30 does not exist: as the gap ends (03:00 CEST); 03:30 CEST.
        (SPRING, [(0, 30), (1, 0), (1, 30)]),
        # 01:30 CEST; 02:30 the first time (CEST), never again in CET; 03:30 CET.
        (AUTUMN, [(23, 30), (0, 30), (2, 30)]),
    ],
)
def test_across_a_daylight_saving_shift_each_slot_starts_once_and_in_order(
    day: datetime, expected: list[tuple[int, int]]
) -> None:
    device = berlin_night()
    times = minutes(day - timedelta(hours=3), 8 * 60)  # Saturday 21:00 UTC to Sunday 05:00

    changes = slots_taken_up(device, times)

    starts = [
        (day - timedelta(days=1) if hours > 12 else day) + timedelta(hours=hours, minutes=mins)
        for hours, mins in expected
    ]
    assert changes == [
        (times[0], "22:00"),
        (starts[0], "01:30"),
        (starts[1], "02:30"),
        (starts[2], "03:30"),
    ]
    next_saturday = datetime.combine(day.date() + timedelta(days=6), time(22), BERLIN)
    for now in times:  # the next change foreseen is the next one taken up
        coming = [start for start, _ in changes if start > now] + [next_saturday]
        assert device.next_change(now) == coming[0]


def test_starts_in_a_spring_gap_take_effect_as_it_ends_and_the_latest_is_in_force() -> None:
    in_the_gap = [
        slot(heating_pb2.SUNDAY, "02:00", 18.0),
        slot(heating_pb2.SUNDAY, "02:59", 22.0),
        slot(heating_pb2.SUNDAY, "03:00", 20.0),
        slot(heating_pb2.SUNDAY, "04:00", 17.0),
    ]
    device = firmware(mode=heating_pb2.AUTO, slots=in_the_gap, time_zone="Europe/Berlin")
    gap_end = SPRING + timedelta(hours=1)

    assert start_instant(SPRING.date(), 2 * 60 + 30, BERLIN) == gap_end
    assert start_instant(AUTUMN.date(), 2 * 60 + 30, BERLIN) == AUTUMN + timedelta(minutes=30)
    assert device.next_change(gap_end - timedelta(seconds=1)) == gap_end
    assert decided(device, gap_end) == (20.0, "SCHEDULE")
    assert device.next_change(gap_end) == SPRING + timedelta(hours=2)  # 04:00 CEST


@pytest.mark.parametrize(
    ("overridden", "ends"),
    [
        # 01:45 CET: the next start, 02:30, does not exist; it comes as the gap ends.
        (SPRING + timedelta(minutes=45), SPRING + timedelta(hours=1)),
        # 02:15 CET, the repeated hour's second time: 02:30 already started; next is 03:30.
        (AUTUMN + timedelta(hours=1, minutes=15), AUTUMN + timedelta(hours=2, minutes=30)),
    ],
)
def test_an_override_in_auto_ends_at_the_real_next_start(
    overridden: datetime, ends: datetime
) -> None:
    device = berlin_night()
    device.override(overridden, 25.0)

    assert decided(device, ends - timedelta(seconds=1)) == (25.0, "LOCAL_OVERRIDE")
    assert device.next_change(overridden) == ends
    assert decided(device, ends)[1] == "SCHEDULE"


def test_an_unknown_time_zone_means_utc() -> None:
    device = auto(time_zone="Mars/Olympus_Mons")
    assert zone_of("Mars/Olympus_Mons") is UTC
    assert zone_of("../../etc/passwd") is UTC
    assert zone_of("") is UTC
    assert decided(device, at(0, "06:00")) == (21.0, "SCHEDULE")


def test_auto_without_slots_holds_the_target() -> None:
    device = firmware(mode=heating_pb2.AUTO, target_celsius=19.5)
    assert decided(device, MONDAY) == (19.5, "MANUAL_TARGET")
    assert device.next_change(MONDAY) is None


@pytest.mark.parametrize(
    ("text", "minutes"),
    [
        ("00:00", 0),
        ("07:30", 450),
        ("23:59", 1439),
        ("7:30", None),
        ("24:00", None),
        ("12:60", None),
        ("ab:cd", None),
        ("07:30 ", None),
        ("", None),
        ("\u0660\u0667:\u0663\u0660", None),  # Arabic-Indic digits are digits, not HH:MM
    ],
)
def test_start_times_must_be_hh_mm(text: str, minutes: int | None) -> None:
    assert start_minute(text) == minutes


def test_unusable_slots_are_left_out_and_the_first_of_two_alike_kept() -> None:
    usable = slots_of(
        [
            slot(heating_pb2.TUESDAY, "08:00", 20.0),
            slot(heating_pb2.MONDAY, "8:00", 30.0),  # not HH:MM
            slot(heating_pb2.DAY_OF_WEEK_UNSPECIFIED, "09:00", 30.0),
            slot(9, "09:00", 30.0),  # no such day
            slot(heating_pb2.MONDAY, "10:00", math.nan),
            slot(heating_pb2.MONDAY, "11:00", math.inf),
            slot(heating_pb2.TUESDAY, "08:00", 25.0),  # the same start again
            slot(heating_pb2.MONDAY, "07:00", 18.0),
        ]
    )
    assert [(s.day, s.start_time, s.target_celsius) for s in usable] == [
        (heating_pb2.MONDAY, "07:00", 18.0),
        (heating_pb2.TUESDAY, "08:00", 20.0),
    ]


def test_a_schedule_of_unusable_slots_holds_the_target() -> None:
    device = firmware(mode=heating_pb2.AUTO, slots=[slot(heating_pb2.MONDAY, "25:00", 30.0)])
    assert decided(device, at(0, "12:00")) == (20.0, "MANUAL_TARGET")


# The order of the rules: the first that applies wins.


def opened_window(device: HeatingFirmware, now: datetime) -> None:
    """A sudden fall of 2 °C within a minute before `now`."""
    device.observe(now - timedelta(minutes=1), 20.0)
    device.observe(now, 18.0)


def test_an_open_window_comes_before_everything() -> None:
    device = auto(preset=heating_pb2.BOOST)
    device.override(MONDAY, 25.0)
    opened_window(device, at(0, "10:00"))
    assert decided(device, at(0, "10:00")) == (7.0, "WINDOW_OPEN")
    off = firmware(mode=heating_pb2.OFF)
    opened_window(off, MONDAY)
    assert decided(off, MONDAY) == (7.0, "WINDOW_OPEN")


def test_mode_off_holds_the_frost_floor_before_a_preset_or_an_override() -> None:
    device = firmware(mode=heating_pb2.OFF, preset=heating_pb2.COMFORT)
    device.override(MONDAY, 25.0)
    point = device.decide(MONDAY)
    assert (point.target_celsius, point.reason, point.mode) == (
        7.0,
        heating_pb2.FROST_PROTECTION,
        heating_pb2.OFF,
    )
    assert point.preset == heating_pb2.COMFORT  # the plan's, still in force


@pytest.mark.parametrize(
    ("preset", "celsius"),
    [
        (heating_pb2.COMFORT, 21.0),
        (heating_pb2.ECO, 18.0),
        (heating_pb2.AWAY, 16.0),
        (heating_pb2.BOOST, 30.0),
        (heating_pb2.FROST, 7.0),
    ],
)
def test_a_preset_comes_before_an_override_and_the_mode(preset: int, celsius: float) -> None:
    device = auto(preset=preset)
    device.override(MONDAY, 25.0)
    assert decided(device, at(0, "08:00")) == (celsius, "PRESET")


def test_a_preset_holds_until_its_end_time_then_the_mode_decides() -> None:
    end = at(0, "09:00")
    device = auto(preset=heating_pb2.COMFORT, preset_end_time=end)

    during = device.decide(end - timedelta(seconds=1))
    after = device.decide(end)

    assert (during.target_celsius, during.preset, during.preset_end_time) == (
        21.0,
        heating_pb2.COMFORT,
        end,
    )
    assert (after.target_celsius, after.reason) == (21.0, heating_pb2.SCHEDULE)  # Monday 06:00
    assert (after.preset, after.preset_end_time) == (heating_pb2.NONE, None)


def test_an_override_comes_before_the_target_and_the_schedule() -> None:
    heat = firmware(target_celsius=19.0)
    schedule = auto()
    heat.override(MONDAY, 23.5)
    schedule.override(at(0, "08:00"), 23.5)
    assert decided(heat, MONDAY) == (23.5, "LOCAL_OVERRIDE")
    assert decided(schedule, at(0, "08:00")) == (23.5, "LOCAL_OVERRIDE")


def test_turn_off_holds_the_frost_floor_until_turn_on() -> None:
    device = firmware(target_celsius=22.0, preset=heating_pb2.COMFORT)
    device.turn_off()
    off = device.decide(MONDAY)
    device.turn_on()
    on = device.decide(MONDAY)
    assert (off.target_celsius, off.reason, off.mode) == (
        7.0,
        heating_pb2.FROST_PROTECTION,
        heating_pb2.OFF,
    )
    assert (on.target_celsius, on.reason, on.mode) == (21.0, heating_pb2.PRESET, heating_pb2.HEAT)


def test_turn_off_lasts_until_the_next_plan() -> None:
    device = firmware()
    device.turn_off()
    assert device.apply(plan(version=2))
    assert decided(device, MONDAY) == (20.0, "MANUAL_TARGET")


# The bounds: the frost floor from every path, the maximum target.


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (lambda: firmware(mode=heating_pb2.OFF), "FROST_PROTECTION"),
        (lambda: firmware(preset=heating_pb2.FROST), "PRESET"),
        (lambda: firmware(target_celsius=-40.0), "MANUAL_TARGET"),
        (
            lambda: firmware(mode=heating_pb2.AUTO, slots=[slot(heating_pb2.MONDAY, "00:00", 3)]),
            "SCHEDULE",
        ),
        (lambda: firmware(preset=heating_pb2.AWAY, preset_temperatures=_cold_presets()), "PRESET"),
    ],
)
def test_nothing_goes_below_the_frost_floor(build: Any, expected: str) -> None:
    device: HeatingFirmware = build()
    assert decided(device, MONDAY) == (7.0, expected)


def _cold_presets() -> heating_pb2.PresetTemperatures:
    return heating_pb2.PresetTemperatures(comfort_celsius=1, eco_celsius=1, away_celsius=1)


def test_a_command_below_the_frost_floor_holds_the_floor() -> None:
    device = firmware()
    assert device.override(MONDAY, -50.0)
    assert decided(device, MONDAY) == (7.0, "LOCAL_OVERRIDE")


def test_an_override_is_capped_at_the_maximum_target() -> None:
    device = firmware(
        limits=heating_pb2.HeatingLimits(max_target_celsius=25, frost_floor_celsius=8)
    )
    device.override(MONDAY, 28.0)
    assert decided(device, MONDAY) == (25.0, "LOCAL_OVERRIDE")
    assert firmware(preset=heating_pb2.BOOST, limits=device.plan.limits).decide(
        MONDAY
    ).target_celsius == pytest.approx(25.0)


@pytest.mark.parametrize(
    ("limits", "floor", "maximum"),
    [
        (heating_pb2.HeatingLimits(max_target_celsius=30, frost_floor_celsius=10), 10.0, 30.0),
        # Never below 5; outside 5..15 the default.
        (heating_pb2.HeatingLimits(max_target_celsius=30, frost_floor_celsius=2), 7.0, 30.0),
        (heating_pb2.HeatingLimits(max_target_celsius=30, frost_floor_celsius=40), 7.0, 30.0),
        (heating_pb2.HeatingLimits(max_target_celsius=30, frost_floor_celsius=math.nan), 7.0, 30.0),
        # A maximum that is no number or below the floor: the default.
        (heating_pb2.HeatingLimits(max_target_celsius=math.nan, frost_floor_celsius=8), 8.0, 30.0),
        (heating_pb2.HeatingLimits(max_target_celsius=4, frost_floor_celsius=8), 8.0, 30.0),
        # The minimum does not bound the set point; a floor left at 0 is the default.
        (heating_pb2.HeatingLimits(min_target_celsius=math.inf, max_target_celsius=22), 7.0, 22.0),
        (
            heating_pb2.HeatingLimits(
                min_target_celsius=-math.inf, max_target_celsius=22, frost_floor_celsius=6
            ),
            6.0,
            22.0,
        ),
    ],
)
def test_weird_limits_fall_back_to_defaults(
    limits: heating_pb2.HeatingLimits, floor: float, maximum: float
) -> None:
    cold = firmware(mode=heating_pb2.OFF, limits=limits)
    boost = firmware(preset=heating_pb2.BOOST, limits=limits)
    assert decided(cold, MONDAY) == (floor, "FROST_PROTECTION")
    assert decided(boost, MONDAY) == (maximum, "PRESET")


def test_a_plan_without_limits_presets_or_window_detection_gets_the_defaults() -> None:
    bare = HeatingPlan(version=3, mode=heating_pb2.OFF, preset=heating_pb2.ECO)
    device = HeatingFirmware(bare)
    assert device.rules.frost_floor_celsius == 7.0
    assert device.rules.max_target_celsius == 30.0
    assert device.rules.eco_celsius == 18.0
    assert device.rules.window.enabled
    assert decided(device, MONDAY) == (7.0, "FROST_PROTECTION")


def test_malformed_fields_fall_back_to_their_defaults() -> None:
    weird = plan(
        mode=99,
        target_celsius=math.nan,
        preset=42,
        preset_temperatures=heating_pb2.PresetTemperatures(
            comfort_celsius=math.nan, eco_celsius=math.inf, away_celsius=15
        ),
        window_detection=heating_pb2.WindowDetection(
            enabled=True, drop_celsius=math.nan, within_seconds=0, pause_seconds=-5
        ),
    )
    weird.preset_end_time.seconds = 10**15  # past year 9999

    device = HeatingFirmware(weird)

    assert decided(device, MONDAY) == (20.0, "MANUAL_TARGET")
    rules = device.rules
    assert (rules.mode, rules.preset, rules.preset_end) == (
        heating_pb2.HEAT,
        heating_pb2.NONE,
        None,
    )
    assert (rules.comfort_celsius, rules.eco_celsius, rules.away_celsius) == (21.0, 18.0, 15.0)
    assert (rules.window.drop_celsius, rules.window.within, rules.window.pause) == (
        1.5,
        timedelta(seconds=300),
        timedelta(seconds=1800),
    )
    assert device.version == 1


def test_a_command_target_that_is_no_number_is_ignored() -> None:
    device = firmware()
    assert not device.override(MONDAY, math.nan)
    assert decided(device, MONDAY) == (20.0, "MANUAL_TARGET")


# Plans and their versions.


def test_an_equal_version_is_applied_again_and_a_lower_one_ignored() -> None:
    device = firmware(version=5, target_celsius=19.0)

    assert device.apply(plan(version=5, target_celsius=21.0))
    assert decided(device, MONDAY) == (21.0, "MANUAL_TARGET")
    assert not device.apply(plan(version=4, target_celsius=25.0))
    assert decided(device, MONDAY) == (21.0, "MANUAL_TARGET")
    assert device.version == 5
    assert device.apply(plan(version=6, target_celsius=18.0))
    assert (device.version, decided(device, MONDAY)) == (6, (18.0, "MANUAL_TARGET"))


def test_a_newer_plan_ends_an_override_and_the_same_plan_sent_again_keeps_it() -> None:
    device = firmware(version=5)
    device.override(MONDAY, 24.0)

    assert not device.apply(plan(version=4))
    assert decided(device, MONDAY) == (24.0, "LOCAL_OVERRIDE")  # an older plan changes nothing
    # Sent again after a reconnect: applied, but nothing new was asked.
    assert device.apply(plan(version=5, target_celsius=20.0))
    assert device.version == 5
    assert decided(device, MONDAY) == (24.0, "LOCAL_OVERRIDE")
    device.turn_off()
    assert device.apply(plan(version=5))
    assert device.local_off
    assert device.apply(plan(version=6))
    assert not device.local_off
    assert decided(device, MONDAY) == (20.0, "MANUAL_TARGET")


def test_in_auto_an_override_lasts_until_the_next_slot_starts() -> None:
    device = auto()
    device.override(at(0, "10:00"), 24.0)

    assert decided(device, at(0, "11:59")) == (24.0, "LOCAL_OVERRIDE")
    assert decided(device, at(0, "12:00")) == (19.0, "SCHEDULE")
    assert decided(device, at(1, "12:00")) == (17.0, "SCHEDULE")


def test_in_heat_an_override_lasts_until_the_next_plan() -> None:
    device = firmware(slots=WEEK)  # mode HEAT: the schedule does not run
    device.override(MONDAY, 24.0)
    assert decided(device, MONDAY + timedelta(days=30)) == (24.0, "LOCAL_OVERRIDE")


def test_the_plan_a_firmware_runs_is_a_copy() -> None:
    given = plan(version=7)
    device = HeatingFirmware(given)
    given.version = 100
    device.plan.version = 200
    assert device.version == 7


# The open-window detector.


def test_a_sudden_drop_opens_the_window_for_the_pause_then_heating_resumes() -> None:
    device = firmware(target_celsius=21.0)
    start = MONDAY
    device.observe(start, 20.0)
    device.observe(start + timedelta(seconds=60), 19.5)
    assert not device.decide(start + timedelta(seconds=60)).window_open

    opened = start + timedelta(seconds=120)
    device.observe(opened, 18.5)  # 1.5 below the warmest of the last 300 s
    point = device.decide(opened)

    until = opened + timedelta(seconds=1800)
    assert (point.target_celsius, point.reason) == (7.0, heating_pb2.WINDOW_OPEN)
    assert (point.window_open, point.window_open_until) == (True, until)
    assert device.next_change(opened) == until
    device.observe(until - timedelta(seconds=1), 5.0)  # ignored while paused
    assert device.decide(until - timedelta(seconds=1)).window_open
    assert decided(device, until) == (21.0, "MANUAL_TARGET")
    assert device.decide(until).window_open_until is None


def test_a_fall_among_readings_looked_at_later_opens_the_window_for_the_whole_pause() -> None:
    device = firmware()
    path = [(MONDAY + timedelta(seconds=30 * step), 20.0 - 0.25 * step) for step in range(8)]
    looked = MONDAY + timedelta(hours=1)

    device.observe_path(path, looked)  # 1.5 °C down 180 s after the first reading

    point = device.decide(looked)
    assert (point.window_open, point.window_open_until) == (True, looked + timedelta(minutes=30))


def test_readings_taken_during_the_pause_are_ignored_after_it() -> None:
    device = firmware()
    opened_window(device, MONDAY)
    until = MONDAY + timedelta(minutes=30)
    during = [(until - timedelta(seconds=60), 20.0), (until - timedelta(seconds=1), 19.0)]

    device.observe_path([*during, (until, 18.0)], until)  # 2 °C below a reading in the pause

    assert not device.decide(until).window_open


def test_after_the_pause_the_detector_starts_over() -> None:
    device = firmware()
    opened_window(device, MONDAY)
    until = MONDAY + timedelta(seconds=1800)

    # Against the 20 °C of before the pause these would be far more than 1.5 °C down.
    device.observe(until, 12.0)
    device.observe(until + timedelta(seconds=60), 11.0)
    assert not device.decide(until + timedelta(seconds=60)).window_open
    device.observe(until + timedelta(seconds=120), 10.5)
    assert device.decide(until + timedelta(seconds=120)).window_open


def test_a_slow_fall_is_no_open_window() -> None:
    device = firmware()
    for minute in range(60):  # 0.1 °C a minute: 0.5 °C in any 5 minutes, 6 °C in all
        device.observe(MONDAY + timedelta(minutes=minute), 20.0 - 0.1 * minute)
    assert not device.decide(MONDAY + timedelta(minutes=59)).window_open


def test_only_readings_within_the_span_count() -> None:
    device = firmware()
    device.observe(MONDAY, 20.0)
    device.observe(MONDAY + timedelta(seconds=301), 18.0)
    assert not device.decide(MONDAY + timedelta(seconds=301)).window_open


def test_the_drop_and_span_come_from_the_plan() -> None:
    device = firmware(
        window_detection=heating_pb2.WindowDetection(
            enabled=True, drop_celsius=3.0, within_seconds=600, pause_seconds=60
        )
    )
    device.observe(MONDAY, 20.0)
    device.observe(MONDAY + timedelta(seconds=500), 17.5)
    assert not device.decide(MONDAY + timedelta(seconds=500)).window_open
    device.observe(MONDAY + timedelta(seconds=550), 17.0)
    point = device.decide(MONDAY + timedelta(seconds=550))
    assert point.window_open_until == MONDAY + timedelta(seconds=610)


def test_with_detection_disabled_no_window_opens_and_an_open_one_closes() -> None:
    device = firmware(version=1)
    opened_window(device, MONDAY)
    assert device.decide(MONDAY).window_open

    off = heating_pb2.WindowDetection(enabled=False, drop_celsius=1.5)
    device.apply(plan(version=2, window_detection=off))
    opened_window(device, MONDAY + timedelta(minutes=10))

    assert not device.decide(MONDAY + timedelta(minutes=10)).window_open


# When the set point may change next.


def test_next_change_is_the_soonest_of_slot_preset_end_and_window_pause() -> None:
    assert firmware().next_change(MONDAY) is None
    assert auto().next_change(at(0, "10:00")) == at(0, "12:00")
    assert auto().next_change(at(0, "12:00")) == at(0, "22:00")  # a start is no longer next
    assert auto().next_change(at(6, "23:30")) == at(7, "06:00")  # over the week's end
    preset_end = at(0, "11:00")
    boosted = auto(preset=heating_pb2.BOOST, preset_end_time=preset_end)
    assert boosted.next_change(at(0, "10:00")) == preset_end
    assert boosted.next_change(preset_end) == at(0, "12:00")  # ended: no longer a change
    heat_with_end = firmware(preset=heating_pb2.ECO, preset_end_time=preset_end)
    assert heat_with_end.next_change(at(0, "10:00")) == preset_end
    opened = auto()
    opened_window(opened, at(0, "11:50"))
    assert opened.next_change(at(0, "11:50")) == at(0, "12:00")
    opened_window(opened, at(0, "12:30"))
    assert opened.next_change(at(0, "12:30")) == at(0, "13:00")  # the pause's end


def test_next_slot_start_is_strictly_later() -> None:
    slots = slots_of(WEEK)
    assert next_slot_start(slots, UTC, at(0, "06:00")) == at(0, "12:00")
    assert next_slot_start(slots, UTC, at(0, "05:59") + timedelta(seconds=59)) == at(0, "06:00")
    assert next_slot_start((), UTC, MONDAY) is None
    # A zone ahead of UTC: Monday 06:00 in Berlin is Monday 05:00 UTC.
    assert next_slot_start(slots, BERLIN, at(0, "04:00")) == at(0, "06:00", BERLIN)


# The status report.


def test_the_status_says_what_the_firmware_does_and_when() -> None:
    end = at(0, "09:00")
    device = auto(version=9, preset=heating_pb2.COMFORT, preset_end_time=end)

    during_preset = device.status(at(0, "08:00"), heater_on=True, temperature=19.25)
    scheduled = device.status(at(0, "10:00"), heater_on=False, temperature=None)
    opened_window(device, at(0, "11:00"))
    window = device.status(at(0, "11:00"), heater_on=False, temperature=18.0)

    assert during_preset.plan_version == 9
    assert (during_preset.preset, during_preset.reason) == (heating_pb2.COMFORT, heating_pb2.PRESET)
    assert during_preset.preset_end_time.ToDatetime(tzinfo=UTC) == end
    assert (during_preset.heater_on, during_preset.temperature_celsius) == (True, 19.25)
    assert during_preset.device_time.ToDatetime(tzinfo=UTC) == at(0, "08:00")
    assert not during_preset.HasField("schedule_slot")
    assert scheduled.mode == heating_pb2.AUTO
    assert (scheduled.preset, scheduled.HasField("preset_end_time")) == (heating_pb2.NONE, False)
    assert scheduled.schedule_slot == slot(heating_pb2.MONDAY, "06:00", 21.0)
    assert not scheduled.HasField("temperature_celsius")
    assert (window.window_open, window.reason, window.target_celsius) == (
        True,
        heating_pb2.WINDOW_OPEN,
        7.0,
    )
    assert window.window_open_until.ToDatetime(tzinfo=UTC) == at(0, "11:30")
    assert not scheduled.HasField("window_open_until")


# The plan's storage.


def test_a_stored_plan_reads_back_the_same(tmp_path: Path) -> None:
    path = flash.plan_path(tmp_path / "flash", "device-1")
    stored = plan(version=12, mode=heating_pb2.AUTO, slots=WEEK, time_zone="Europe/Berlin")

    flash.save_plan(path, stored)
    flash.save_plan(path, stored)  # replacing is fine

    assert flash.load_plan(path) == stored
    assert HeatingFirmware(flash.load_plan(path)).version == 12
    assert [entry.name for entry in path.parent.iterdir()] == [path.name]  # no temp file left


def test_no_stored_plan_or_a_corrupt_one_reads_as_none(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.plan"
    corrupt.write_bytes(b"\xff\xff\xff")
    huge = tmp_path / "huge.plan"
    huge.write_bytes(b"\x00" * (flash.MAX_PLAN_BYTES + 1))

    assert flash.load_plan(tmp_path / "missing.plan") is None
    assert flash.load_plan(corrupt) is None
    assert flash.load_plan(huge) is None
    assert flash.load_plan(tmp_path) is None  # a directory


def test_a_temporary_file_left_by_a_write_cut_short_is_removed_on_loading(tmp_path: Path) -> None:
    path = flash.plan_path(tmp_path, "device-1")
    flash.save_plan(path, plan(version=4))
    leftover = path.with_name(f"{path.name}.tmp")
    leftover.write_bytes(b"half a pl")

    loaded = flash.load_plan(path)

    assert loaded is not None
    assert loaded.version == 4
    assert [entry.name for entry in tmp_path.iterdir()] == [path.name]


@pytest.mark.parametrize(
    "device_id", ["../../etc/passwd", ".hidden", "a/b", "a b", "..", "é", "x" * 300]
)
def test_a_device_id_that_is_no_plain_file_name_is_made_one(tmp_path: Path, device_id: str) -> None:
    path = flash.plan_path(tmp_path, device_id)
    assert path.parent == tmp_path
    assert not path.name.startswith(".")
    assert len(path.name) < 128


def test_plan_paths_keep_plain_ids_and_never_share_a_file(tmp_path: Path) -> None:
    plain = "3f0c1b2a-5d6e-4f70-8a9b-0c1d2e3f4a5b"
    assert flash.plan_path(tmp_path, plain) == tmp_path / f"{plain}.plan"
    similar = ["a/b", "a_b", "a?b", "a b"]
    assert len({flash.plan_path(tmp_path, device_id) for device_id in similar}) == len(similar)
