"""SpaceService over gRPC: proto in → handler → proto out."""

from datetime import datetime

from warmhouse.space.v1 import space_pb2, space_pb2_grpc

from services.runtime.auth import current_caller
from services.runtime.errors import InvalidArgument
from services.runtime.grpc_types import ServicerContext
from services.runtime.space_roles import role_named
from services.runtime.timestamps import moment, timestamp
from services.space.handlers import SpaceHandlers
from services.space.ports import MemberRecord, SpaceRecord


def _role_name(value: int) -> str:
    """An enum from the wire may hold any number: only the three roles are roles."""
    role = role_named(value)
    if role is None:
        raise InvalidArgument(
            "INVALID_ROLE", "role must be OWNER, MAINTAINER or GUEST", field="role"
        )
    return role


def _expiry(
    request: space_pb2.AddSpaceUserRequest | space_pb2.UpdateSpaceUserRequest,
) -> datetime | None:
    """The requested expire_time; None when unset (the membership never ends)."""
    return moment(request.expire_time, "expireTime") if request.HasField("expire_time") else None


def _space_message(space: SpaceRecord) -> space_pb2.Space:
    return space_pb2.Space(
        space_id=str(space.id),
        name=space.name,
        owner_id=str(space.owner_id or ""),
        create_time=timestamp(space.created_at),
        parent_space_id=str(space.parent_id or ""),
        update_time=timestamp(space.updated_at),
    )


def _member_message(member: MemberRecord) -> space_pb2.SpaceUser:
    message = space_pb2.SpaceUser(
        space_id=str(member.space_id),
        user_id=str(member.user_id),
        role=space_pb2.SpaceUserRole.Value(member.role),
        create_time=timestamp(member.created_at),
    )
    if member.expire_at is not None:
        message.expire_time.CopyFrom(timestamp(member.expire_at))
    return message


class SpaceService(space_pb2_grpc.SpaceServiceServicer):
    def __init__(self, handlers: SpaceHandlers) -> None:
        self._handlers = handlers

    async def CreateSpace(
        self, request: space_pb2.CreateSpaceRequest, context: ServicerContext
    ) -> space_pb2.CreateSpaceResponse:
        space = await self._handlers.create_space(
            current_caller(), request.name, request.owner_id, request.parent_space_id
        )
        return space_pb2.CreateSpaceResponse(space_id=str(space.id))

    async def GetSpace(
        self, request: space_pb2.GetSpaceRequest, context: ServicerContext
    ) -> space_pb2.GetSpaceResponse:
        space = await self._handlers.get_space(current_caller(), request.space_id)
        return space_pb2.GetSpaceResponse(space=_space_message(space))

    async def ListSpaces(
        self, request: space_pb2.ListSpacesRequest, context: ServicerContext
    ) -> space_pb2.ListSpacesResponse:
        spaces, next_token = await self._handlers.list_spaces(
            current_caller(),
            request.page_size,
            request.page_token,
            user_id=request.user_id,
            owner_id=request.owner_id,
            parent_space_id=request.parent_space_id,
        )
        return space_pb2.ListSpacesResponse(
            spaces=[_space_message(space) for space in spaces], next_page_token=next_token
        )

    async def AddSpaceUser(
        self, request: space_pb2.AddSpaceUserRequest, context: ServicerContext
    ) -> space_pb2.AddSpaceUserResponse:
        member = await self._handlers.add_member(
            current_caller(),
            request.space_id,
            request.user_id,
            _role_name(request.role),
            _expiry(request),
        )
        return space_pb2.AddSpaceUserResponse(space_user=_member_message(member))

    async def GetSpaceUser(
        self, request: space_pb2.GetSpaceUserRequest, context: ServicerContext
    ) -> space_pb2.GetSpaceUserResponse:
        member = await self._handlers.get_member(
            current_caller(), request.space_id, request.user_id
        )
        return space_pb2.GetSpaceUserResponse(space_user=_member_message(member))

    async def ListSpaceUsers(
        self, request: space_pb2.ListSpaceUsersRequest, context: ServicerContext
    ) -> space_pb2.ListSpaceUsersResponse:
        members, next_token = await self._handlers.list_members(
            current_caller(), request.space_id, request.page_size, request.page_token
        )
        return space_pb2.ListSpaceUsersResponse(
            space_users=[_member_message(member) for member in members],
            next_page_token=next_token,
        )

    async def RemoveSpaceUser(
        self, request: space_pb2.RemoveSpaceUserRequest, context: ServicerContext
    ) -> space_pb2.RemoveSpaceUserResponse:
        await self._handlers.remove_member(current_caller(), request.space_id, request.user_id)
        return space_pb2.RemoveSpaceUserResponse()

    async def UpdateSpace(
        self, request: space_pb2.UpdateSpaceRequest, context: ServicerContext
    ) -> space_pb2.UpdateSpaceResponse:
        space = await self._handlers.rename_space(current_caller(), request.space_id, request.name)
        return space_pb2.UpdateSpaceResponse(space=_space_message(space))

    async def DeleteSpace(
        self, request: space_pb2.DeleteSpaceRequest, context: ServicerContext
    ) -> space_pb2.DeleteSpaceResponse:
        await self._handlers.delete_space(current_caller(), request.space_id)
        return space_pb2.DeleteSpaceResponse()

    async def UpdateSpaceUser(
        self, request: space_pb2.UpdateSpaceUserRequest, context: ServicerContext
    ) -> space_pb2.UpdateSpaceUserResponse:
        member = await self._handlers.update_member(
            current_caller(),
            request.space_id,
            request.user_id,
            _role_name(request.role),
            _expiry(request),
        )
        return space_pb2.UpdateSpaceUserResponse(space_user=_member_message(member))

    async def GetSpaceAccess(
        self, request: space_pb2.GetSpaceAccessRequest, context: ServicerContext
    ) -> space_pb2.GetSpaceAccessResponse:
        access = await self._handlers.space_access(request.space_id, request.user_id)
        response = space_pb2.GetSpaceAccessResponse(
            space_id=str(access.space.id),
            home_space_id=str(access.space.home_id),
            membership_version=access.membership_version,
        )
        if access.member is not None:
            response.role = space_pb2.SpaceUserRole.Value(access.member.role)
            if access.member.expire_at is not None:
                response.expire_time.CopyFrom(timestamp(access.member.expire_at))
        return response
