"""Whether an account is active, asked of User by the services that name users
(Space adding a member, Billing issuing an invoice). Internal and idempotent."""

import uuid

import grpc
from warmhouse.user.v1 import user_pb2, user_pb2_grpc

from services.runtime.errors import InvalidArgument, dependency_unavailable
from services.runtime.service import method_paths

USER_SERVICE = user_pb2.DESCRIPTOR.services_by_name["UserService"].full_name
# Retried on UNAVAILABLE by the channel: asking again changes nothing.
USER_METHODS = method_paths(USER_SERVICE, "GetUserStatus")


def user_not_available(field: str) -> InvalidArgument:
    # One answer whether the account is unknown or deactivated.
    return InvalidArgument("USER_NOT_AVAILABLE", "no active user with this id", field=field)


class UserStatusClient:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub = user_pb2_grpc.UserServiceStub(channel)

    async def is_active(self, user_id: uuid.UUID) -> bool:
        try:
            status = await self._stub.GetUserStatus(
                user_pb2.GetUserStatusRequest(user_id=str(user_id))
            )
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return False
            raise dependency_unavailable("user") from error
        return status.is_active
