"""The services Space asks, over gRPC: User (is an account active?) and
Device (does a space hold devices?). Both calls are internal and idempotent."""

import uuid

import grpc
from warmhouse.device.v1 import device_pb2, device_pb2_grpc
from warmhouse.user.v1 import user_pb2, user_pb2_grpc

from services.runtime.errors import dependency_unavailable
from services.runtime.service import method_paths

USER_SERVICE = user_pb2.DESCRIPTOR.services_by_name["UserService"].full_name
DEVICE_SERVICE = device_pb2.DESCRIPTOR.services_by_name["DeviceService"].full_name
# Retried on UNAVAILABLE by the channel: asking again changes nothing.
USER_METHODS = method_paths(USER_SERVICE, "GetUserStatus")
DEVICE_METHODS = method_paths(DEVICE_SERVICE, "CountSpaceDevices")


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


class DeviceCountClient:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub = device_pb2_grpc.DeviceServiceStub(channel)

    async def count(self, space_id: uuid.UUID) -> int:
        try:
            counted = await self._stub.CountSpaceDevices(
                device_pb2.CountSpaceDevicesRequest(space_id=str(space_id))
            )
        except grpc.aio.AioRpcError as error:
            raise dependency_unavailable("device") from error
        return counted.device_count
