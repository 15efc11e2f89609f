"""User Management rules: pure functions, no I/O."""

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path

from services.runtime.auth import Caller
from services.runtime.errors import InvalidArgument, PermissionDenied

ROLE_USER = "USER"
ROLE_ADMIN = "ADMIN"
ROLES = frozenset({ROLE_USER, ROLE_ADMIN})
PASSWORD_MIN_LENGTH = 8
PASSWORD_MAX_LENGTH = 128
_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
_E164 = re.compile(r"^\+[1-9][0-9]{7,14}$")


@cache
def common_passwords() -> frozenset[str]:
    lines = (Path(__file__).parent / "common_passwords.txt").read_text().splitlines()
    return frozenset(line.strip().lower() for line in lines if line and not line.startswith("#"))


def normalize_email(email: str) -> str:
    normalized = email.strip().lower()
    if len(normalized) > 254 or not _EMAIL.match(normalized):
        raise InvalidArgument("INVALID_EMAIL", "email is not a valid address", field="email")
    return normalized


def validate_phone(phone: str) -> str:
    phone = phone.strip()
    if not _E164.match(phone):
        raise InvalidArgument(
            "INVALID_PHONE", "phone must be in E.164 format, e.g. +15551234567", field="phone"
        )
    return phone


def validate_password(password: str, email: str) -> None:
    if not PASSWORD_MIN_LENGTH <= len(password) <= PASSWORD_MAX_LENGTH:
        raise InvalidArgument(
            "WEAK_PASSWORD",
            f"password must be {PASSWORD_MIN_LENGTH} to {PASSWORD_MAX_LENGTH} characters long",
            field="password",
        )
    lowered = password.lower()
    if lowered in common_passwords() or lowered == email or lowered == email.split("@")[0]:
        raise InvalidArgument(
            "WEAK_PASSWORD", "password is too common or too easy to guess", field="password"
        )


@dataclass(frozen=True)
class ProfileChange:
    """The fields an UpdateUser call asks to change (None: leave as is)."""

    email: str | None = None
    phone: str | None = None
    role: str | None = None
    is_active: bool | None = None


def authorize_profile_change(caller: Caller, target_user_id: str, change: ProfileChange) -> None:
    caller.require_self_or_admin(target_user_id)
    if change.role is not None and not caller.is_admin:
        raise PermissionDenied("ADMIN_REQUIRED", "only an administrator may change roles")
    if change.is_active is not None and not caller.is_admin:
        raise PermissionDenied("ADMIN_REQUIRED", "only an administrator may (re)activate accounts")
    if change.role is not None and change.role not in ROLES:
        raise InvalidArgument("INVALID_ROLE", "role must be USER or ADMIN", field="role")
    if caller.user_id == target_user_id and change.role == ROLE_USER:
        raise InvalidArgument("SELF_DEMOTION", "an administrator cannot demote themself")


@dataclass(frozen=True)
class ThrottlePolicy:
    """At most `max_failures` failed logins per `window`; then a pause of `lockout`."""

    max_failures: int
    window: timedelta
    lockout: timedelta


@dataclass(frozen=True)
class ThrottleState:
    failures: int
    window_started_at: datetime
    locked_until: datetime | None


def is_locked(state: ThrottleState | None, now: datetime) -> bool:
    return state is not None and state.locked_until is not None and now < state.locked_until


def after_failure(
    state: ThrottleState | None, now: datetime, policy: ThrottlePolicy
) -> ThrottleState:
    """Count one more failure; a lock always ends, so nobody is locked out for good."""
    if state is None or now - state.window_started_at >= policy.window:
        state = ThrottleState(failures=0, window_started_at=now, locked_until=None)
    failures = state.failures + 1
    locked_until = now + policy.lockout if failures >= policy.max_failures else None
    if locked_until is not None:
        return ThrottleState(failures=0, window_started_at=now, locked_until=locked_until)
    return ThrottleState(failures, state.window_started_at, None)


def account_client_key(email: str, client: str) -> str:
    return f"account-client:{email}|{client}"


@dataclass(frozen=True)
class LoginThrottling:
    """Three keys per attempt: a guesser at one address is stopped quickly
    without locking the owner out from their own address; a guesser spread over
    many addresses still hits the per-account ceiling, and one address spraying
    many accounts hits the per-client ceiling."""

    account_from_client: ThrottlePolicy = ThrottlePolicy(
        5, timedelta(minutes=15), timedelta(minutes=15)
    )
    client: ThrottlePolicy = ThrottlePolicy(30, timedelta(minutes=15), timedelta(minutes=15))
    account: ThrottlePolicy = ThrottlePolicy(50, timedelta(hours=1), timedelta(minutes=30))

    def keys(self, email: str, client: str) -> dict[str, ThrottlePolicy]:
        return {
            account_client_key(email, client): self.account_from_client,
            f"client:{client}": self.client,
            f"account:{email}": self.account,
        }

    @property
    def longest_window(self) -> timedelta:
        return max(self.account_from_client.window, self.client.window, self.account.window)
