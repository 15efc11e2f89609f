"""UserService over gRPC: proto in → handler → proto out."""

from warmhouse.user.v1 import user_pb2, user_pb2_grpc

from services.runtime.auth import current_caller
from services.runtime.errors import InvalidArgument
from services.runtime.grpc_types import ServicerContext
from services.runtime.request import ClientAddresses
from services.runtime.timestamps import timestamp
from services.user.domain import ProfileChange
from services.user.handlers import Session, UserHandlers
from services.user.ports import UserRecord

_ROLES: dict[int, str] = {user_pb2.USER: "USER", user_pb2.ADMIN: "ADMIN"}


def _role_name(value: int) -> str:
    """An enum from the wire may hold any number: only USER and ADMIN are roles."""
    if value not in _ROLES:
        raise InvalidArgument("INVALID_ROLE", "role must be USER or ADMIN", field="role")
    return _ROLES[value]


def _user_message(user: UserRecord) -> user_pb2.User:
    return user_pb2.User(
        user_id=str(user.id),
        email=user.email,
        phone=user.phone,
        role=user_pb2.Role.Value(user.role),
        is_active=user.is_active,
        create_time=timestamp(user.created_at),
        update_time=timestamp(user.updated_at),
        locale=user.locale,
        time_zone=user.time_zone,
    )


def _session_fields(session: Session) -> dict[str, object]:
    return {
        "access_token": session.tokens.access_token,
        "refresh_token": session.tokens.refresh_token,
        "expires_in": session.tokens.expires_in,
        "token_type": "Bearer",
        "user_id": session.user_id,
    }


class UserService(user_pb2_grpc.UserServiceServicer):
    def __init__(self, handlers: UserHandlers, client_addresses: ClientAddresses) -> None:
        self._handlers = handlers
        self._client_addresses = client_addresses

    async def CreateUser(
        self, request: user_pb2.CreateUserRequest, context: ServicerContext
    ) -> user_pb2.CreateUserResponse:
        user = await self._handlers.register(
            request.email,
            request.password,
            request.phone,
            self._client_addresses.of(context),
            locale=request.locale,
            time_zone=request.time_zone,
        )
        return user_pb2.CreateUserResponse(user_id=str(user.id), role=user_pb2.USER)

    async def Login(
        self, request: user_pb2.LoginRequest, context: ServicerContext
    ) -> user_pb2.LoginResponse:
        session = await self._handlers.login(
            request.auth_method,
            request.email,
            request.password,
            self._client_addresses.of(context),
            request.device_token,
        )
        return user_pb2.LoginResponse(
            **_session_fields(session),  # type: ignore[arg-type]
            device_token=session.device_token,
        )

    async def RefreshSession(
        self, request: user_pb2.RefreshSessionRequest, context: ServicerContext
    ) -> user_pb2.RefreshSessionResponse:
        session = await self._handlers.refresh(request.refresh_token)
        return user_pb2.RefreshSessionResponse(**_session_fields(session))  # type: ignore[arg-type]

    async def Logout(
        self, request: user_pb2.LogoutRequest, context: ServicerContext
    ) -> user_pb2.LogoutResponse:
        await self._handlers.logout(current_caller())
        return user_pb2.LogoutResponse()

    async def GetJwks(
        self, request: user_pb2.GetJwksRequest, context: ServicerContext
    ) -> user_pb2.GetJwksResponse:
        return user_pb2.GetJwksResponse(keys=[user_pb2.Jwk(**key) for key in self._handlers.jwks])

    async def GetUser(
        self, request: user_pb2.GetUserRequest, context: ServicerContext
    ) -> user_pb2.GetUserResponse:
        user = await self._handlers.get_user(current_caller(), request.user_id)
        return user_pb2.GetUserResponse(user=_user_message(user))

    async def ListUsers(
        self, request: user_pb2.ListUsersRequest, context: ServicerContext
    ) -> user_pb2.ListUsersResponse:
        users, next_token = await self._handlers.list_users(
            current_caller(), request.page_size, request.page_token
        )
        return user_pb2.ListUsersResponse(
            users=[_user_message(user) for user in users], next_page_token=next_token
        )

    async def UpdateUser(
        self, request: user_pb2.UpdateUserRequest, context: ServicerContext
    ) -> user_pb2.UpdateUserResponse:
        change = ProfileChange(
            email=request.email if request.HasField("email") else None,
            phone=request.phone if request.HasField("phone") else None,
            role=_role_name(request.role) if request.HasField("role") else None,
            is_active=request.is_active if request.HasField("is_active") else None,
            current_password=(
                request.current_password if request.HasField("current_password") else None
            ),
            locale=request.locale if request.HasField("locale") else None,
            time_zone=request.time_zone if request.HasField("time_zone") else None,
        )
        user = await self._handlers.update_user(current_caller(), request.user_id, change)
        return user_pb2.UpdateUserResponse(user=_user_message(user))

    async def DeleteUser(
        self, request: user_pb2.DeleteUserRequest, context: ServicerContext
    ) -> user_pb2.DeleteUserResponse:
        await self._handlers.deactivate_user(current_caller(), request.user_id)
        return user_pb2.DeleteUserResponse()

    async def GetUserStatus(
        self, request: user_pb2.GetUserStatusRequest, context: ServicerContext
    ) -> user_pb2.GetUserStatusResponse:
        user = await self._handlers.user_status(request.user_id)
        return user_pb2.GetUserStatusResponse(user_id=str(user.id), is_active=user.is_active)
