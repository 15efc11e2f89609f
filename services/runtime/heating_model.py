"""The heating model's shared facts: which devices heat, the defaults a device starts
with, the bounds of its settings, and what a schedule's times and zones may be.

The Device service checks plans with them, the Device Adapter checks statuses,
and the simulated firmware starts from the same defaults.
"""

import functools
import re
import zoneinfo

HEATING_DEVICE_TYPES = frozenset({"HEATER", "CONTROLLER"})

DEFAULT_TARGET_CELSIUS = 20.0
DEFAULT_COMFORT_CELSIUS = 21.0
DEFAULT_ECO_CELSIUS = 18.0
DEFAULT_AWAY_CELSIUS = 16.0
DEFAULT_MIN_TARGET_CELSIUS = 5.0
DEFAULT_MAX_TARGET_CELSIUS = 30.0
DEFAULT_FROST_FLOOR_CELSIUS = 7.0
DEFAULT_DROP_CELSIUS = 1.5
DEFAULT_WITHIN_SECONDS = 300
DEFAULT_PAUSE_SECONDS = 1800
DEFAULT_TIME_ZONE = "UTC"

# What a device's limits, and its window detection, may be set to.
TARGET_BOUNDS = (5.0, 30.0)
FROST_FLOOR_BOUNDS = (5.0, 15.0)
DROP_BOUNDS = (0.5, 10.0)
WITHIN_SECONDS_BOUNDS = (60, 3600)
PAUSE_SECONDS_BOUNDS = (60, 86400)

# A schedule slot's start: "HH:MM", 00:00 to 23:59, ASCII digits (use fullmatch).
START_TIME = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])", re.ASCII)

# Zone files that are not places: the host's own zone (differs between
# machines), a placeholder, and variants counting leap seconds (~27 s off).
_NOT_PLACES = frozenset({"localtime", "Factory", "posixrules"})
_NOT_PLACE_PREFIXES = ("posix/", "right/")


@functools.cache
def _place_zones() -> frozenset[str]:
    return frozenset(
        name
        for name in zoneinfo.available_timezones()
        if name not in _NOT_PLACES and not name.startswith(_NOT_PLACE_PREFIXES)
    )


def time_zone(name: str) -> zoneinfo.ZoneInfo | None:
    """The IANA zone `name` names (e.g. "Europe/Moscow"); None for anything else."""
    if name not in _place_zones():
        return None
    return zoneinfo.ZoneInfo(name)
