"""Commands: what may be sent, by whom, until when, and how their status moves. Pure."""

import math
from datetime import datetime, timedelta

from services.runtime.errors import InvalidArgument, Throttled
from services.runtime.space_roles import Right

SET_TARGET_TEMPERATURE, TURN_ON, TURN_OFF = "SET_TARGET_TEMPERATURE", "TURN_ON", "TURN_OFF"
COMMAND_KINDS = frozenset({SET_TARGET_TEMPERATURE, TURN_ON, TURN_OFF})
QUEUED, SENT, ACKNOWLEDGED, REJECTED, EXPIRED = (
    "QUEUED",
    "SENT",
    "ACKNOWLEDGED",
    "REJECTED",
    "EXPIRED",
)
COMMAND_STATUSES = frozenset({QUEUED, SENT, ACKNOWLEDGED, REJECTED, EXPIRED})
# Waiting for delivery or for the device's answer.
OPEN_STATUSES = frozenset({QUEUED, SENT})

# The heating range the next issue makes settable per device.
MIN_TARGET_CELSIUS = 5.0
MAX_TARGET_CELSIUS = 30.0
DEFAULT_DEADLINE = timedelta(minutes=10)
MAX_DEADLINE = timedelta(days=7)
# A device's explanation is shown to people: bounded, one line.
MAX_DEVICE_MESSAGE = 500

# Waiting commands per device: a queue nobody can flood (WARMHOUSE_DEVICE_MAX_OPEN_COMMANDS).
OPEN_COMMANDS_PER_DEVICE = 100

NOT_DELIVERED = "not delivered before its deadline"
NOT_ANSWERED = "not answered before its deadline"


def command_kind(value: str) -> str:
    if value not in COMMAND_KINDS:
        raise InvalidArgument(
            "INVALID_COMMAND_KIND",
            "kind must be SET_TARGET_TEMPERATURE, TURN_ON or TURN_OFF",
            field="kind",
        )
    return value


def required_right(kind: str) -> Right:
    """A guest may set the temperature; switching a device on or off is an operator's."""
    return Right.SET_TEMPERATURE if kind == SET_TARGET_TEMPERATURE else Right.OPERATE_DEVICES


def target_temperature(kind: str, value: float | None) -> float | None:
    if kind != SET_TARGET_TEMPERATURE:
        if value is not None:
            raise InvalidArgument(
                "UNEXPECTED_TARGET_TEMPERATURE",
                "targetTemperatureCelsius goes only with SET_TARGET_TEMPERATURE",
                field="targetTemperatureCelsius",
            )
        return None
    if (
        value is None
        or not math.isfinite(value)
        or not (MIN_TARGET_CELSIUS <= value <= MAX_TARGET_CELSIUS)
    ):
        raise InvalidArgument(
            "INVALID_TARGET_TEMPERATURE",
            f"targetTemperatureCelsius must be from {MIN_TARGET_CELSIUS:g}"
            f" to {MAX_TARGET_CELSIUS:g}",
            field="targetTemperatureCelsius",
        )
    return value


def deadline(seconds: int | None, now: datetime) -> datetime:
    if seconds is None:
        return now + DEFAULT_DEADLINE
    if not 1 <= seconds <= MAX_DEADLINE.total_seconds():
        raise InvalidArgument(
            "INVALID_DEADLINE",
            f"deadlineSeconds must be from 1 to {int(MAX_DEADLINE.total_seconds())}",
            field="deadlineSeconds",
        )
    return now + timedelta(seconds=seconds)


def check_open_commands(count: int, limit: int) -> None:
    if count >= limit:
        raise Throttled(
            "QUOTA_EXCEEDED", f"at most {limit} commands may wait for one device; try later"
        )


def status_filter(value: str | None) -> str | None:
    if value is not None and value not in COMMAND_STATUSES:
        raise InvalidArgument("INVALID_COMMAND_STATUS", "not a command status", field="status")
    return value


def answered_status(ok: bool) -> str:
    return ACKNOWLEDGED if ok else REJECTED


def device_message(text: str) -> str:
    """What a device says about a command, fit to show: printable, one bounded line."""
    printable = "".join(ch if ch.isprintable() else " " for ch in text)
    return printable[:MAX_DEVICE_MESSAGE]


def expiry_message(status: str) -> str:
    return NOT_DELIVERED if status == QUEUED else NOT_ANSWERED


def describe(kind: str, target: float | None) -> str:
    """e.g. "SET_TARGET_TEMPERATURE 21.5", for log lines."""
    return f"{kind} {target:g}" if target is not None else kind
