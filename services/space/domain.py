"""Space Management rules: pure functions, no I/O.

Who may do what is the runtime's role table (services/runtime/space_roles.py);
this module adds what only the Space service decides: valid names and
membership terms, and that a home keeps an OWNER.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from services.runtime.auth import Caller
from services.runtime.errors import DomainError, InvalidArgument, NotFound
from services.runtime.space_roles import GUEST, SPACE_ROLES, Membership, Right
from services.runtime.space_roles import authorize as authorize_role


def space_not_found() -> NotFound:
    # One answer for "unknown" and "not yours": ids cannot be probed.
    return NotFound("SPACE_NOT_FOUND", "no such space")


def member_not_found() -> NotFound:
    return NotFound("MEMBER_NOT_FOUND", "this user is not a member of the space")


@dataclass(frozen=True)
class SpaceLimits:
    """How much one person may create: a platform's resources are shared."""

    # Counted by whom a home was created for, not by who owns it now: handing
    # homes to someone neither fills their quota nor frees one's own.
    homes_per_owner: int = 100
    rooms_per_home: int = 100


def check_terms(role: str, expire_at: datetime | None, now: datetime) -> None:
    """A membership's role and expiry, as AddSpaceUser and UpdateSpaceUser take them."""
    if role not in SPACE_ROLES:
        raise InvalidArgument(
            "INVALID_ROLE", "role must be OWNER, MAINTAINER or GUEST", field="role"
        )
    if expire_at is None:
        return
    if role != GUEST:
        raise InvalidArgument(
            "EXPIRY_ONLY_FOR_GUESTS", "only a GUEST's membership may expire", field="expireTime"
        )
    if expire_at <= now:
        raise InvalidArgument(
            "EXPIRY_IN_PAST", "expireTime must be in the future", field="expireTime"
        )


def authorize(caller: Caller, membership: Membership | None, right: Right, now: datetime) -> None:
    """Raise unless the caller (with this membership of the home) holds `right`:
    non-members and expired guests are told the space does not exist."""
    authorize_role(caller, membership, right, now, space_not_found)


def require_home(is_home: bool) -> None:
    if not is_home:
        raise InvalidArgument(
            "MEMBERS_BELONG_TO_HOME",
            "members belong to the home: use the home's id, not a room's",
            field="spaceId",
        )


def check_owner_remains(owners: Sequence[uuid.UUID], user_id: uuid.UUID) -> None:
    """`user_id` stops being an OWNER (demoted, removed, leaving): refused when
    no other OWNER would be left, whoever asks, an ADMIN too."""
    if user_id in owners and len(set(owners)) == 1:
        raise DomainError("LAST_OWNER", "a space keeps at least one OWNER")


def primary_owner(current: uuid.UUID | None, owners: Sequence[uuid.UUID]) -> uuid.UUID | None:
    """The home's primary owner once its OWNERs are `owners` (earliest member
    first): the current one while it stays an OWNER, else the earliest."""
    if current is not None and current in owners:
        return current
    return owners[0] if owners else None
