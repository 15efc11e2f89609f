"""The heating firmware of a HEATER or CONTROLLER: the set point it holds, decided on the device.

It runs the last HeatingPlan it applied (the factory defaults, version 0, until
the first), a local override and a local OFF from commands, and an open-window
detector fed with the room's temperature. The rule is heating.proto's: the
first of window, OFF, preset, override, HEAT and AUTO that applies wins, then
the frost floor and the maximum target bound it.

Pure: no clock of its own, no I/O, no asyncio. Times are aware datetimes on
the device's clock (SimClock.now()), which the schedule and presets run on.
The schedule's local start times become instants (`start_instant`) before
anything compares them with the clock, so across a daylight-saving shift
each slot starts once, in order, when `next_change` said it would.
The cloud checks every plan before sending it; the firmware still must not
fail on a malformed one, so what it cannot use it replaces by the default.
"""

import bisect
import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import TypeAlias

from warmhouse.heating.v1 import heating_pb2
from warmhouse.heating.v1.heating_pb2 import HeatingPlan, HeatingStatus, ScheduleSlot

from services.runtime.heating_model import (
    DEFAULT_AWAY_CELSIUS,
    DEFAULT_COMFORT_CELSIUS,
    DEFAULT_DROP_CELSIUS,
    DEFAULT_ECO_CELSIUS,
    DEFAULT_FROST_FLOOR_CELSIUS,
    DEFAULT_MAX_TARGET_CELSIUS,
    DEFAULT_MIN_TARGET_CELSIUS,
    DEFAULT_PAUSE_SECONDS,
    DEFAULT_TARGET_CELSIUS,
    DEFAULT_TIME_ZONE,
    DEFAULT_WITHIN_SECONDS,
    DROP_BOUNDS,
    FROST_FLOOR_BOUNDS,
    PAUSE_SECONDS_BOUNDS,
    START_TIME,
    WITHIN_SECONDS_BOUNDS,
    time_zone,
)

Mode: TypeAlias = heating_pb2.HeatingMode.ValueType
Preset: TypeAlias = heating_pb2.Preset.ValueType
Reason: TypeAlias = heating_pb2.HeatingReason.ValueType

# The factory defaults are the Device service's (services/runtime/heating_model.py).
DEFAULT_MODE = heating_pb2.HEAT

MINUTES_PER_DAY = 24 * 60
DAYS_PER_WEEK = 7
_MODES = frozenset({heating_pb2.OFF, heating_pb2.HEAT, heating_pb2.AUTO})
_PRESETS = frozenset(
    {
        heating_pb2.NONE,
        heating_pb2.COMFORT,
        heating_pb2.ECO,
        heating_pb2.AWAY,
        heating_pb2.BOOST,
        heating_pb2.FROST,
    }
)


def factory_plan() -> HeatingPlan:
    """What a device runs before its first plan: the defaults, version 0."""
    return HeatingPlan(
        version=0,
        mode=DEFAULT_MODE,
        target_celsius=DEFAULT_TARGET_CELSIUS,
        preset=heating_pb2.NONE,
        time_zone=DEFAULT_TIME_ZONE,
        preset_temperatures=heating_pb2.PresetTemperatures(
            comfort_celsius=DEFAULT_COMFORT_CELSIUS,
            eco_celsius=DEFAULT_ECO_CELSIUS,
            away_celsius=DEFAULT_AWAY_CELSIUS,
        ),
        limits=heating_pb2.HeatingLimits(
            min_target_celsius=DEFAULT_MIN_TARGET_CELSIUS,
            max_target_celsius=DEFAULT_MAX_TARGET_CELSIUS,
            frost_floor_celsius=DEFAULT_FROST_FLOOR_CELSIUS,
        ),
        window_detection=heating_pb2.WindowDetection(
            enabled=True,
            drop_celsius=DEFAULT_DROP_CELSIUS,
            within_seconds=DEFAULT_WITHIN_SECONDS,
            pause_seconds=DEFAULT_PAUSE_SECONDS,
        ),
    )


@dataclass(frozen=True, order=True)
class Slot:
    """A schedule slot the firmware can use: its start as minutes since Monday 00:00 local."""

    week_minute: int
    target_celsius: float

    @property
    def day(self) -> heating_pb2.DayOfWeek.ValueType:
        return heating_pb2.DayOfWeek.ValueType(self.week_minute // MINUTES_PER_DAY + 1)

    @property
    def start_time(self) -> str:
        hours, minutes = divmod(self.week_minute % MINUTES_PER_DAY, 60)
        return f"{hours:02d}:{minutes:02d}"

    def to_proto(self) -> ScheduleSlot:
        return ScheduleSlot(
            day=self.day, start_time=self.start_time, target_celsius=self.target_celsius
        )


@dataclass(frozen=True)
class WindowRules:
    enabled: bool
    drop_celsius: float
    within: timedelta
    pause: timedelta


@dataclass(frozen=True)
class Rules:
    """A plan as the firmware runs it: every field usable, defaults where the plan's were not."""

    mode: Mode
    target_celsius: float
    preset: Preset
    preset_end: datetime | None
    slots: tuple[Slot, ...]  # by week_minute, no two alike
    zone: tzinfo
    comfort_celsius: float
    eco_celsius: float
    away_celsius: float
    max_target_celsius: float
    frost_floor_celsius: float
    window: WindowRules

    def bounded(self, celsius: float) -> float:
        """Raised to the frost floor, capped at the maximum target; the floor wins."""
        return max(self.frost_floor_celsius, min(self.max_target_celsius, celsius))


def rules_of(plan: HeatingPlan) -> Rules:
    limits, presets = plan.limits, plan.preset_temperatures
    frost_floor = DEFAULT_FROST_FLOOR_CELSIUS
    max_target = DEFAULT_MAX_TARGET_CELSIUS
    if plan.HasField("limits"):
        frost_floor = _in_range_or(limits.frost_floor_celsius, FROST_FLOOR_BOUNDS, frost_floor)
        if math.isfinite(limits.max_target_celsius) and limits.max_target_celsius >= frost_floor:
            max_target = limits.max_target_celsius
    has_presets = plan.HasField("preset_temperatures")
    return Rules(
        mode=plan.mode if plan.mode in _MODES else DEFAULT_MODE,
        target_celsius=_finite_or(plan.target_celsius, DEFAULT_TARGET_CELSIUS),
        preset=plan.preset if plan.preset in _PRESETS else heating_pb2.NONE,
        preset_end=_datetime_or_none(plan) if plan.HasField("preset_end_time") else None,
        slots=slots_of(plan.schedule.slots),
        zone=zone_of(plan.time_zone),
        comfort_celsius=_preset_or(has_presets, presets.comfort_celsius, DEFAULT_COMFORT_CELSIUS),
        eco_celsius=_preset_or(has_presets, presets.eco_celsius, DEFAULT_ECO_CELSIUS),
        away_celsius=_preset_or(has_presets, presets.away_celsius, DEFAULT_AWAY_CELSIUS),
        max_target_celsius=max_target,
        frost_floor_celsius=frost_floor,
        window=_window_rules(plan) if plan.HasField("window_detection") else _DEFAULT_WINDOW,
    )


_DEFAULT_WINDOW = WindowRules(
    enabled=True,
    drop_celsius=DEFAULT_DROP_CELSIUS,
    within=timedelta(seconds=DEFAULT_WITHIN_SECONDS),
    pause=timedelta(seconds=DEFAULT_PAUSE_SECONDS),
)


def _window_rules(plan: HeatingPlan) -> WindowRules:
    window = plan.window_detection
    within = _in_range_or(window.within_seconds, WITHIN_SECONDS_BOUNDS, DEFAULT_WITHIN_SECONDS)
    pause = _in_range_or(window.pause_seconds, PAUSE_SECONDS_BOUNDS, DEFAULT_PAUSE_SECONDS)
    return WindowRules(
        enabled=window.enabled,
        drop_celsius=_in_range_or(window.drop_celsius, DROP_BOUNDS, DEFAULT_DROP_CELSIUS),
        within=timedelta(seconds=within),
        pause=timedelta(seconds=pause),
    )


def _finite_or(value: float, default: float) -> float:
    return value if math.isfinite(value) else default


def _preset_or(given: bool, value: float, default: float) -> float:
    return _finite_or(value, default) if given else default


def _in_range_or(value: float, bounds: tuple[float, float], default: float) -> float:
    low, high = bounds
    return value if low <= value <= high else default  # NaN is in no range


def _datetime_or_none(plan: HeatingPlan) -> datetime | None:
    """The preset's end; one a datetime cannot hold is ignored, as if unset."""
    try:
        return plan.preset_end_time.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        return None


def start_minute(text: str) -> int | None:
    """Minutes since midnight of an "HH:MM" start time; None when it is not one."""
    match = START_TIME.fullmatch(text)
    if match is None:
        return None
    return int(match.group(1)) * 60 + int(match.group(2))


def slots_of(slots: Iterable[ScheduleSlot]) -> tuple[Slot, ...]:
    """The usable slots in week order. A slot with an unknown day, a start that is not
    "HH:MM" or a target that is not a number is left out; of two at one start, the first."""
    usable: dict[int, Slot] = {}
    for slot in slots:
        minute = start_minute(slot.start_time)
        if minute is None or not 1 <= slot.day <= DAYS_PER_WEEK:
            continue
        if not math.isfinite(slot.target_celsius):
            continue
        week_minute = (slot.day - 1) * MINUTES_PER_DAY + minute
        usable.setdefault(week_minute, Slot(week_minute, slot.target_celsius))
    return tuple(sorted(usable.values()))


def zone_of(name: str) -> tzinfo:
    """The IANA zone; UTC for an empty or unknown name."""
    return time_zone(name) or UTC


def start_instant(day: date, minute: int, zone: tzinfo) -> datetime:
    """When a start at `minute` past local midnight on `day` happens, in UTC: the first
    instant whose local time reaches it.

    In the hour repeated when the clocks go back, that is its first occurrence (fold=0);
    a time the clocks skip when they go forward has none, and takes effect as the gap
    ends (time zones shift on whole minutes, so the first local minute that exists).
    """
    hours, minutes = divmod(minute, 60)
    wall = datetime(day.year, day.month, day.day, hours, minutes)
    while True:
        local = wall.replace(tzinfo=zone)
        instant = local.astimezone(UTC)
        if instant.astimezone(zone).replace(tzinfo=None) == wall:
            return instant
        wall += timedelta(minutes=1)


def starts_on(slots: tuple[Slot, ...], zone: tzinfo, day: date) -> list[tuple[datetime, Slot]]:
    """The slots of `day`'s weekday with the instants they start on `day`, in order (two
    in one spring gap start together: the later one is the one in force)."""
    weekday = day.weekday() * MINUTES_PER_DAY
    first = bisect.bisect_left(slots, weekday, key=lambda slot: slot.week_minute)
    last = bisect.bisect_left(slots, weekday + MINUTES_PER_DAY, key=lambda slot: slot.week_minute)
    return [
        (start_instant(day, slot.week_minute - weekday, zone), slot) for slot in slots[first:last]
    ]


def slot_in_force(slots: tuple[Slot, ...], zone: tzinfo, now: datetime) -> Slot | None:
    """The slot that started last at or before `now`, looking back over the past week (so
    the week's last slot runs into its first). None without slots."""
    today = now.astimezone(zone).date()
    for days_back in range(DAYS_PER_WEEK + 1):
        started = [
            slot
            for start, slot in starts_on(slots, zone, today - timedelta(days=days_back))
            if start <= now
        ]
        if started:
            return started[-1]
    return None


def next_slot_start(slots: tuple[Slot, ...], zone: tzinfo, now: datetime) -> datetime | None:
    """When the next slot starts, strictly after `now` (UTC); None without slots."""
    today = now.astimezone(zone).date()
    for days_ahead in range(DAYS_PER_WEEK + 1):
        for start, _ in starts_on(slots, zone, today + timedelta(days=days_ahead)):
            if start > now:
                return start
    return None


@dataclass(frozen=True)
class Setpoint:
    """What the firmware decided, and why: all a HeatingStatus says but the readings."""

    target_celsius: float
    reason: Reason
    # OFF also under a local OFF.
    mode: Mode
    # The plan's preset while it lasts; NONE once ended.
    preset: Preset
    preset_end_time: datetime | None
    # Only when the reason is SCHEDULE.
    schedule_slot: Slot | None
    window_open: bool
    window_open_until: datetime | None


class HeatingFirmware:
    """The firmware's state. `apply` plans, `observe` temperatures, `decide` the set point."""

    def __init__(self, plan: HeatingPlan | None = None) -> None:
        self._plan = factory_plan()
        self.rules = rules_of(self._plan)
        self._override_celsius: float | None = None
        # In AUTO an override lasts until the next slot starts; None: until the next plan.
        self._override_until: datetime | None = None
        self.local_off = False
        self._window_until: datetime | None = None
        # The candidates for the warmest recent temperature, oldest (and warmest) first.
        self._recent: deque[tuple[datetime, float]] = deque()
        if plan is not None:
            self.apply(plan)

    @property
    def version(self) -> int:
        return self._plan.version

    @property
    def plan(self) -> HeatingPlan:
        """A copy of the plan it runs."""
        plan = HeatingPlan()
        plan.CopyFrom(self._plan)
        return plan

    def apply(self, plan: HeatingPlan) -> bool:
        """Run `plan` unless it is older than the current one (the same version is applied
        again, never ignored). A newer plan ends a local override and a local OFF; the
        same one sent again (after a reconnect) leaves them, as nothing new was asked."""
        if plan.version < self._plan.version:
            return False
        newer = plan.version > self._plan.version
        self._plan = HeatingPlan()
        self._plan.CopyFrom(plan)
        self.rules = rules_of(self._plan)
        if newer:
            self._override_celsius = None
            self._override_until = None
            self.local_off = False
        if not self.rules.window.enabled:
            self._close_window()
        return True

    def override(self, now: datetime, target_celsius: float) -> bool:
        """A SET_TARGET_TEMPERATURE command; False (and ignored) for a target that is no number."""
        if not math.isfinite(target_celsius):
            return False
        self._override_celsius = target_celsius
        self._override_until = None
        if self.rules.mode == heating_pb2.AUTO:
            self._override_until = next_slot_start(self.rules.slots, self.rules.zone, now)
        return True

    def turn_off(self) -> None:
        """A TURN_OFF command: mode OFF (the frost floor still held) until TURN_ON or a plan."""
        self.local_off = True

    def turn_on(self) -> None:
        self.local_off = False

    # The open-window detector.

    def observe(self, now: datetime, celsius: float) -> None:
        """A temperature reading, taken and looked at `now` (see `observe_path`)."""
        self.observe_path([(now, celsius)], now)

    def observe_path(self, readings: Iterable[tuple[datetime, float]], now: datetime) -> None:
        """The readings since the last look, oldest first, looked at `now`. A fall of
        drop_celsius from the warmest reading within within_seconds before it opens the
        window, from `now`, for pause_seconds (the whole pause, however late the look);
        readings taken during the pause are ignored, and detection then starts over."""
        paused_until = self._window_until
        if paused_until is not None:
            if now < paused_until:
                return
            self._close_window()
        window = self.rules.window
        if not window.enabled:
            return
        for at, celsius in readings:
            if paused_until is not None and at < paused_until:
                continue
            if math.isfinite(celsius) and self._fall_to(at, celsius) >= window.drop_celsius:
                self._window_until = now + window.pause
                self._recent.clear()
                return

    def _fall_to(self, at: datetime, celsius: float) -> float:
        """How far `celsius`, read at `at`, lies below the warmest reading within
        within_seconds before it; the reading is kept."""
        recent = self._recent
        while recent and recent[0][0] < at - self.rules.window.within:
            recent.popleft()
        # A reading no warmer than this newer one can never be the warmest again.
        while recent and recent[-1][1] <= celsius:
            recent.pop()
        recent.append((at, celsius))
        return recent[0][1] - celsius

    def window_open(self, now: datetime) -> bool:
        return self._window_until is not None and now < self._window_until

    def _close_window(self) -> None:
        self._window_until = None
        self._recent.clear()

    # Deciding.

    def decide(self, now: datetime) -> Setpoint:
        rules = self.rules
        mode = heating_pb2.OFF if self.local_off else rules.mode
        preset = self._preset_in_force(now)
        window_open = self.window_open(now)
        celsius, reason, slot = self._choose(now, mode, preset, window_open)
        return Setpoint(
            target_celsius=rules.bounded(celsius),
            reason=reason,
            mode=mode,
            preset=preset,
            preset_end_time=rules.preset_end if preset != heating_pb2.NONE else None,
            schedule_slot=slot,
            window_open=window_open,
            window_open_until=self._window_until if window_open else None,
        )

    def _choose(
        self, now: datetime, mode: Mode, preset: Preset, window_open: bool
    ) -> tuple[float, Reason, Slot | None]:
        """The first rule that applies, before the bounds."""
        rules = self.rules
        if window_open:
            return rules.frost_floor_celsius, heating_pb2.WINDOW_OPEN, None
        if mode == heating_pb2.OFF:
            return rules.frost_floor_celsius, heating_pb2.FROST_PROTECTION, None
        if preset != heating_pb2.NONE:
            return self._preset_celsius(preset), heating_pb2.PRESET, None
        if self._override_celsius is not None and (
            self._override_until is None or now < self._override_until
        ):
            return self._override_celsius, heating_pb2.LOCAL_OVERRIDE, None
        if mode == heating_pb2.AUTO:
            slot = slot_in_force(rules.slots, rules.zone, now)
            if slot is not None:
                return slot.target_celsius, heating_pb2.SCHEDULE, slot
        return rules.target_celsius, heating_pb2.MANUAL_TARGET, None

    def _preset_in_force(self, now: datetime) -> Preset:
        rules = self.rules
        if rules.preset_end is not None and now >= rules.preset_end:
            return heating_pb2.NONE
        return rules.preset

    def _preset_celsius(self, preset: Preset) -> float:
        rules = self.rules
        celsius = {
            heating_pb2.COMFORT: rules.comfort_celsius,
            heating_pb2.ECO: rules.eco_celsius,
            heating_pb2.AWAY: rules.away_celsius,
            heating_pb2.BOOST: rules.max_target_celsius,
        }
        return celsius.get(preset, rules.frost_floor_celsius)  # FROST

    def next_change(self, now: datetime) -> datetime | None:
        """The next time the set point may change without new input (a plan, a command or
        a reading): a slot's start, the preset's end, the window pause's end; None if never."""
        rules = self.rules
        times: list[datetime] = []
        if self.window_open(now):
            assert self._window_until is not None
            times.append(self._window_until)
        if rules.preset_end is not None and self._preset_in_force(now) != heating_pb2.NONE:
            times.append(rules.preset_end)
        if rules.mode == heating_pb2.AUTO:
            # Also when an override in AUTO ends: at a slot's start.
            start = next_slot_start(rules.slots, rules.zone, now)
            if start is not None:
                times.append(start)
        return min(times, default=None)

    def status(self, now: datetime, heater_on: bool, temperature: float | None) -> HeatingStatus:
        """The report of what it does at `now`, on the device's clock."""
        point = self.decide(now)
        status = HeatingStatus(
            plan_version=self.version,
            mode=point.mode,
            preset=point.preset,
            target_celsius=point.target_celsius,
            reason=point.reason,
            window_open=point.window_open,
            heater_on=heater_on,
        )
        if point.preset_end_time is not None:
            status.preset_end_time.FromDatetime(point.preset_end_time)
        if point.schedule_slot is not None:
            status.schedule_slot.CopyFrom(point.schedule_slot.to_proto())
        if point.window_open_until is not None:
            status.window_open_until.FromDatetime(point.window_open_until)
        if temperature is not None:
            status.temperature_celsius = temperature
        status.device_time.FromDatetime(now)
        return status
