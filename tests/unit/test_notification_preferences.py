"""What preferences may be saved; errors never echo the input."""

import pytest
from warmhouse.notification.v1 import notification_pb2 as pb

from services.notification.preferences import DEFAULTS, preferences_message, validated
from services.notification.records import BILLING, SAFETY, CategoryChoice
from services.runtime.errors import InvalidArgument


def prefs(
    *categories: pb.CategoryPreference, quiet: tuple[str, str] = ("", ""), digest_time: str = ""
) -> pb.NotificationPreferences:
    message = pb.NotificationPreferences(categories=list(categories), digest_time=digest_time)
    message.quiet_hours.start_time, message.quiet_hours.end_time = quiet
    return message


def cat(category: int, *channels: int, digest: bool = False) -> pb.CategoryPreference:
    """Numbers, so that values no enum has can be sent too (as the wire may)."""
    preference = pb.CategoryPreference(digest=digest)
    preference.category = category  # type: ignore[assignment]
    preference.channels.extend(channels)  # type: ignore[arg-type]
    return preference


SAFETY_SMS = cat(pb.SAFETY, pb.SMS)


def refused(message: pb.NotificationPreferences) -> str:
    with pytest.raises(InvalidArgument) as raised:
        validated(message)
    return raised.value.reason


def test_valid_preferences_are_kept_and_left_out_categories_are_off() -> None:
    saved = validated(
        prefs(
            SAFETY_SMS,
            cat(pb.BILLING, pb.EMAIL, pb.PUSH, digest=True),
            quiet=("22:00", "07:00"),
            digest_time="09:30",
        )
    )
    assert saved.categories == {
        SAFETY: CategoryChoice(("SMS",)),
        BILLING: CategoryChoice(("EMAIL", "PUSH"), True),
    }
    assert (saved.quiet_start, saved.quiet_end, saved.digest_time) == ("22:00", "07:00", "09:30")


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (
            prefs(SAFETY_SMS, cat(pb.NOTIFICATION_CATEGORY_UNSPECIFIED, pb.EMAIL)),
            "INVALID_CATEGORY",
        ),
        (prefs(SAFETY_SMS, cat(99, pb.EMAIL)), "INVALID_CATEGORY"),
        (prefs(SAFETY_SMS, cat(pb.SAFETY, pb.EMAIL)), "DUPLICATE_CATEGORY"),
        (prefs(cat(pb.SAFETY, pb.NOTIFICATION_CHANNEL_UNSPECIFIED)), "INVALID_CHANNEL"),
        (prefs(cat(pb.SAFETY, 7)), "INVALID_CHANNEL"),
        (prefs(cat(pb.SAFETY, pb.SMS, pb.SMS)), "DUPLICATE_CHANNEL"),
        (prefs(cat(pb.BILLING, pb.EMAIL)), "SAFETY_CHANNEL_REQUIRED"),
        (prefs(cat(pb.SAFETY)), "SAFETY_CHANNEL_REQUIRED"),
        (prefs(cat(pb.SAFETY, pb.SMS, digest=True)), "DIGEST_NOT_ALLOWED"),
        (prefs(SAFETY_SMS, quiet=("22:00", "")), "INVALID_TIME"),
        (prefs(SAFETY_SMS, quiet=("", "07:00")), "INVALID_TIME"),
        (prefs(SAFETY_SMS, quiet=("24:00", "07:00")), "INVALID_TIME"),
        (prefs(SAFETY_SMS, quiet=("7:00", "08:00")), "INVALID_TIME"),
        (prefs(SAFETY_SMS, quiet=("22:00", "22:00")), "INVALID_QUIET_HOURS"),
        (prefs(SAFETY_SMS, digest_time="8am"), "INVALID_TIME"),
        (prefs(SAFETY_SMS, digest_time="08:00\n"), "INVALID_TIME"),
        (prefs(SAFETY_SMS, digest_time="０８:００"), "INVALID_TIME"),  # noqa: RUF001
    ],
)
def test_bad_preferences_are_refused(message: pb.NotificationPreferences, reason: str) -> None:
    assert refused(message) == reason


def test_errors_do_not_repeat_the_input() -> None:
    with pytest.raises(InvalidArgument) as raised:
        validated(prefs(SAFETY_SMS, digest_time="<script>"))
    assert "<script>" not in raised.value.message


def test_defaults_read_back_with_the_default_digest_time_and_no_quiet_hours() -> None:
    message = preferences_message("u", DEFAULTS, "Europe/Moscow")
    assert message.digest_time == "08:00"
    assert not message.HasField("quiet_hours")
    assert message.time_zone == "Europe/Moscow"
    by_category = {c.category: list(c.channels) for c in message.categories}
    assert by_category[pb.SAFETY] == [pb.SMS, pb.PUSH, pb.EMAIL]
    assert by_category[pb.DEVICE_STATUS] == [pb.PUSH, pb.EMAIL]
    assert by_category[pb.BILLING] == [pb.EMAIL]
    assert by_category[pb.SUPPORT] == [pb.EMAIL, pb.PUSH]
    assert by_category[pb.ACCOUNT] == [pb.EMAIL]
    # What is shown is what validates: a client can PUT back what it GOT.
    assert validated(message).categories == DEFAULTS.categories
