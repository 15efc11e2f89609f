"""Heating: the desired state's defaults, what a change may hold and who may make it,
and how a device's report differs from what it is asked. Pure.

A plan is checked whole after every change: limits that would leave the
target, a preset temperature or a schedule slot outside them are refused,
so every plan a device receives keeps to its own limits and frost floor.
"""

import math
from collections import Counter
from datetime import UTC, datetime, timedelta

from warmhouse.device.v1 import device_pb2
from warmhouse.heating.v1 import heating_pb2

from services.runtime import heating_model as model
from services.runtime.errors import Conflict, DomainError, InvalidArgument, Throttled
from services.runtime.space_roles import Right
from services.runtime.timestamps import moment, timestamp

DEFAULT_LIMITS = heating_pb2.HeatingLimits(
    min_target_celsius=model.DEFAULT_MIN_TARGET_CELSIUS,
    max_target_celsius=model.DEFAULT_MAX_TARGET_CELSIUS,
    frost_floor_celsius=model.DEFAULT_FROST_FLOOR_CELSIUS,
)
DEFAULT_PRESETS = heating_pb2.PresetTemperatures(
    comfort_celsius=model.DEFAULT_COMFORT_CELSIUS,
    eco_celsius=model.DEFAULT_ECO_CELSIUS,
    away_celsius=model.DEFAULT_AWAY_CELSIUS,
)
DEFAULT_WINDOW = heating_pb2.WindowDetection(
    enabled=True,
    drop_celsius=model.DEFAULT_DROP_CELSIUS,
    within_seconds=model.DEFAULT_WITHIN_SECONDS,
    pause_seconds=model.DEFAULT_PAUSE_SECONDS,
)
BOOST_DEFAULT = timedelta(hours=1)
# A preset ends within this; "until changed" is a preset without an end time.
MAX_PRESET = timedelta(days=366)
SLOTS_PER_DAY = 12
# The version a device's desired state has before anyone changed it.
FIRST_VERSION = 1
# Desired changes a device takes a minute: each is a transaction, a log entry,
# an event and a plan its firmware stores; a client that keeps sending (a
# slider sending every step) is told to slow down.
CHANGES_PER_MINUTE = 30
CHANGE_WINDOW = timedelta(minutes=1)
# An open window is logged at most this often per device (and its closing
# whenever its opening was).
WINDOW_LOG_EVERY = timedelta(seconds=30)

# What a GUEST may change (Right.SET_TEMPERATURE); anything else is an operator's.
_GUEST_FIELDS = frozenset({"target_celsius"})
_CHANGEABLE = (
    "mode",
    "target_celsius",
    "preset",
    "preset_end_time",
    "schedule",
    "time_zone",
    "preset_temperatures",
    "limits",
    "window_detection",
)
_JSON_NAMES = {
    "target_celsius": "targetCelsius",
    "preset_end_time": "presetEndTime",
    "time_zone": "timeZone",
    "preset_temperatures": "presetTemperatures",
    "window_detection": "windowDetection",
}


def default_plan() -> heating_pb2.HeatingPlan:
    return heating_pb2.HeatingPlan(
        version=FIRST_VERSION,
        mode=heating_pb2.HEAT,
        target_celsius=model.DEFAULT_TARGET_CELSIUS,
        preset=heating_pb2.NONE,
        schedule=heating_pb2.WeeklySchedule(),
        time_zone=model.DEFAULT_TIME_ZONE,
        preset_temperatures=DEFAULT_PRESETS,
        limits=DEFAULT_LIMITS,
        window_detection=DEFAULT_WINDOW,
    )


def not_a_heating_device() -> DomainError:
    return DomainError("NOT_A_HEATING_DEVICE", "only a HEATER or a CONTROLLER has heating control")


def require_heating_type(device_type: str) -> None:
    if device_type not in model.HEATING_DEVICE_TYPES:
        raise not_a_heating_device()


def changed_fields(request: device_pb2.UpdateDesiredHeatingRequest) -> list[str]:
    given = {descriptor.name for descriptor, _ in request.ListFields()}
    return [name for name in _CHANGEABLE if name in given]


def required_right(fields: list[str]) -> Right:
    """A guest may set the temperature; modes, presets, schedules and limits are an operator's."""
    return Right.SET_TEMPERATURE if set(fields) <= _GUEST_FIELDS else Right.OPERATE_DEVICES


def check_request(request: device_pb2.UpdateDesiredHeatingRequest) -> list[str]:
    """The fields to change; refuses an empty change or a missing version before any lookup."""
    if request.version <= 0:
        raise InvalidArgument(
            "VERSION_REQUIRED", "version must be the desired version you read", field="version"
        )
    fields = changed_fields(request)
    if not fields:
        raise InvalidArgument("NOTHING_TO_CHANGE", "give at least one field to change")
    return fields


def count_change(window_start: datetime | None, count: int, now: datetime) -> tuple[datetime, int]:
    """The change window after one more change at `now`; Throttled beyond the limit."""
    if window_start is None or now - window_start >= CHANGE_WINDOW:
        return now, 1
    if count >= CHANGES_PER_MINUTE:
        raise Throttled(
            "TOO_MANY_CHANGES",
            f"at most {CHANGES_PER_MINUTE} changes a minute to one device's heating; try later",
        )
    return window_start, count + 1


def window_worth_logging(last_logged: datetime | None, now: datetime) -> bool:
    return last_logged is None or now - last_logged >= WINDOW_LOG_EVERY


def check_version(current: heating_pb2.HeatingPlan, expected: int) -> None:
    if expected != current.version:
        raise Conflict(
            "DESIRED_VERSION_STALE",
            f"the desired state is at version {current.version}: read it again, then change it",
            current_version=str(current.version),
        )


def changed_plan(
    current: heating_pb2.HeatingPlan,
    request: device_pb2.UpdateDesiredHeatingRequest,
    now: datetime,
) -> heating_pb2.HeatingPlan:
    """`current` with the request's fields applied and the version raised; InvalidArgument
    naming the first field that is wrong, checked against the resulting limits."""
    plan = heating_pb2.HeatingPlan()
    plan.CopyFrom(current)
    plan.version = current.version + 1
    if request.HasField("limits"):
        plan.limits.CopyFrom(_limits(request.limits))
    if request.HasField("mode"):
        plan.mode = _mode(request.mode)
    if request.HasField("target_celsius"):
        plan.target_celsius = request.target_celsius
    if request.HasField("preset") or request.HasField("preset_end_time"):
        _set_preset(plan, request, now)
    if request.HasField("schedule"):
        plan.schedule.CopyFrom(request.schedule)
    if request.HasField("time_zone"):
        plan.time_zone = _time_zone(request.time_zone)
    if request.HasField("preset_temperatures"):
        plan.preset_temperatures.CopyFrom(request.preset_temperatures)
    if request.HasField("window_detection"):
        plan.window_detection.CopyFrom(_window(request.window_detection))
    _check_temperatures(plan)
    return plan


def _limits(limits: heating_pb2.HeatingLimits) -> heating_pb2.HeatingLimits:
    low, high = model.TARGET_BOUNDS
    for name, value in (
        ("minTargetCelsius", limits.min_target_celsius),
        ("maxTargetCelsius", limits.max_target_celsius),
    ):
        _within(value, low, high, f"limits.{name}")
    _within(limits.frost_floor_celsius, *model.FROST_FLOOR_BOUNDS, "limits.frostFloorCelsius")
    if limits.min_target_celsius > limits.max_target_celsius:
        raise InvalidArgument(
            "INVALID_LIMITS",
            "limits.minTargetCelsius must not be above limits.maxTargetCelsius",
            field="limits",
        )
    if limits.frost_floor_celsius > limits.max_target_celsius:
        raise InvalidArgument(
            "INVALID_LIMITS",
            "limits.frostFloorCelsius must not be above limits.maxTargetCelsius",
            field="limits",
        )
    return limits


def _mode(value: heating_pb2.HeatingMode.ValueType) -> heating_pb2.HeatingMode.ValueType:
    if value not in (heating_pb2.OFF, heating_pb2.HEAT, heating_pb2.AUTO):
        raise InvalidArgument("INVALID_MODE", "mode must be OFF, HEAT or AUTO", field="mode")
    return value


def _set_preset(
    plan: heating_pb2.HeatingPlan, request: device_pb2.UpdateDesiredHeatingRequest, now: datetime
) -> None:
    if not request.HasField("preset"):
        raise InvalidArgument(
            "PRESET_REQUIRED", "presetEndTime goes with a preset", field="presetEndTime"
        )
    preset = request.preset
    if preset not in heating_pb2.Preset.values() or preset == heating_pb2.PRESET_UNSPECIFIED:
        raise InvalidArgument(
            "INVALID_PRESET",
            "preset must be NONE, COMFORT, ECO, AWAY, BOOST or FROST",
            field="preset",
        )
    plan.preset = preset
    plan.ClearField("preset_end_time")
    if request.HasField("preset_end_time"):
        if preset == heating_pb2.NONE:
            raise InvalidArgument(
                "UNEXPECTED_PRESET_END_TIME",
                "presetEndTime goes only with a preset other than NONE",
                field="presetEndTime",
            )
        end = moment(request.preset_end_time, "presetEndTime")
        if not now < end <= now + MAX_PRESET:
            raise InvalidArgument(
                "INVALID_PRESET_END_TIME",
                "presetEndTime must be in the future, at most a year from now",
                field="presetEndTime",
            )
        plan.preset_end_time.CopyFrom(request.preset_end_time)
    elif preset == heating_pb2.BOOST:
        plan.preset_end_time.CopyFrom(timestamp(now + BOOST_DEFAULT))


def _time_zone(name: str) -> str:
    if model.time_zone(name) is None:
        raise InvalidArgument(
            "INVALID_TIME_ZONE",
            "timeZone must be an IANA time zone such as Europe/Moscow",
            field="timeZone",
        )
    return name


def _window(window: heating_pb2.WindowDetection) -> heating_pb2.WindowDetection:
    _within(window.drop_celsius, *model.DROP_BOUNDS, "windowDetection.dropCelsius")
    _within(window.within_seconds, *model.WITHIN_SECONDS_BOUNDS, "windowDetection.withinSeconds")
    _within(window.pause_seconds, *model.PAUSE_SECONDS_BOUNDS, "windowDetection.pauseSeconds")
    return window


def _check_temperatures(plan: heating_pb2.HeatingPlan) -> None:
    """Every temperature of the plan within its limits and not below its frost floor."""
    limits = plan.limits
    low = max(limits.min_target_celsius, limits.frost_floor_celsius)
    high = limits.max_target_celsius
    _setting(plan.target_celsius, low, high, "targetCelsius")
    presets = plan.preset_temperatures
    for name, value in (
        ("comfortCelsius", presets.comfort_celsius),
        ("ecoCelsius", presets.eco_celsius),
        ("awayCelsius", presets.away_celsius),
    ):
        _setting(value, low, high, f"presetTemperatures.{name}")
    _check_schedule(plan.schedule, low, high)


def _check_schedule(schedule: heating_pb2.WeeklySchedule, low: float, high: float) -> None:
    starts: Counter[tuple[int, str]] = Counter()
    per_day: Counter[int] = Counter()
    for index, slot in enumerate(schedule.slots):
        field = f"schedule.slots[{index}]"
        if slot.day not in range(heating_pb2.MONDAY, heating_pb2.SUNDAY + 1):
            raise InvalidArgument(
                "INVALID_SCHEDULE", f"{field}.day must be MONDAY to SUNDAY", field=field
            )
        if not model.START_TIME.fullmatch(slot.start_time):
            raise InvalidArgument(
                "INVALID_SCHEDULE", f"{field}.startTime must be HH:MM, 00:00 to 23:59", field=field
            )
        _setting(slot.target_celsius, low, high, f"{field}.targetCelsius")
        starts[(slot.day, slot.start_time)] += 1
        per_day[slot.day] += 1
        if starts[(slot.day, slot.start_time)] > 1:
            raise InvalidArgument(
                "INVALID_SCHEDULE",
                f"{field} starts when another slot of its day does",
                field=field,
            )
        if per_day[slot.day] > SLOTS_PER_DAY:
            raise InvalidArgument(
                "INVALID_SCHEDULE", f"at most {SLOTS_PER_DAY} slots a day", field="schedule"
            )


def _within(value: float, low: float, high: float, field: str) -> None:
    if not (math.isfinite(value) and low <= value <= high):
        raise InvalidArgument(
            "OUT_OF_RANGE", f"{field} must be from {low:g} to {high:g}", field=field
        )


def _setting(value: float, low: float, high: float, field: str) -> None:
    """A temperature the plan asks for: within the limits, never below the frost floor."""
    if not (math.isfinite(value) and low <= value <= high):
        raise InvalidArgument(
            "TEMPERATURE_OUT_OF_LIMITS",
            f"{field} must be from {low:g} to {high:g} °C (the device's limits and frost floor)",
            field=field,
        )


def target_range(plan: heating_pb2.HeatingPlan) -> tuple[float, float]:
    """What a SET_TARGET_TEMPERATURE command may ask of the device."""
    limits = plan.limits
    return max(limits.min_target_celsius, limits.frost_floor_celsius), limits.max_target_celsius


def check_command_target(plan: heating_pb2.HeatingPlan, target: float) -> None:
    """A SET_TARGET_TEMPERATURE command keeps to the device's limits and frost floor."""
    low, high = target_range(plan)
    _setting(target, low, high, "targetTemperatureCelsius")


def preset_in_force(plan: heating_pb2.HeatingPlan, now: datetime) -> int:
    """The plan's preset, or NONE once its end time has passed."""
    if plan.HasField("preset_end_time") and plan.preset_end_time.ToDatetime(UTC) <= now:
        return heating_pb2.NONE
    return plan.preset


def differences(
    plan: heating_pb2.HeatingPlan, status: heating_pb2.HeatingStatus | None, now: datetime
) -> list[str]:
    """The desired fields the device's report does not (yet) match."""
    if status is None:
        return ["plan_version"]
    found = []
    if status.plan_version != plan.version:
        found.append("plan_version")
    if status.mode != plan.mode:
        found.append("mode")
    # The device's clock decides when its preset ends (a simulator's runs fast).
    device_now = status.device_time.ToDatetime(UTC) if status.HasField("device_time") else now
    if status.preset != preset_in_force(plan, device_now):
        found.append("preset")
    manual = status.reason in (heating_pb2.MANUAL_TARGET, heating_pb2.LOCAL_OVERRIDE)
    if (
        plan.mode == heating_pb2.HEAT
        and manual
        and abs(status.target_celsius - plan.target_celsius) > 0.01
    ):
        found.append("target_celsius")
    return found


def describe_change(fields: list[str], plan: heating_pb2.HeatingPlan) -> str:
    """One log line, e.g. "desired v3: mode AUTO, schedule (14 slots)"."""
    parts = []
    for name in fields:
        if name == "mode":
            parts.append(f"mode {heating_pb2.HeatingMode.Name(plan.mode)}")
        elif name == "target_celsius":
            parts.append(f"target {plan.target_celsius:g} °C")
        elif name == "preset":
            parts.append(f"preset {heating_pb2.Preset.Name(plan.preset)}")
        elif name == "schedule":
            parts.append(f"schedule ({len(plan.schedule.slots)} slots)")
        elif name != "preset_end_time":
            parts.append(_JSON_NAMES.get(name, name))
    return f"desired v{plan.version}: " + ", ".join(parts)


def window_line(status: heating_pb2.HeatingStatus) -> str:
    if status.window_open:
        return f"window open: heating paused, held at {status.target_celsius:g} °C"
    return "window closed: heating restored"
