"""Who may do what in a space: the one role table every service enforces.

A user's rights in a space come from their membership of its home (a room's
members are its home's). ADMINs may do everything. A non-member, or a guest
whose access has expired, is told the thing does not exist (404) rather than
that it is forbidden, so ids cannot be probed; a member without the right gets
PERMISSION_DENIED.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from warmhouse.space.v1 import space_pb2

from services.runtime.auth import Caller
from services.runtime.errors import NotFound, PermissionDenied

OWNER = "OWNER"
MAINTAINER = "MAINTAINER"
GUEST = "GUEST"
SPACE_ROLES = (OWNER, MAINTAINER, GUEST)


def role_named(value: int) -> str | None:
    """The role a SpaceUserRole number from the wire names; None for
    ROLE_UNSPECIFIED or a number no role has."""
    known = space_pb2.SpaceUserRole.DESCRIPTOR.values_by_number.get(value)
    return str(known.name) if known is not None and known.name in SPACE_ROLES else None


class Right(Enum):
    # See the space, its members, its devices and their logs.
    READ = "read"
    # Add and remove members, change their roles; rename and delete the space.
    MANAGE_MEMBERS = "manage members"
    # Register, rename, move and retire devices, set their status, rotate secrets.
    MANAGE_DEVICES = "manage devices"
    # Send any command to a device, change its schedule.
    OPERATE_DEVICES = "operate devices"
    # Set a heating device's target temperature.
    SET_TEMPERATURE = "set temperature"


ROLE_RIGHTS: dict[str, frozenset[Right]] = {
    OWNER: frozenset(Right),
    MAINTAINER: frozenset(
        {Right.READ, Right.MANAGE_DEVICES, Right.OPERATE_DEVICES, Right.SET_TEMPERATURE}
    ),
    GUEST: frozenset({Right.READ, Right.SET_TEMPERATURE}),
}


@dataclass(frozen=True)
class Membership:
    """A user's membership of a home, as whichever service holds it knows it."""

    role: str
    # GUEST only: access ends at this instant, whether or not anyone acted.
    expire_at: datetime | None = None

    def is_live(self, now: datetime) -> bool:
        return self.expire_at is None or now < self.expire_at

    def allows(self, right: Right, now: datetime) -> bool:
        return self.is_live(now) and right in ROLE_RIGHTS.get(self.role, frozenset())


def authorize(
    caller: Caller,
    membership: Membership | None,
    right: Right,
    now: datetime,
    not_found: Callable[[], NotFound],
) -> None:
    """Raise unless `caller` (with `membership` of the home) holds `right`."""
    if caller.is_admin:
        return
    if membership is None or not membership.is_live(now):
        raise not_found()
    if not membership.allows(right, now):
        raise PermissionDenied(
            "SPACE_ROLE_INSUFFICIENT",
            f"your role {membership.role} in this space does not allow this ({right.value})",
        )
