"""User Management rules: pure functions, no I/O."""

import hashlib
import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path

from email_validator import EmailNotValidError, validate_email

from services.runtime import heating_model
from services.runtime.auth import Caller
from services.runtime.errors import InvalidArgument, PermissionDenied, Throttled

ROLE_USER = "USER"
ROLE_ADMIN = "ADMIN"
ROLES = frozenset({ROLE_USER, ROLE_ADMIN})

# Bounds of every string a client sends, checked before anything else is done
# with it (a query, a hash): longer input is refused, never stored or echoed.
EMAIL_MAX_LENGTH = 254  # RFC 5321's limit on a forward path
PASSWORD_MIN_LENGTH = 8
PASSWORD_MAX_LENGTH = 128
PHONE_MAX_LENGTH = 16  # "+" and at most 15 digits (E.164)
REFRESH_TOKEN_MAX_LENGTH = 128  # ours are 43 characters
DEVICE_TOKEN_MAX_LENGTH = 256  # ours are about 110
# The database's bound on a stored zone name; the longest IANA name has 32.
TIME_ZONE_MAX_LENGTH = 64

# The languages users are written to in: exactly these, lower case.
LOCALES = frozenset({"en", "ru"})
DEFAULT_LOCALE = "en"
DEFAULT_TIME_ZONE = "UTC"

# ASVS 5 (V6.2): no composition rules, but refuse what a guesser tries first.
MIN_DISTINCT_CHARACTERS = 4
_SEQUENCES = (
    "abcdefghijklmnopqrstuvwxyz",
    "01234567890",
    # Keyboard rows (QWERTY, QWERTZ, AZERTY).
    "qwertyuiop",
    "asdfghjkl",
    "zxcvbnm",
    "qwertzuiop",
    "yxcvbnm",
    "azertyuiop",
    "qsdfghjklm",
    "wxcvbn",
)
_E164 = re.compile(r"^\+[1-9][0-9]{7,14}$")


def require_text(value: str, field: str, max_length: int, *, required: bool = False) -> str:
    """A string field at the boundary: bounded, without NUL bytes; the error
    names the field and the bound, never what was sent."""
    if len(value) > max_length:
        raise InvalidArgument(
            "FIELD_TOO_LONG", f"{field} must be at most {max_length} characters", field=field
        )
    if "\x00" in value:
        raise InvalidArgument(
            "INVALID_CHARACTERS", f"{field} must not contain NUL characters", field=field
        )
    if required and not value.strip():
        raise InvalidArgument("FIELD_REQUIRED", f"{field} is required", field=field)
    return value


@cache
def common_passwords() -> frozenset[str]:
    lines = (Path(__file__).parent / "common_passwords.txt").read_text().splitlines()
    return frozenset(line.strip().lower() for line in lines if line and not line.startswith("#"))


def normalize_email(email: str) -> str:
    """The address as stored: checked by email-validator (syntax only, no DNS),
    ASCII (an internationalized domain in its xn-- form), lower case."""
    require_text(email, "email", EMAIL_MAX_LENGTH)
    try:
        valid = validate_email(email.strip(), check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as error:
        # The explanation may quote characters of the address: at most 254 of them.
        raise InvalidArgument(
            "INVALID_EMAIL", f"email is not a valid address: {error}", field="email"
        ) from None
    return valid.ascii_email.lower() if valid.ascii_email else valid.normalized.lower()


def login_email(email: str) -> str:
    """How a login names the account: as stored when it is a valid address;
    anything else cannot match an account but is throttled all the same."""
    try:
        return normalize_email(email)
    except InvalidArgument:
        return email.strip().lower()


def validate_phone(phone: str) -> str:
    require_text(phone, "phone", PHONE_MAX_LENGTH)
    phone = phone.strip()
    if not _E164.match(phone):
        raise InvalidArgument(
            "INVALID_PHONE", "phone must be in E.164 format, e.g. +15551234567", field="phone"
        )
    return phone


def validate_locale(locale: str) -> str:
    """Exactly "en" or "ru": case-sensitive, nothing around them."""
    if locale not in LOCALES:
        raise InvalidArgument(
            "INVALID_LOCALE", 'locale must be "en" or "ru" (lower case)', field="locale"
        )
    return locale


def validate_time_zone(time_zone: str) -> str:
    """An IANA place zone such as "Europe/Moscow" (heating_model.time_zone
    decides, as it does for heating schedules): not "localtime", "posix/...",
    "right/..." or anything else the zone database does not name as a place."""
    if heating_model.time_zone(time_zone) is None:
        raise InvalidArgument(
            "INVALID_TIME_ZONE",
            "timeZone must be an IANA time zone such as Europe/Moscow",
            field="timeZone",
        )
    return time_zone


def valid_preferences(locale: str, time_zone: str) -> tuple[str, str]:
    """A new account's locale and time zone: "en" and "UTC" when not given."""
    return (
        validate_locale(locale or DEFAULT_LOCALE),
        validate_time_zone(time_zone or DEFAULT_TIME_ZONE),
    )


def _smallest_period(text: str) -> int:
    """The length of the shortest block that `text` repeats ("abcabca" → 3)."""
    for period in range(1, len(text)):
        if all(text[i] == text[i % period] for i in range(len(text))):
            return period
    return len(text)


def _is_sequence(text: str) -> bool:
    """12345678, abcdefgh, 87654321, qwertyui: runs a guesser tries first."""
    if len(text) < 3:
        return False
    steps = {ord(b) - ord(a) for a, b in itertools.pairwise(text)}
    if steps in ({1}, {-1}):
        return True
    return any(text in row or text in row[::-1] for row in _SEQUENCES)


def _is_degenerate(password: str) -> bool:
    lowered = password.lower()
    if not lowered.strip() or len(set(lowered)) < MIN_DISTINCT_CHARACTERS:
        return True
    # A sequence, or one repeated ("12341234", "abcdabcd").
    return _is_sequence(lowered[: _smallest_period(lowered)])


def validate_password(password: str, email: str) -> None:
    """Length 8 to 128, not breached or common, not degenerate, not the email."""
    require_text(password, "password", PASSWORD_MAX_LENGTH)
    if len(password) < PASSWORD_MIN_LENGTH:
        raise InvalidArgument(
            "WEAK_PASSWORD",
            f"password must be {PASSWORD_MIN_LENGTH} to {PASSWORD_MAX_LENGTH} characters long",
            field="password",
        )
    lowered = password.strip().lower()
    email = email.lower()
    if (
        lowered in common_passwords()
        or lowered in (email, email.split("@")[0])
        or _is_degenerate(password)
    ):
        raise InvalidArgument(
            "WEAK_PASSWORD", "password is too common or too easy to guess", field="password"
        )


def valid_account(email: str, password: str, phone: str, role: str) -> tuple[str, str]:
    """A new account's email and phone as stored, once every field is checked."""
    require_text(email, "email", EMAIL_MAX_LENGTH)
    require_text(password, "password", PASSWORD_MAX_LENGTH)
    require_text(phone, "phone", PHONE_MAX_LENGTH)
    email = normalize_email(email)
    # An administrator created from configuration may have no phone.
    phone = validate_phone(phone) if phone or role == ROLE_USER else ""
    validate_password(password, email)
    return email, phone


@dataclass(frozen=True)
class ProfileChange:
    """The fields an UpdateUser call asks to change (None: leave as is)."""

    email: str | None = None
    phone: str | None = None
    role: str | None = None
    is_active: bool | None = None
    # Proof that the caller knows the password, to change their own email.
    current_password: str | None = None
    # Given explicitly, even empty, they must be valid: "" is refused.
    locale: str | None = None
    time_zone: str | None = None

    def check_bounds(self) -> None:
        if self.email is not None:
            require_text(self.email, "email", EMAIL_MAX_LENGTH)
        if self.phone is not None:
            require_text(self.phone, "phone", PHONE_MAX_LENGTH)
        if self.current_password is not None:
            require_text(self.current_password, "currentPassword", PASSWORD_MAX_LENGTH)


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


def needs_current_password(caller: Caller, target_user_id: str) -> bool:
    """Changing one's own email takes the password; an administrator changing
    someone else's does not."""
    return caller.user_id == target_user_id


@dataclass(frozen=True)
class ThrottlePolicy:
    """At most `max_failures` counted attempts per `window`; reaching it with a
    failure locks the key for `lockout`."""

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


def begin_attempt(
    state: ThrottleState | None, now: datetime, policy: ThrottlePolicy
) -> ThrottleState | None:
    """Count an attempt before it is checked; None when the key may not try now
    (locked, or its budget taken by attempts counted before)."""
    if is_locked(state, now):
        return None
    if state is None or now - state.window_started_at >= policy.window:
        state = ThrottleState(failures=0, window_started_at=now, locked_until=None)
    if state.failures >= policy.max_failures:
        return None
    return ThrottleState(state.failures + 1, state.window_started_at, None)


def after_failure(
    state: ThrottleState | None, now: datetime, policy: ThrottlePolicy
) -> ThrottleState:
    """The counted attempt failed: it stays counted, and the failure that
    reaches the limit locks the key. An active lock is left as it is: a
    failure neither clears nor prolongs it, and every lock ends by itself."""
    if state is None:  # pruned meanwhile: count it afresh
        state = ThrottleState(failures=1, window_started_at=now, locked_until=None)
    if is_locked(state, now) or state.failures < policy.max_failures:
        return state
    return ThrottleState(failures=0, window_started_at=now, locked_until=now + policy.lockout)


def after_success(state: ThrottleState) -> ThrottleState:
    """The counted attempt succeeded: forgive that one count, nothing else."""
    return ThrottleState(max(0, state.failures - 1), state.window_started_at, state.locked_until)


def retry_after(state: ThrottleState, now: datetime, policy: ThrottlePolicy) -> datetime:
    if state.locked_until is not None and now < state.locked_until:
        return state.locked_until
    return state.window_started_at + policy.window


def count_attempt(
    states: Mapping[str, ThrottleState],
    keys: Mapping[str, ThrottlePolicy],
    now: datetime,
    reason: str,
    message: str,
) -> dict[str, ThrottleState]:
    """Count one attempt on every key, or on none: Throttled (with
    retryAfterSeconds) when any key may not try now."""
    counted: dict[str, ThrottleState] = {}
    refused_until: list[datetime] = []
    for key, policy in keys.items():
        state = states.get(key)
        after = begin_attempt(state, now, policy)
        if after is None:
            assert state is not None
            refused_until.append(retry_after(state, now, policy))
        else:
            counted[key] = after
    if refused_until:
        wait = (max(refused_until) - now).total_seconds()
        raise Throttled(reason, message, retryAfterSeconds=str(max(1, int(wait))))
    return counted


def throttle_key(kind: str, *parts: str) -> str:
    """A bounded key whatever the parts' length: kind + SHA-256 of the parts."""
    digest = hashlib.sha256("\x00".join(parts).encode("utf-8", "surrogatepass")).hexdigest()
    return f"{kind}:{digest}"


def account_client_key(email: str, client: str) -> str:
    return throttle_key("account-client", email, client)


@dataclass(frozen=True)
class LoginThrottling:
    """OWASP's device cookies plus three keys for everyone else.

    A login presenting a valid device token of the account (one an earlier
    successful login on that device received) is limited only by that token's
    own failures. Logins without one are "untrusted" and share three keys: a
    guesser at one address is stopped quickly, a guesser spread over many
    addresses hits the per-account ceiling, and one address spraying many
    accounts hits the per-client ceiling. A stranger can thus lock out
    untrusted logins for a while, but never a device the owner used before.
    """

    account_from_client: ThrottlePolicy = ThrottlePolicy(
        5, timedelta(minutes=15), timedelta(minutes=15)
    )
    client: ThrottlePolicy = ThrottlePolicy(30, timedelta(minutes=15), timedelta(minutes=15))
    account: ThrottlePolicy = ThrottlePolicy(50, timedelta(hours=1), timedelta(minutes=30))
    device: ThrottlePolicy = ThrottlePolicy(10, timedelta(minutes=15), timedelta(minutes=15))

    def keys(self, email: str, client: str) -> dict[str, ThrottlePolicy]:
        """The keys of a login without a valid device token."""
        return {
            account_client_key(email, client): self.account_from_client,
            throttle_key("client", client): self.client,
            throttle_key("account", email): self.account,
        }

    def device_keys(self, device_id: str) -> dict[str, ThrottlePolicy]:
        """The one key of a login with a valid device token."""
        return {throttle_key("device", device_id): self.device}

    @property
    def longest_window(self) -> timedelta:
        policies = (self.account_from_client, self.client, self.account, self.device)
        return max(max(policy.window, policy.lockout) for policy in policies)


# Registrations from one client address; raise it where many people share one.
REGISTRATIONS_PER_CLIENT = ThrottlePolicy(10, timedelta(hours=1), timedelta(hours=1))


def registration_key(client: str) -> str:
    return throttle_key("register-client", client)


def password_check_key(user_id: str) -> str:
    """Re-entering one's password (to change the email) is guessing too."""
    return throttle_key("password-check", user_id)
