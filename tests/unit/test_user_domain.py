from datetime import UTC, datetime, timedelta

import pytest

from services.runtime.auth import Caller
from services.runtime.errors import InvalidArgument, PermissionDenied
from services.user import domain
from services.user.domain import ProfileChange, ThrottlePolicy

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
    "bad", ["", "plain", "a@b", "@example.com", "a b@example.com", "a@@example.com"]
)
def test_malformed_emails_are_refused(bad: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        domain.normalize_email(bad)
    assert refused.value.reason == "INVALID_EMAIL"


@pytest.mark.parametrize("good", ["+15551234567", "+442071838750", "+4915112345678"])
def test_e164_phones_are_accepted(good: str) -> None:
    assert domain.validate_phone(good) == good


@pytest.mark.parametrize(
    "bad", ["5551234567", "+0123456789", "+1-555-123-4567", "+1555", "+1234567890123456"]
)
def test_non_e164_phones_are_refused(bad: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        domain.validate_phone(bad)
    assert refused.value.reason == "INVALID_PHONE"


@pytest.mark.parametrize(
    "weak", ["short", "x" * 129, "password123", "QWERTY123", "annabelle@example.com", "annabelle"]
)
def test_weak_passwords_are_refused(weak: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        domain.validate_password(weak, "annabelle@example.com")
    assert refused.value.reason == "WEAK_PASSWORD"


def test_a_long_unusual_password_is_accepted() -> None:
    domain.validate_password("correct horse battery staple", "ann@example.com")
    domain.validate_password("x" * 128, "ann@example.com")


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


def test_throttle_locks_after_max_failures_and_the_lock_ends() -> None:
    state = None
    for minute in range(3):
        assert not domain.is_locked(state, T0 + timedelta(minutes=minute))
        state = domain.after_failure(state, T0 + timedelta(minutes=minute), POLICY)
    assert domain.is_locked(state, T0 + timedelta(minutes=3))
    assert not domain.is_locked(state, T0 + timedelta(minutes=2 + 5, seconds=1))


def test_throttle_window_expiry_forgets_old_failures() -> None:
    state = domain.after_failure(None, T0, POLICY)
    state = domain.after_failure(state, T0 + timedelta(minutes=1), POLICY)
    state = domain.after_failure(state, T0 + timedelta(minutes=11), POLICY)
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
