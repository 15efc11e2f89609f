"""Which channels a notification goes by, and when each delivery is due.

Pure rules, no I/O. Times of day ("HH:MM") are read in the user's IANA time
zone with zoneinfo, on local calendar dates, so a daylight-saving change
moves nothing: "07:00" stays seven in the morning, local time. A wall time
that does not exist (skipped by a spring-forward) reads as that time plus the
gap (02:30 → 03:30); one that happens twice (autumn) as its first occurrence,
but the end of quiet hours as its second when `now` is already past the first
(now in the repeated hour itself: it must end after now).
"""

import zoneinfo
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from services.notification.preferences import DEFAULT_DIGEST_TIME
from services.notification.records import (
    CHANNELS,
    CRITICAL,
    PUSH,
    SMS,
    Preferences,
)
from services.runtime.heating_model import DEFAULT_TIME_ZONE, time_zone

# Channels that wake people up: held back during quiet hours.
INTRUSIVE = frozenset({SMS, PUSH})
MAX_BACKOFF_SECONDS = 300.0


@dataclass(frozen=True)
class PlannedDelivery:
    channel: str
    due_at: datetime
    digest: bool


def zone_of(name: str) -> zoneinfo.ZoneInfo:
    """The user's zone; UTC when their profile names none (or one we do not know)."""
    return time_zone(name) or zoneinfo.ZoneInfo(DEFAULT_TIME_ZONE)


def _clock(value: str) -> time:
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


def _instant(day: date, at: time, zone: zoneinfo.ZoneInfo, fold: int = 0) -> datetime:
    """The instant the wall clock in `zone` shows `at` on `day` (see the module's note)."""
    # fold=0 (PEP 495): a skipped time is read with the offset before the gap,
    # a repeated one as its first occurrence; fold=1: its second.
    return datetime.combine(day, at.replace(fold=fold), tzinfo=zone).astimezone(UTC)


def quiet_hours_end(
    now: datetime, start: str, end: str, zone: zoneinfo.ZoneInfo
) -> datetime | None:
    """When the quiet hours `now` falls in end; None outside them (or without any)."""
    if not start or not end:
        return None
    local = now.astimezone(zone)
    today, wall = local.date(), local.time().replace(tzinfo=None)
    begins, ends = _clock(start), _clock(end)
    if begins < ends:
        inside = begins <= wall < ends
        end_day = today
    else:  # crosses midnight: 22:00-07:00
        inside = wall >= begins or wall < ends
        end_day = today + timedelta(days=1) if wall >= begins else today
    if not inside:
        return None
    over = _instant(end_day, ends, zone)
    if over <= now:
        # Quiet until 02:30 and now is 02:15 of the repeated autumn hour: the
        # first 02:30 is already past, they end at the second.
        over = _instant(end_day, ends, zone, fold=1)
    return over


def next_digest(now: datetime, digest_time: str, zone: zoneinfo.ZoneInfo) -> datetime:
    """The next digest after `now`: today's at `digest_time` if still ahead, else tomorrow's."""
    at = _clock(digest_time or DEFAULT_DIGEST_TIME)
    today = now.astimezone(zone).date()
    candidate = _instant(today, at, zone)
    if candidate <= now:
        candidate = _instant(today + timedelta(days=1), at, zone)
    return candidate


def plan_deliveries(
    category: str,
    priority: str,
    preferences: Preferences,
    zone: zoneinfo.ZoneInfo,
    now: datetime,
) -> list[PlannedDelivery]:
    """One delivery per channel the notification goes by, each with when it is due.

    CRITICAL: every channel, at once, whatever the preferences. Otherwise the
    category's channels (none: no delivery); a digest category waits for the
    digest time; SMS and push wait out quiet hours, e-mail does not.
    """
    if priority == CRITICAL:
        return [PlannedDelivery(channel, now, False) for channel in CHANNELS]
    choice = preferences.categories.get(category)
    if choice is None:
        return []
    planned = []
    for channel in choice.channels:
        due = next_digest(now, preferences.digest_time, zone) if choice.digest else now
        if channel in INTRUSIVE:
            due = quiet_hours_end(due, preferences.quiet_start, preferences.quiet_end, zone) or due
        planned.append(PlannedDelivery(channel, due, choice.digest))
    return planned


def backoff(attempts: int, base_seconds: float) -> timedelta:
    """The wait after the `attempts`-th failed attempt: base * 2^(attempts-1), at most 300 s."""
    exponent = max(attempts - 1, 0)
    seconds = MAX_BACKOFF_SECONDS if exponent > 30 else base_seconds * 2**exponent
    return timedelta(seconds=min(seconds, MAX_BACKOFF_SECONDS))
