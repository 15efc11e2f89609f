"""Device Management rules: pure functions, no I/O."""

from services.runtime.errors import InvalidArgument

HEATER, SENSOR, CONTROLLER = "HEATER", "SENSOR", "CONTROLLER"
DEVICE_TYPES = frozenset({HEATER, SENSOR, CONTROLLER})
ONLINE, OFFLINE, ERROR = "ONLINE", "OFFLINE", "ERROR"
DEVICE_STATUSES = frozenset({ONLINE, OFFLINE, ERROR})
# A device starts OFFLINE: it has never connected.
INITIAL_STATUS = OFFLINE

STATUS_CHANGED = "STATUS_CHANGED"
COMMAND_UPDATED = "COMMAND_UPDATED"
READING_RECORDED = "READING_RECORDED"
ALARM_RAISED = "ALARM_RAISED"
DEVICE_CHANGED = "DEVICE_CHANGED"
ALARM_CLEARED = "ALARM_CLEARED"
HEATING_CHANGED = "HEATING_CHANGED"
LOG_KINDS = frozenset(
    {
        STATUS_CHANGED,
        COMMAND_UPDATED,
        READING_RECORDED,
        ALARM_RAISED,
        DEVICE_CHANGED,
        ALARM_CLEARED,
        HEATING_CHANGED,
    }
)

# The lines DEVICE_CHANGED entries carry.
REGISTERED = "registered"
RENAMED = "renamed"
MOVED = "moved"
RETIRED = "retired"
RETIRED_WITH_SPACE = "retired: its space was deleted"
SECRET_ROTATED = "secret rotated"


# A home's devices: a platform's resources are shared (WARMHOUSE_DEVICE_MAX_PER_HOME).
DEVICES_PER_HOME = 2000


def device_type(value: str) -> str:
    if value not in DEVICE_TYPES:
        raise InvalidArgument(
            "INVALID_DEVICE_TYPE", "type must be HEATER, SENSOR or CONTROLLER", field="type"
        )
    return value


def device_status(value: str) -> str:
    if value not in DEVICE_STATUSES:
        raise InvalidArgument(
            "INVALID_DEVICE_STATUS", "status must be ONLINE, OFFLINE or ERROR", field="status"
        )
    return value


def log_kind_filter(value: str | None) -> str | None:
    """None (no filter) or one of the log kinds."""
    if value is not None and value not in LOG_KINDS:
        raise InvalidArgument("INVALID_LOG_KIND", "kind is not a device log kind", field="kind")
    return value


def status_line(old: str, new: str, why: str = "") -> str:
    """The STATUS_CHANGED entry's line, e.g. "status ONLINE -> OFFLINE (HEARTBEAT_TIMEOUT)"."""
    return f"status {old} -> {new}" + (f" ({why})" if why else "")


def connected_status(current: str) -> str:
    """The status a device takes when it connects: ERROR, set by hand, stays."""
    return current if current == ERROR else ONLINE


def disconnected_status(current: str) -> str:
    return current if current == ERROR else OFFLINE


def nothing_to_update() -> InvalidArgument:
    return InvalidArgument("NOTHING_TO_UPDATE", "give a new name or a new spaceId (or both)")
