"""How a device answers a command: the rules, apart from the stream.

A command may arrive twice (the adapter resends what it cannot know was
answered), so answers are remembered by command id and a repeat gets the
earlier answer: the device never acts twice.
"""

import math
from collections import OrderedDict
from datetime import datetime

from warmhouse.device_adapter.v1.device_adapter_pb2 import (
    SET_TARGET_TEMPERATURE,
    TURN_OFF,
    TURN_ON,
    Command,
)

Result = tuple[bool, str]

DONE: Result = (True, "")
EXPIRED = "expired before it arrived"
REJECTED = "rejected by the device (simulated fault)"
NO_TARGET = "target_temperature_celsius is required"
TARGET_OUT_OF_RANGE = "target_temperature_celsius is outside what the device can do"
UNKNOWN_KIND = "unknown command kind"

# What the simulated hardware accepts as a set point.
TARGET_RANGE_CELSIUS = (-50.0, 100.0)
# Ids are the Device service's UUIDs; anything far longer is not remembered.
MAX_COMMAND_ID_LENGTH = 128
REMEMBERED_RESULTS = 1000
KINDS = frozenset({SET_TARGET_TEMPERATURE, TURN_ON, TURN_OFF})


def refusal(command: Command, now: datetime, rejecting: bool) -> str | None:
    """Why the device does not carry `command` out at `now` (real UTC), or None."""
    if command.HasField("expire_time"):
        # Compared as numbers: a Timestamp outside datetime's range must not raise.
        deadline = command.expire_time.seconds + command.expire_time.nanos / 1e9
        if deadline < now.timestamp():
            return EXPIRED
    if rejecting:
        return REJECTED
    if command.kind not in KINDS:
        return UNKNOWN_KIND
    if command.kind == SET_TARGET_TEMPERATURE:
        if not command.HasField("target_temperature_celsius"):
            return NO_TARGET
        target = command.target_temperature_celsius
        low, high = TARGET_RANGE_CELSIUS
        if not (math.isfinite(target) and low <= target <= high):
            return TARGET_OUT_OF_RANGE
    return None


def remembered_id(command_id: str) -> bool:
    """Whether an answer to this id can be remembered (and so sent at all)."""
    return 0 < len(command_id) <= MAX_COMMAND_ID_LENGTH


class Answers(OrderedDict[str, Result]):
    """The last `capacity` answers by command id, oldest forgotten first."""

    def __init__(self, capacity: int = REMEMBERED_RESULTS) -> None:
        super().__init__()
        self.capacity = capacity

    def remember(self, command_id: str, result: Result) -> None:
        self[command_id] = result
        while len(self) > self.capacity:
            self.popitem(last=False)
