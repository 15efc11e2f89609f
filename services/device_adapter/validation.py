"""What the adapter accepts from a device's frames: pure checks, no I/O.

A device is outside our trust boundary, so every string it sends is bounded
and every number checked before it reaches an event. Errors never repeat
what the device sent.
"""

import math
import uuid
from dataclasses import dataclass

from google.protobuf.descriptor import EnumDescriptor
from google.protobuf.timestamp_pb2 import Timestamp
from warmhouse.device_adapter.v1 import device_adapter_pb2 as pb
from warmhouse.heating.v1 import heating_pb2

from services.runtime.errors import InvalidArgument, Unauthenticated
from services.runtime.heating_model import START_TIME

MAX_DEVICE_ID_LENGTH = 64
MAX_SECRET_LENGTH = 256
MAX_FIRMWARE_VERSION_LENGTH = 64
MAX_RESULT_MESSAGE_LENGTH = 500
# The canonical text of a UUID; anything longer is not one we issued.
_UUID_LENGTH = 36

TEMPERATURE_RANGE_CELSIUS = (-100.0, 200.0)
POWER_RANGE_WATTS = (0.0, 100_000.0)
# A device's own sample time is believed within this window around our clock
# (a buffered sample from a day ago is still useful; one from the future is a
# wrong clock).
SAMPLE_TIME_MAX_AGE_SECONDS = 24 * 3600
SAMPLE_TIME_MAX_AHEAD_SECONDS = 60
# Set points and room temperatures a heating device may report.
HEATING_TEMPERATURE_RANGE_CELSIUS = (-50.0, 150.0)
# What a Timestamp may hold (0001-01-01 to 9999-12-31): beyond it, turning a
# reported time into text (JSON, a database) fails downstream.
_TIMESTAMP_SECONDS = (-62_135_596_800, 253_402_300_799)


def credentials_invalid() -> Unauthenticated:
    # One answer for a malformed id, an unknown one and a wrong secret.
    return Unauthenticated("DEVICE_CREDENTIALS_INVALID", "the device id or secret is not valid")


@dataclass(frozen=True)
class HelloFields:
    # Canonical (lower-case, hyphenated) UUID text.
    device_id: str
    secret: str
    firmware_version: str


def canonical_uuid(value: str) -> str | None:
    """The canonical text of a UUID, or None when `value` is not one."""
    if len(value) > _UUID_LENGTH:
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


def check_hello(hello: pb.Hello) -> HelloFields:
    """The Hello's fields, bounded; malformed credentials are refused without
    asking the Device service."""
    if len(hello.device_id) > MAX_DEVICE_ID_LENGTH or len(hello.device_secret) > MAX_SECRET_LENGTH:
        raise credentials_invalid()
    device_id = canonical_uuid(hello.device_id)
    if device_id is None or not hello.device_secret:
        raise credentials_invalid()
    firmware = hello.firmware_version
    if len(firmware) > MAX_FIRMWARE_VERSION_LENGTH or not firmware.isprintable():
        raise InvalidArgument(
            "FIRMWARE_VERSION_INVALID",
            f"firmware_version must be at most {MAX_FIRMWARE_VERSION_LENGTH} printable characters",
            field="firmware_version",
        )
    return HelloFields(device_id, hello.device_secret, firmware)


def _out_of(value: float, bounds: tuple[float, float]) -> bool:
    low, high = bounds
    return not (math.isfinite(value) and low <= value <= high)


def telemetry_problem(telemetry: pb.Telemetry) -> str | None:
    """Why a sample cannot be believed (the whole frame is then dropped), or None."""
    if telemetry.HasField("temperature_celsius") and _out_of(
        telemetry.temperature_celsius, TEMPERATURE_RANGE_CELSIUS
    ):
        return "temperature_celsius is not a finite number from -100 to 200"
    if telemetry.HasField("power_watts") and _out_of(telemetry.power_watts, POWER_RANGE_WATTS):
        return "power_watts is not a finite number from 0 to 100000"
    return None


def _nanos(seconds: float) -> int:
    return round(seconds * 1e9)


def plausible_sample_time(sample_time: Timestamp, now_seconds: float) -> bool:
    if not 0 <= sample_time.nanos < 10**9:
        return False
    at = sample_time.seconds * 10**9 + sample_time.nanos
    earliest = _nanos(now_seconds - SAMPLE_TIME_MAX_AGE_SECONDS)
    latest = _nanos(now_seconds + SAMPLE_TIME_MAX_AHEAD_SECONDS)
    return earliest <= at <= latest


def stamp(seconds: float) -> Timestamp:
    """A Timestamp of a wall-clock time in seconds since the epoch."""
    result = Timestamp()
    result.FromNanoseconds(_nanos(seconds))
    return result


def accepted_telemetry(telemetry: pb.Telemetry, now_seconds: float) -> pb.Telemetry | None:
    """The sample as published (sample_time always set: the device's own when
    plausible, else now), or None when it must be dropped.

    Built from the fields we know, never copied: protobuf keeps the fields it
    does not know, and a device padding its frames with them would otherwise
    have its padding published in every batch."""
    if telemetry_problem(telemetry) is not None:
        return None
    accepted = pb.Telemetry()
    for field, value in telemetry.ListFields():
        # The scalars; sample_time, the one message field, is rebuilt below.
        if field.message_type is None:
            setattr(accepted, field.name, value)
    sent = telemetry.sample_time
    if telemetry.HasField("sample_time") and plausible_sample_time(sent, now_seconds):
        accepted.sample_time.seconds = sent.seconds
        accepted.sample_time.nanos = sent.nanos
    else:
        accepted.sample_time.CopyFrom(stamp(now_seconds))
    return accepted


@dataclass(frozen=True)
class CommandAnswer:
    command_id: str
    ok: bool
    message: str


def command_answer(result: pb.CommandResult) -> CommandAnswer | None:
    """A device's answer as the adapter reports it; None when it names no
    command we could have sent (its id is not a UUID)."""
    command_id = canonical_uuid(result.command_id)
    if command_id is None:
        return None
    return CommandAnswer(command_id, result.ok, result.message[:MAX_RESULT_MESSAGE_LENGTH])


def _known_value(enum: EnumDescriptor, value: int) -> bool:
    """Whether `value` names a value of `enum` other than its _UNSPECIFIED zero."""
    return value != 0 and value in enum.values_by_number


def _valid_timestamp(at: Timestamp) -> bool:
    low, high = _TIMESTAMP_SECONDS
    return 0 <= at.nanos < 10**9 and low <= at.seconds <= high


def _temperature_problem(status: heating_pb2.HeatingStatus) -> str | None:
    temperatures = [("target_celsius", status.target_celsius)]
    if status.HasField("temperature_celsius"):
        temperatures.append(("temperature_celsius", status.temperature_celsius))
    if status.HasField("schedule_slot"):
        temperatures.append(("schedule_slot.target_celsius", status.schedule_slot.target_celsius))
    low, high = HEATING_TEMPERATURE_RANGE_CELSIUS
    for name, celsius in temperatures:
        if _out_of(celsius, HEATING_TEMPERATURE_RANGE_CELSIUS):
            return f"{name} is not a finite number from {low:g} to {high:g}"
    return None


def _enum_problem(status: heating_pb2.HeatingStatus) -> str | None:
    enums = (
        ("mode", heating_pb2.HeatingMode.DESCRIPTOR, status.mode),
        ("preset", heating_pb2.Preset.DESCRIPTOR, status.preset),
        ("reason", heating_pb2.HeatingReason.DESCRIPTOR, status.reason),
    )
    for name, enum, value in enums:
        if not _known_value(enum, value):
            return f"{name} is not a known value"
    return None


def _schedule_slot_problem(status: heating_pb2.HeatingStatus) -> str | None:
    if not status.HasField("schedule_slot"):
        return None
    slot = status.schedule_slot
    if not _known_value(heating_pb2.DayOfWeek.DESCRIPTOR, slot.day):
        return "schedule_slot.day is not a known day"
    if START_TIME.fullmatch(slot.start_time) is None:
        return 'schedule_slot.start_time is not a time "HH:MM"'
    return None


def _time_problem(status: heating_pb2.HeatingStatus) -> str | None:
    times = (
        ("preset_end_time", status.preset_end_time),
        ("window_open_until", status.window_open_until),
        ("device_time", status.device_time),
    )
    for name, at in times:
        # An unset time reads as the epoch, a valid one.
        if not _valid_timestamp(at):
            return f"{name} is not a valid time"
    return None


def heating_status_problem(status: heating_pb2.HeatingStatus) -> str | None:
    """Why a HeatingStatus cannot be believed (the frame is then dropped), or None.

    Temperatures are finite and within HEATING_TEMPERATURE_RANGE_CELSIUS,
    enum values known (never _UNSPECIFIED), a schedule slot's start "HH:MM".
    Its times are only checked to be times: they run on the device's own
    clock, which may run ahead of ours (a simulated one does)."""
    if status.plan_version < 0:
        return "plan_version is negative"
    return (
        _temperature_problem(status)
        or _enum_problem(status)
        or _schedule_slot_problem(status)
        or _time_problem(status)
    )


def accepted_heating_status(
    status: heating_pb2.HeatingStatus,
) -> heating_pb2.HeatingStatus | None:
    """The status as published, or None when it must be dropped.

    A copy without the fields the proto does not know, at any depth (see
    `accepted_telemetry` for why)."""
    if heating_status_problem(status) is not None:
        return None
    accepted = heating_pb2.HeatingStatus()
    accepted.CopyFrom(status)
    accepted.DiscardUnknownFields()
    return accepted
