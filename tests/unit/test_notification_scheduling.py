"""Channels at creation, quiet hours, digest times (DST-safe), backoff."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.notification.preferences import DEFAULTS
from services.notification.records import (
    BILLING,
    CRITICAL,
    DEVICE_STATUS,
    LOW,
    NORMAL,
    SAFETY,
    SUPPORT,
    CategoryChoice,
    Preferences,
)
from services.notification.scheduling import (
    backoff,
    next_digest,
    plan_deliveries,
    quiet_hours_end,
    zone_of,
)

MOSCOW = ZoneInfo("Europe/Moscow")  # UTC+3, no DST
BERLIN = ZoneInfo("Europe/Berlin")
UTC_ZONE = ZoneInfo("UTC")


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def test_quiet_hours_crossing_midnight_end_the_next_morning_in_the_users_zone() -> None:
    # 23:30 Moscow = 20:30 UTC: quiet until 07:00 Moscow the next day (04:00 UTC).
    assert quiet_hours_end(utc(2025, 1, 10, 20, 30), "22:00", "07:00", MOSCOW) == utc(
        2025, 1, 11, 4, 0
    )
    # 05:00 Moscow, after midnight: the same morning.
    assert quiet_hours_end(utc(2025, 1, 10, 2, 0), "22:00", "07:00", MOSCOW) == utc(
        2025, 1, 10, 4, 0
    )
    # 12:00 Moscow: not quiet.
    assert quiet_hours_end(utc(2025, 1, 10, 9, 0), "22:00", "07:00", MOSCOW) is None
    # The end itself is no longer quiet; the start is.
    assert quiet_hours_end(utc(2025, 1, 10, 4, 0), "22:00", "07:00", MOSCOW) is None
    assert quiet_hours_end(utc(2025, 1, 10, 19, 0), "22:00", "07:00", MOSCOW) == utc(
        2025, 1, 11, 4, 0
    )


def test_quiet_hours_within_one_day() -> None:
    assert quiet_hours_end(utc(2025, 1, 10, 13, 0), "12:00", "14:00", UTC_ZONE) == utc(
        2025, 1, 10, 14, 0
    )
    assert quiet_hours_end(utc(2025, 1, 10, 15, 0), "12:00", "14:00", UTC_ZONE) is None
    assert quiet_hours_end(utc(2025, 1, 10, 13, 0), "", "", UTC_ZONE) is None


def test_quiet_hours_across_the_spring_dst_change_end_at_local_seven() -> None:
    # Berlin: 2025-03-30 02:00 CET → 03:00 CEST. 23:00 CET on the 29th = 22:00 UTC.
    end = quiet_hours_end(utc(2025, 3, 29, 22, 0), "22:00", "07:00", BERLIN)
    assert end == utc(2025, 3, 30, 5, 0)  # 07:00 CEST, not 06:00 UTC (07:00 CET)
    assert end is not None
    assert end.astimezone(BERLIN).hour == 7


def test_quiet_hours_across_the_autumn_dst_change_end_at_local_seven() -> None:
    # Berlin: 2025-10-26 03:00 CEST → 02:00 CET. 23:00 CEST on the 25th = 21:00 UTC.
    end = quiet_hours_end(utc(2025, 10, 25, 21, 0), "22:00", "07:00", BERLIN)
    assert end == utc(2025, 10, 26, 6, 0)  # 07:00 CET


def test_next_digest_is_today_if_ahead_else_tomorrow_local_time() -> None:
    # 06:00 Moscow → 08:00 Moscow today (05:00 UTC).
    assert next_digest(utc(2025, 1, 10, 3, 0), "", MOSCOW) == utc(2025, 1, 10, 5, 0)
    # 09:00 Moscow → tomorrow 08:00.
    assert next_digest(utc(2025, 1, 10, 6, 0), "08:00", MOSCOW) == utc(2025, 1, 11, 5, 0)
    # Exactly at the time → the next one.
    assert next_digest(utc(2025, 1, 10, 5, 0), "08:00", MOSCOW) == utc(2025, 1, 11, 5, 0)


def test_next_digest_over_a_dst_change_keeps_the_wall_clock_time() -> None:
    # 09:00 CET on Saturday 29 March → Sunday's 08:00 is CEST (06:00 UTC), 23 hours later.
    assert next_digest(utc(2025, 3, 29, 8, 0), "08:00", BERLIN) == utc(2025, 3, 30, 6, 0)
    # A digest time skipped by the change (02:30) reads as 03:30 CEST.
    assert next_digest(utc(2025, 3, 29, 8, 0), "02:30", BERLIN) == utc(2025, 3, 30, 1, 30)


def test_critical_goes_by_every_channel_at_once_whatever_the_preferences() -> None:
    only_sms = Preferences({SAFETY: CategoryChoice(("SMS",))}, "00:00", "23:59")
    now = utc(2025, 1, 10, 12, 0)
    planned = plan_deliveries(SAFETY, CRITICAL, only_sms, UTC_ZONE, now)
    assert {(p.channel, p.due_at, p.digest) for p in planned} == {
        ("EMAIL", now, False),
        ("SMS", now, False),
        ("PUSH", now, False),
    }


def test_defaults_per_category() -> None:
    now = utc(2025, 1, 10, 12, 0)
    channels = {
        category: [p.channel for p in plan_deliveries(category, NORMAL, DEFAULTS, UTC_ZONE, now)]
        for category in (DEVICE_STATUS, BILLING, SUPPORT)
    }
    assert channels == {
        DEVICE_STATUS: ["PUSH", "EMAIL"],
        BILLING: ["EMAIL"],
        SUPPORT: ["EMAIL", "PUSH"],
    }


def test_a_category_switched_off_gets_no_delivery() -> None:
    preferences = Preferences({SAFETY: CategoryChoice(("SMS",))})
    assert plan_deliveries(BILLING, LOW, preferences, UTC_ZONE, utc(2025, 1, 1)) == []


def test_in_quiet_hours_sms_and_push_wait_e_mail_does_not() -> None:
    preferences = Preferences(
        {DEVICE_STATUS: CategoryChoice(("PUSH", "EMAIL", "SMS"))}, "22:00", "07:00"
    )
    now = utc(2025, 1, 10, 20, 0)  # 23:00 Moscow
    due = {
        p.channel: p.due_at for p in plan_deliveries(DEVICE_STATUS, LOW, preferences, MOSCOW, now)
    }
    assert due == {"EMAIL": now, "PUSH": utc(2025, 1, 11, 4, 0), "SMS": utc(2025, 1, 11, 4, 0)}


def test_a_digest_category_waits_for_the_digest_time_on_every_channel() -> None:
    preferences = Preferences(
        {BILLING: CategoryChoice(("EMAIL", "PUSH"), digest=True)}, digest_time="19:00"
    )
    now = utc(2025, 1, 10, 9, 0)  # 12:00 Moscow
    planned = plan_deliveries(BILLING, LOW, preferences, MOSCOW, now)
    assert {(p.channel, p.due_at, p.digest) for p in planned} == {
        ("EMAIL", utc(2025, 1, 10, 16, 0), True),
        ("PUSH", utc(2025, 1, 10, 16, 0), True),
    }


def test_a_digest_inside_quiet_hours_waits_for_their_end_on_push() -> None:
    preferences = Preferences(
        {BILLING: CategoryChoice(("EMAIL", "PUSH"), digest=True)}, "06:00", "09:00", "08:00"
    )
    planned = {
        p.channel: p.due_at
        for p in plan_deliveries(BILLING, LOW, preferences, UTC_ZONE, utc(2025, 1, 10, 12, 0))
    }
    assert planned == {"EMAIL": utc(2025, 1, 11, 8, 0), "PUSH": utc(2025, 1, 11, 9, 0)}


def test_unknown_time_zones_read_as_utc() -> None:
    assert zone_of("Mars/Olympus").key == "UTC"
    assert zone_of("").key == "UTC"
    assert zone_of("Europe/Moscow").key == "Europe/Moscow"


@pytest.mark.parametrize(
    ("attempts", "seconds"),
    [(1, 1), (2, 2), (3, 4), (4, 8), (6, 32), (9, 256), (10, 300), (50, 300)],
)
def test_backoff_doubles_from_the_base_up_to_five_minutes(attempts: int, seconds: int) -> None:
    assert backoff(attempts, 1.0) == timedelta(seconds=seconds)


def test_backoff_scales_with_the_base() -> None:
    assert backoff(3, 5.0) == timedelta(seconds=20)


def test_quiet_hours_ending_in_the_repeated_autumn_hour_end_after_now() -> None:
    # Berlin, 2025-10-26: 02:00-03:00 happens twice (CEST, then CET). 01:15 UTC
    # is 02:15 CET, the second time round; the first 02:30 (00:30 UTC) is past.
    now = utc(2025, 10, 26, 1, 15)
    assert now.astimezone(BERLIN).fold == 1
    end = quiet_hours_end(now, "22:00", "02:30", BERLIN)
    assert end == utc(2025, 10, 26, 1, 30)  # the second 02:30 (CET)
    assert end > now
    # 02:15 the first time round (CEST): the first 02:30 is still ahead.
    assert quiet_hours_end(utc(2025, 10, 26, 0, 15), "22:00", "02:30", BERLIN) == utc(
        2025, 10, 26, 0, 30
    )
