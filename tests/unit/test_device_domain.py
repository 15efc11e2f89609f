"""The Device service's rules: names, types, statuses, log lines, secrets, the projection."""

import hashlib
import hmac
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.device import domain
from services.device.device_secrets import SECRET_MAX_LENGTH, DeviceSecrets
from services.device.ports import ProjectedAccess
from services.runtime.auth import Caller
from services.runtime.errors import InvalidArgument
from services.runtime.space_roles import GUEST, MAINTAINER, Membership, Right
from services.runtime.text import display_name

KEY = b"device-secret-key-for-unit-tests-0123456789"
NOW = datetime(2026, 1, 1, tzinfo=UTC)
USER = Caller(str(uuid.uuid4()), "USER", "s1")
ADMIN = Caller(str(uuid.uuid4()), "ADMIN", "s2")


def reason(call: object, *args: object) -> str:
    with pytest.raises(InvalidArgument) as refusal:
        call(*args)  # type: ignore[operator]
    return refusal.value.reason


# Names


def test_a_name_is_stored_without_surrounding_spaces() -> None:
    assert display_name("  Living room radiator ") == "Living room radiator"


def test_names_in_any_script_are_accepted() -> None:
    assert display_name("Радиатор 2") == "Радиатор 2"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("", "FIELD_REQUIRED"),
        ("   ", "FIELD_REQUIRED"),
        ("x" * 101, "FIELD_TOO_LONG"),
        ("heater\x00", "INVALID_CHARACTERS"),
        ("two\nlines", "INVALID_CHARACTERS"),
        ("bell\x07", "INVALID_CHARACTERS"),
        ("line\u2028separator", "INVALID_CHARACTERS"),
    ],
)
def test_bad_names_are_refused(name: str, expected: str) -> None:
    assert reason(display_name, name) == expected


def test_a_name_of_exactly_100_characters_is_accepted() -> None:
    assert display_name("x" * 100) == "x" * 100


def test_a_refused_name_is_not_repeated_in_the_error() -> None:
    with pytest.raises(InvalidArgument) as refusal:
        display_name("secret\x00stuff")
    assert "secret" not in refusal.value.message


# Types, statuses and log kinds


@pytest.mark.parametrize("value", ["HEATER", "SENSOR", "CONTROLLER"])
def test_the_three_device_types_are_accepted(value: str) -> None:
    assert domain.device_type(value) == value


@pytest.mark.parametrize("value", ["", "DEVICE_TYPE_UNSPECIFIED", "heater", "TOASTER"])
def test_other_device_types_are_refused(value: str) -> None:
    assert reason(domain.device_type, value) == "INVALID_DEVICE_TYPE"


@pytest.mark.parametrize("value", ["ONLINE", "OFFLINE", "ERROR"])
def test_the_three_statuses_are_accepted(value: str) -> None:
    assert domain.device_status(value) == value


@pytest.mark.parametrize("value", ["", "DEVICE_STATUS_UNSPECIFIED", "online", "BROKEN"])
def test_other_statuses_are_refused(value: str) -> None:
    assert reason(domain.device_status, value) == "INVALID_DEVICE_STATUS"


def test_no_kind_filter_means_every_kind() -> None:
    assert domain.log_kind_filter(None) is None
    assert domain.log_kind_filter("READING_RECORDED") == "READING_RECORDED"


def test_an_unknown_kind_filter_is_refused() -> None:
    assert reason(domain.log_kind_filter, "") == "INVALID_LOG_KIND"


def test_a_status_change_reads_old_then_new() -> None:
    assert domain.status_line("ONLINE", "OFFLINE") == "status ONLINE -> OFFLINE"


def test_a_new_device_has_never_connected() -> None:
    assert domain.INITIAL_STATUS == "OFFLINE"


# Secrets


def test_a_new_secret_holds_256_random_bits() -> None:
    secrets = {DeviceSecrets.new() for _ in range(50)}
    assert len(secrets) == 50
    assert all(len(secret) == 43 for secret in secrets)


def test_a_secret_matches_its_own_hash_only() -> None:
    hashing = DeviceSecrets(KEY)
    device = uuid.uuid4()
    secret = DeviceSecrets.new()
    stored = hashing.hash(device, secret)
    assert hashing.matches(device, secret, stored)
    assert not hashing.matches(device, DeviceSecrets.new(), stored)
    assert not hashing.matches(device, secret[:-1], stored)


def test_a_hash_is_bound_to_its_device_and_key() -> None:
    device, other = uuid.uuid4(), uuid.uuid4()
    secret = DeviceSecrets.new()
    stored = DeviceSecrets(KEY).hash(device, secret)
    # Copied onto another device's row, it does not let the secret in there.
    assert not DeviceSecrets(KEY).matches(other, secret, stored)
    # Without the key, the database alone does not check guesses.
    assert not DeviceSecrets(KEY + b"other").matches(device, secret, stored)


def test_the_hash_is_hmac_sha256_of_id_and_secret() -> None:
    device = uuid.uuid4()
    expected = hmac.new(KEY, device.bytes + b"s3cret", hashlib.sha256).digest()
    assert DeviceSecrets(KEY).hash(device, "s3cret") == expected


def test_an_empty_or_overlong_secret_never_matches() -> None:
    hashing = DeviceSecrets(KEY)
    device = uuid.uuid4()
    long_secret = "a" * (SECRET_MAX_LENGTH + 1)
    assert not hashing.matches(device, "", hashing.hash(device, ""))
    assert not hashing.matches(device, long_secret, hashing.hash(device, long_secret))


# What the projection alone may grant


HOME = uuid.uuid4()


def test_a_live_membership_with_the_right_is_a_yes() -> None:
    projected = ProjectedAccess(HOME, membership=Membership(MAINTAINER))
    assert projected.allows(USER, Right.MANAGE_DEVICES, NOW)


@pytest.mark.parametrize(
    "projected",
    [
        ProjectedAccess(None),
        ProjectedAccess(HOME),
        ProjectedAccess(HOME, deleted=True, membership=Membership(MAINTAINER)),
        ProjectedAccess(HOME, membership=Membership(GUEST, NOW - timedelta(seconds=1))),
        ProjectedAccess(HOME, membership=Membership(GUEST)),
    ],
    ids=["unknown space", "no membership", "deleted space", "expired guest", "too small a role"],
)
def test_anything_else_is_not_a_yes(projected: ProjectedAccess) -> None:
    assert not projected.allows(USER, Right.MANAGE_DEVICES, NOW)


def test_a_guest_expiring_exactly_now_is_no_longer_a_member() -> None:
    projected = ProjectedAccess(HOME, membership=Membership(GUEST, NOW))
    assert not projected.allows(USER, Right.READ, NOW)


def test_an_admin_needs_only_a_known_live_space() -> None:
    assert ProjectedAccess(HOME).allows(ADMIN, Right.MANAGE_DEVICES, NOW)
    assert not ProjectedAccess(None).allows(ADMIN, Right.READ, NOW)
    assert not ProjectedAccess(HOME, deleted=True).allows(ADMIN, Right.READ, NOW)
