"""The access check every Device RPC runs: may this caller do this in that space?

Space owns memberships; this service keeps a copy of them, fed by Space's
events (space_events.py). The copy answers YES on its own: a read that
succeeds costs no call. Any NO (an unknown space, no membership, an ended or
expired one, too small a role) is confirmed with Space (GetSpaceAccess),
whose answer decides and is stored. So a user who has just created a space
can register a device in it at once, though its events may not have arrived,
and a removal or an expiry takes effect as soon as the copy has it.
"""

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import grpc
from warmhouse.space.v1 import space_pb2, space_pb2_grpc

from services.device.ports import DeviceRepositories, ProjectedAccess
from services.runtime.auth import Caller
from services.runtime.clock import Clock, utc_now
from services.runtime.errors import NotFound, dependency_unavailable
from services.runtime.space_roles import Membership, Right, authorize, role_named
from services.runtime.unit_of_work import UnitOfWork

_SPACE_SERVICE = space_pb2.DESCRIPTOR.services_by_name["SpaceService"].full_name
GET_SPACE_ACCESS = f"/{_SPACE_SERVICE}/GetSpaceAccess"
# Space cannot answer right now: the caller may retry.
_RETRYABLE = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.ABORTED}
)


@dataclass(frozen=True)
class SpaceAccessAnswer:
    """What Space says of a user and a space."""

    space_id: uuid.UUID
    home_id: uuid.UUID
    # None when the user is not a (live) member.
    role: str | None
    expire_at: datetime | None
    # The home's membership version the answer reflects.
    version: int


class SpaceDirectory(Protocol):
    async def access(self, space_id: uuid.UUID, user_id: uuid.UUID) -> SpaceAccessAnswer | None:
        """Space's answer; None when the space does not exist."""


class GrpcSpaceDirectory:
    """SpaceService.GetSpaceAccess over a channel opened with this service's credential."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub = space_pb2_grpc.SpaceServiceStub(channel)

    async def access(self, space_id: uuid.UUID, user_id: uuid.UUID) -> SpaceAccessAnswer | None:
        request = space_pb2.GetSpaceAccessRequest(space_id=str(space_id), user_id=str(user_id))
        try:
            response = await self._stub.GetSpaceAccess(request)
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return None
            if error.code() in _RETRYABLE:
                raise dependency_unavailable("space") from None
            raise
        return answer_of(space_id, response)


def answer_of(space_id: uuid.UUID, response: space_pb2.GetSpaceAccessResponse) -> SpaceAccessAnswer:
    expire_at = (
        response.expire_time.ToDatetime(tzinfo=UTC) if response.HasField("expire_time") else None
    )
    return SpaceAccessAnswer(
        space_id=space_id,
        home_id=uuid.UUID(response.home_space_id),
        role=role_named(response.role),
        expire_at=expire_at,
        version=response.membership_version,
    )


class AccessCheck:
    def __init__(
        self,
        uow: UnitOfWork[DeviceRepositories],
        directory: SpaceDirectory,
        projection_is_current: Callable[[], bool],
        clock: Clock = utc_now,
    ) -> None:
        self._uow = uow
        self._directory = directory
        # False while events may not be arriving (the broker unreachable): the
        # copy may then miss a removal, so its YES is not trusted either.
        self._projection_is_current = projection_is_current
        self._clock = clock

    async def require(
        self,
        caller: Caller,
        space_id: uuid.UUID,
        right: Right,
        not_found: Callable[[], NotFound],
    ) -> uuid.UUID:
        """The space's home, if `caller` holds `right` there; else `not_found()`
        (not a member, or no such space) or PermissionDenied."""
        async with self._uow.read() as repos:
            projected = await repos.spaces.access(space_id, caller.user_uuid)
        return await self.decide(caller, space_id, projected, right, not_found)

    async def decide(
        self,
        caller: Caller,
        space_id: uuid.UUID,
        projected: ProjectedAccess,
        right: Right,
        not_found: Callable[[], NotFound],
    ) -> uuid.UUID:
        """As `require`, with the projection's answer already read (e.g. joined
        with the device it is about)."""
        now = self._clock()
        if (
            projected.home_id is not None
            and projected.allows(caller, right, now)
            and self._projection_is_current()
        ):
            return projected.home_id
        answer = await self._ask(caller, space_id, already_known=projected.home_id is not None)
        if answer is None:
            raise not_found()
        membership = Membership(answer.role, answer.expire_at) if answer.role else None
        authorize(caller, membership, right, now, not_found)
        return answer.home_id

    async def home_of(self, caller: Caller, space_id: uuid.UUID) -> uuid.UUID | None:
        """The home of an existing space; None when there is no such space."""
        async with self._uow.read() as repos:
            projected = await repos.spaces.access(space_id, caller.user_uuid)
        if projected.home_id is not None and not projected.deleted:
            return projected.home_id
        answer = await self._ask(caller, space_id, already_known=False)
        return answer.home_id if answer is not None else None

    async def _ask(
        self, caller: Caller, space_id: uuid.UUID, *, already_known: bool
    ) -> SpaceAccessAnswer | None:
        """Space's answer, stored so the next call need not ask again."""
        user_id = caller.user_uuid
        answer = await self._directory.access(space_id, user_id)
        if answer is None or (already_known and answer.role is None):
            # Nothing to store: a stranger's every probe must not cost a write.
            return answer
        async with self._uow.transaction() as tx:
            await tx.repos.spaces.remember_space(answer.space_id, answer.home_id)
            if answer.home_id != answer.space_id:
                await tx.repos.spaces.remember_space(answer.home_id, answer.home_id)
            if answer.role is not None:
                await tx.repos.spaces.apply_membership(
                    answer.home_id, user_id, answer.role, answer.expire_at, answer.version
                )
        return answer
