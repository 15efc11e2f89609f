"""Space Management rules, without a server."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.runtime.auth import Caller
from services.runtime.errors import DomainError, InvalidArgument, NotFound, PermissionDenied
from services.runtime.space_roles import GUEST, MAINTAINER, OWNER, Membership, Right
from services.runtime.text import display_name
from services.runtime.user_status import user_not_available
from services.space import domain

NOW = datetime(2026, 1, 1, tzinfo=UTC)
USER = Caller(user_id=str(uuid.uuid4()), role="USER", session_id="s")
ADMIN = Caller(user_id=str(uuid.uuid4()), role="ADMIN", session_id="s")


# Names


@pytest.mark.parametrize(
    ("name", "stored"),
    [
        ("Квартира", "Квартира"),
        ("  Dacha  ", "Dacha"),
        ("й" * 100, "й" * 100),
        ("🏠 Home", "🏠 Home"),
    ],
)
def test_a_name_is_one_printable_line_of_at_most_100_characters(name: str, stored: str) -> None:
    assert display_name(name) == stored


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "FIELD_REQUIRED"),
        ("   ", "FIELD_REQUIRED"),
        ("x" * 101, "FIELD_TOO_LONG"),
        ("y" * 6 * 1024, "FIELD_TOO_LONG"),
        ("nul\x00byte", "INVALID_CHARACTERS"),
        ("tab\there", "INVALID_CHARACTERS"),
        ("two\nlines", "INVALID_CHARACTERS"),
        ("bell\u0007", "INVALID_CHARACTERS"),
        ("line\u2028separator", "INVALID_CHARACTERS"),
    ],
)
def test_bad_names_are_refused_without_repeating_them(name: str, reason: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        display_name(name)
    assert refused.value.reason == reason
    assert name.strip() == "" or name not in refused.value.message


# Membership terms


@pytest.mark.parametrize("role", [OWNER, MAINTAINER, GUEST])
def test_the_three_roles_without_expiry_are_valid(role: str) -> None:
    domain.check_terms(role, None, NOW)


def test_a_guest_may_expire_in_the_future() -> None:
    domain.check_terms(GUEST, NOW + timedelta(seconds=1), NOW)


@pytest.mark.parametrize(
    ("role", "expire_at", "reason"),
    [
        ("ADMIN", None, "INVALID_ROLE"),
        ("", None, "INVALID_ROLE"),
        ("owner", None, "INVALID_ROLE"),
        (OWNER, NOW + timedelta(days=1), "EXPIRY_ONLY_FOR_GUESTS"),
        (MAINTAINER, NOW + timedelta(days=1), "EXPIRY_ONLY_FOR_GUESTS"),
        (GUEST, NOW, "EXPIRY_IN_PAST"),
        (GUEST, NOW - timedelta(seconds=1), "EXPIRY_IN_PAST"),
    ],
)
def test_bad_terms_are_refused_with_a_reason(
    role: str, expire_at: datetime | None, reason: str
) -> None:
    with pytest.raises(InvalidArgument) as refused:
        domain.check_terms(role, expire_at, NOW)
    assert refused.value.reason == reason


# Rights


@pytest.mark.parametrize(
    ("role", "right", "allowed"),
    [
        (OWNER, Right.READ, True),
        (OWNER, Right.MANAGE_MEMBERS, True),
        (OWNER, Right.MANAGE_DEVICES, True),
        (MAINTAINER, Right.READ, True),
        (MAINTAINER, Right.MANAGE_MEMBERS, False),
        (MAINTAINER, Right.MANAGE_DEVICES, True),
        (GUEST, Right.READ, True),
        (GUEST, Right.MANAGE_MEMBERS, False),
        (GUEST, Right.MANAGE_DEVICES, False),
    ],
)
def test_members_hold_their_roles_rights_and_no_others(
    role: str, right: Right, allowed: bool
) -> None:
    if allowed:
        domain.authorize(USER, Membership(role), right, NOW)
        return
    with pytest.raises(PermissionDenied) as refused:
        domain.authorize(USER, Membership(role), right, NOW)
    assert refused.value.reason == "SPACE_ROLE_INSUFFICIENT"


def test_a_non_member_is_told_the_space_does_not_exist() -> None:
    with pytest.raises(NotFound) as refused:
        domain.authorize(USER, None, Right.READ, NOW)
    assert refused.value.reason == "SPACE_NOT_FOUND"


def test_an_expired_guest_is_no_member_from_the_instant_it_expires() -> None:
    guest = Membership(GUEST, expire_at=NOW)
    domain.authorize(USER, guest, Right.READ, NOW - timedelta(microseconds=1))
    with pytest.raises(NotFound):
        domain.authorize(USER, guest, Right.READ, NOW)


def test_an_admin_needs_no_membership() -> None:
    for right in Right:
        domain.authorize(ADMIN, None, right, NOW)


def test_members_belong_to_homes() -> None:
    domain.require_home(True)
    with pytest.raises(InvalidArgument) as refused:
        domain.require_home(False)
    assert refused.value.reason == "MEMBERS_BELONG_TO_HOME"


# Owners


def test_the_last_owner_cannot_stop_being_one() -> None:
    only = uuid.uuid4()
    with pytest.raises(DomainError) as refused:
        domain.check_owner_remains([only], only)
    assert refused.value.reason == "LAST_OWNER"
    assert refused.value.code.name == "FAILED_PRECONDITION"


def test_an_owner_among_several_may_stop_being_one() -> None:
    first, second = uuid.uuid4(), uuid.uuid4()
    domain.check_owner_remains([first, second], first)
    domain.check_owner_remains([first], second)  # not an owner: nothing to keep


def test_the_primary_owner_stays_while_an_owner_then_the_earliest_takes_over() -> None:
    first, second, third = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    assert domain.primary_owner(second, [first, second, third]) == second
    assert domain.primary_owner(second, [first, third]) == first
    assert domain.primary_owner(None, [third]) == third
    assert domain.primary_owner(first, []) is None


def test_unknown_and_inactive_users_get_one_answer() -> None:
    refusal = user_not_available("userId")
    assert refusal.reason == "USER_NOT_AVAILABLE"
    assert refusal.message == "no active user with this id"
