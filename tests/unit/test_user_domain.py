import zoneinfo
from datetime import UTC, datetime, timedelta

import pytest

from services.runtime.auth import Caller
from services.runtime.errors import InvalidArgument, PermissionDenied, Throttled
from services.user import domain
from services.user.domain import ProfileChange, ThrottlePolicy, ThrottleState

USER = Caller(user_id="u1", role="USER", session_id="s1")
ADMIN = Caller(user_id="a1", role="ADMIN", session_id="s2")


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("Ann@Example.COM", "ann@example.com"),
        ("  bob.smith+tag@mail.example.org ", "bob.smith+tag@mail.example.org"),
    ],
)
def test_emails_are_normalized(raw: str, normalized: str) -> None:
    assert domain.normalize_email(raw) == normalized


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "plain",
        "a@b",
        "@example.com",
        "a b@example.com",
        "a@@example.com",
        "a..b@example.com",
        ".a@example.com",
        "a@-example-.com",
        "a@example..com",
        "a@localhost",
        "ann@example.invalid",
        '"quoted"@example.com',
    ],
)
def test_malformed_emails_are_refused(bad: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        domain.normalize_email(bad)
    assert refused.value.reason == "INVALID_EMAIL"


@pytest.mark.parametrize("good", ["+15551234567", "+442071838750", "+4915112345678"])
def test_e164_phones_are_accepted(good: str) -> None:
    assert domain.validate_phone(good) == good


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ("5551234567", "INVALID_PHONE"),
        ("+0123456789", "INVALID_PHONE"),
        ("+1-555-123-4567", "INVALID_PHONE"),
        ("+1555", "INVALID_PHONE"),
        ("+1234567890123456", "FIELD_TOO_LONG"),
        ("+1555\x001234", "INVALID_CHARACTERS"),
    ],
)
def test_non_e164_phones_are_refused(bad: str, reason: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        domain.validate_phone(bad)
    assert refused.value.reason == reason


@pytest.mark.parametrize(
    "weak",
    [
        "short",
        "password123",
        "QWERTY123",
        "annabelle@example.com",
        "AnnaBelle",
        "        ",
        "\t\t\t\t\t\t\t\t\t",
        "aaaaaaaa",
        "x" * 128,
        "abababab",
        "aaaa bbbb",
        "12345678",
        "abcdefgh",
        "87654321",
        "qwertyui",
        "lkjhgfdsa",
        "12341234",
        "abcdabcdabcd",
    ],
)
def test_weak_passwords_are_refused(weak: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        domain.validate_password(weak, "annabelle@example.com")
    assert refused.value.reason == "WEAK_PASSWORD"


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("x" * 129, "FIELD_TOO_LONG"),
        ("x" * 3000, "FIELD_TOO_LONG"),
        ("pass\x00word!", "INVALID_CHARACTERS"),
    ],
)
def test_passwords_are_bounded_without_echoing_them(password: str, reason: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        domain.validate_password(password, "ann@example.com")
    assert refused.value.reason == reason
    assert password not in refused.value.message


@pytest.mark.parametrize(
    "good",
    [
        "correct horse battery staple",
        "bench-Radiator-7391",
        "Tr0ub4dor&3",
        "zz top rocks",
        "ünïcødé pässwörd",
        "".join(chr(0x41 + n % 26) + str(n % 7) for n in range(64)),
    ],
)
def test_unusual_passwords_of_any_composition_are_accepted(good: str) -> None:
    domain.validate_password(good, "ann@example.com")


@pytest.mark.parametrize("locale", ["en", "ru"])
def test_locales_are_en_or_ru(locale: str) -> None:
    assert domain.validate_locale(locale) == locale


@pytest.mark.parametrize("bad", ["de", "", "EN", "Ru", " en", "en\n", "en-US", "ru_RU", "e\x00n"])
def test_other_locales_are_refused_without_echo(bad: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        domain.validate_locale(bad)
    assert refused.value.reason == "INVALID_LOCALE"
    assert refused.value.message == 'locale must be "en" or "ru" (lower case)'


@pytest.mark.parametrize("zone", ["UTC", "Europe/Moscow", "America/Argentina/Buenos_Aires"])
def test_iana_place_zones_are_accepted(zone: str) -> None:
    assert domain.validate_time_zone(zone) == zone


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "localtime",
        "posix/Europe/Moscow",
        "right/UTC",
        "Factory",
        "europe/moscow",
        " Europe/Moscow",
        "Mars/Olympus_Mons",
        "../../etc/passwd",
        "Europe/Moscow\x00",
        "+03:00",
        "Z" * 6000,
    ],
)
def test_other_time_zones_are_refused_without_echo(bad: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        domain.validate_time_zone(bad)
    assert refused.value.reason == "INVALID_TIME_ZONE"
    assert refused.value.message == "timeZone must be an IANA time zone such as Europe/Moscow"


def test_a_new_account_defaults_to_en_and_utc_but_refuses_bad_values() -> None:
    assert domain.valid_preferences("", "") == ("en", "UTC")
    assert domain.valid_preferences("ru", "Europe/Moscow") == ("ru", "Europe/Moscow")
    with pytest.raises(InvalidArgument):
        domain.valid_preferences("de", "")
    with pytest.raises(InvalidArgument):
        domain.valid_preferences("", "localtime")


def test_every_accepted_zone_fits_the_databases_bound() -> None:
    longest = max(map(len, zoneinfo.available_timezones()))
    assert longest <= domain.TIME_ZONE_MAX_LENGTH


def test_users_change_their_own_locale_and_time_zone_admins_anyones() -> None:
    change = ProfileChange(locale="ru", time_zone="Europe/Moscow")
    domain.authorize_profile_change(USER, "u1", change)
    domain.authorize_profile_change(ADMIN, "u1", change)
    with pytest.raises(PermissionDenied):
        domain.authorize_profile_change(USER, "u2", change)


def test_users_change_only_their_own_profile() -> None:
    domain.authorize_profile_change(USER, "u1", ProfileChange(phone="+15551234567"))
    with pytest.raises(PermissionDenied):
        domain.authorize_profile_change(USER, "u2", ProfileChange(phone="+15551234567"))


def test_only_admins_change_roles_and_activation() -> None:
    with pytest.raises(PermissionDenied):
        domain.authorize_profile_change(USER, "u1", ProfileChange(role="ADMIN"))
    with pytest.raises(PermissionDenied):
        domain.authorize_profile_change(USER, "u1", ProfileChange(is_active=True))
    domain.authorize_profile_change(ADMIN, "u1", ProfileChange(role="ADMIN", is_active=True))


def test_an_admin_cannot_demote_themself() -> None:
    with pytest.raises(InvalidArgument):
        domain.authorize_profile_change(ADMIN, "a1", ProfileChange(role="USER"))


POLICY = ThrottlePolicy(max_failures=3, window=timedelta(minutes=10), lockout=timedelta(minutes=5))
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def fail(state: ThrottleState | None, at: datetime) -> ThrottleState:
    """One attempt counted, checked and failed."""
    counted = domain.begin_attempt(state, at, POLICY)
    assert counted is not None
    return domain.after_failure(counted, at, POLICY)


def test_throttle_locks_after_max_failures_and_the_lock_ends() -> None:
    state = None
    for minute in range(3):
        assert not domain.is_locked(state, T0 + timedelta(minutes=minute))
        state = fail(state, T0 + timedelta(minutes=minute))
    assert domain.is_locked(state, T0 + timedelta(minutes=3))
    assert not domain.is_locked(state, T0 + timedelta(minutes=2 + 5, seconds=1))


def test_throttle_counts_an_attempt_before_it_is_checked() -> None:
    state = None
    for _ in range(3):
        state = domain.begin_attempt(state, T0, POLICY)
        assert state is not None
    # Three attempts in flight: a fourth may not even be checked.
    assert domain.begin_attempt(state, T0, POLICY) is None
    # One of them succeeds: only its own count is forgiven.
    assert state is not None
    forgiven = domain.after_success(state)
    assert forgiven.failures == 2
    assert domain.begin_attempt(forgiven, T0, POLICY) is not None


def test_the_failure_that_reaches_the_limit_locks_and_none_clears_the_lock() -> None:
    state = None
    for _ in range(3):
        state = domain.begin_attempt(state, T0, POLICY)
    locked = domain.after_failure(state, T0, POLICY)
    assert domain.is_locked(locked, T0 + timedelta(minutes=4))
    # Failures of attempts counted before the lock, arriving after its window.
    later = T0 + timedelta(minutes=4, seconds=59)
    assert domain.after_failure(locked, later, POLICY) == locked
    assert domain.begin_attempt(locked, later, POLICY) is None
    assert domain.begin_attempt(locked, T0 + timedelta(minutes=5), POLICY) is not None


def test_a_refused_attempt_counts_on_no_key() -> None:
    other = ThrottlePolicy(10, timedelta(minutes=10), timedelta(minutes=5))
    full = ThrottleState(3, T0, None)
    fresh = ThrottleState(0, T0, None)
    with pytest.raises(Throttled) as refused:
        domain.count_attempt(
            {"a": full, "b": fresh}, {"a": POLICY, "b": other}, T0, "TOO_MANY", "no"
        )
    assert refused.value.metadata["retryAfterSeconds"] == "600"


def test_throttle_keys_are_bounded_whatever_they_name() -> None:
    keys = domain.LoginThrottling().keys("a" * 3000 + "@example.com", "203.0.113.9")
    assert all(len(key) <= 100 for key in keys)
    assert len(set(keys)) == 3


def test_throttle_window_expiry_forgets_old_failures() -> None:
    state = fail(None, T0)
    state = fail(state, T0 + timedelta(minutes=1))
    state = fail(state, T0 + timedelta(minutes=11))
    assert state.failures == 1
    assert not domain.is_locked(state, T0 + timedelta(minutes=11))


def test_an_attacker_elsewhere_does_not_share_the_owners_account_client_key() -> None:
    throttling = domain.LoginThrottling()
    attacker = throttling.keys("ann@example.com", "203.0.113.9")
    owner = throttling.keys("ann@example.com", "198.51.100.7")
    strict = [k for k, p in attacker.items() if p is throttling.account_from_client]
    assert strict
    assert not set(strict) & set(owner)
    assert throttling.account.max_failures > throttling.account_from_client.max_failures
    assert throttling.longest_window == timedelta(hours=1)
