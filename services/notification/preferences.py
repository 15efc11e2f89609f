"""A user's notification preferences: the defaults, and what may be saved.

Pure rules, no I/O. Errors never repeat what the client sent.
"""

from warmhouse.notification.v1 import notification_pb2

from services.notification.records import (
    ACCOUNT,
    BILLING,
    DEVICE_STATUS,
    EMAIL,
    PUSH,
    SAFETY,
    SMS,
    SUPPORT,
    CategoryChoice,
    Preferences,
)
from services.runtime.errors import InvalidArgument
from services.runtime.heating_model import START_TIME
from services.runtime.request import enum_name
from services.runtime.timestamps import timestamp

DEFAULT_DIGEST_TIME = "08:00"
# Who is told by what when they never said: the channels in order of preference.
DEFAULT_CATEGORIES: dict[str, CategoryChoice] = {
    DEVICE_STATUS: CategoryChoice((PUSH, EMAIL)),
    SAFETY: CategoryChoice((SMS, PUSH, EMAIL)),
    BILLING: CategoryChoice((EMAIL,)),
    SUPPORT: CategoryChoice((EMAIL, PUSH)),
    ACCOUNT: CategoryChoice((EMAIL,)),
}
DEFAULTS = Preferences(categories=DEFAULT_CATEGORIES)


def _invalid(reason: str, message: str, field: str) -> InvalidArgument:
    return InvalidArgument(reason, message, field=field)


def _clock_time(value: str, field: str) -> str:
    if not START_TIME.fullmatch(value):
        raise _invalid("INVALID_TIME", f"{field} must be a time of day as HH:MM", field)
    return value


def validated(message: notification_pb2.NotificationPreferences) -> Preferences:
    """The preferences a client asks to save, or INVALID_ARGUMENT."""
    categories: dict[str, CategoryChoice] = {}
    for choice in message.categories:
        category = enum_name(notification_pb2.NotificationCategory.DESCRIPTOR, choice.category)
        if not category or category == "NOTIFICATION_CATEGORY_UNSPECIFIED":
            raise _invalid(
                "INVALID_CATEGORY",
                "each category must be DEVICE_STATUS, SAFETY, BILLING, SUPPORT or ACCOUNT",
                "categories.category",
            )
        if category in categories:
            raise _invalid(
                "DUPLICATE_CATEGORY", "each category may appear once", "categories.category"
            )
        channels: list[str] = []
        for value in choice.channels:
            channel = enum_name(notification_pb2.NotificationChannel.DESCRIPTOR, value)
            if not channel or channel == "NOTIFICATION_CHANNEL_UNSPECIFIED":
                raise _invalid(
                    "INVALID_CHANNEL",
                    "each channel must be EMAIL, SMS or PUSH",
                    "categories.channels",
                )
            if channel in channels:
                raise _invalid(
                    "DUPLICATE_CHANNEL",
                    "a channel may appear once per category",
                    "categories.channels",
                )
            channels.append(channel)
        if choice.digest and category == SAFETY:
            raise _invalid(
                "DIGEST_NOT_ALLOWED", "SAFETY notifications cannot wait for a digest", "digest"
            )
        if channels:
            categories[category] = CategoryChoice(tuple(channels), choice.digest)
    if SAFETY not in categories:
        raise _invalid(
            "SAFETY_CHANNEL_REQUIRED",
            "SAFETY must keep at least one channel: a gas leak has to reach someone",
            "categories",
        )
    quiet = message.quiet_hours
    start, end = quiet.start_time, quiet.end_time
    if start or end:
        _clock_time(start, "quietHours.startTime")
        _clock_time(end, "quietHours.endTime")
        if start == end:
            raise _invalid(
                "INVALID_QUIET_HOURS",
                "quietHours.startTime and endTime must differ",
                "quietHours",
            )
    digest_time = message.digest_time
    if digest_time:
        _clock_time(digest_time, "digestTime")
    return Preferences(categories, start, end, digest_time)


def preferences_message(
    user_id: str, preferences: Preferences, time_zone: str
) -> notification_pb2.NotificationPreferences:
    message = notification_pb2.NotificationPreferences(
        user_id=user_id,
        categories=[
            notification_pb2.CategoryPreference(
                category=notification_pb2.NotificationCategory.Value(category),
                channels=[notification_pb2.NotificationChannel.Value(c) for c in choice.channels],
                digest=choice.digest,
            )
            for category, choice in preferences.categories.items()
        ],
        digest_time=preferences.digest_time or DEFAULT_DIGEST_TIME,
        time_zone=time_zone,
    )
    if preferences.quiet_start:
        message.quiet_hours.start_time = preferences.quiet_start
        message.quiet_hours.end_time = preferences.quiet_end
    if preferences.updated_at is not None:
        message.update_time.CopyFrom(timestamp(preferences.updated_at))
    return message
