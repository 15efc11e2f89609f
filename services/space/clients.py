"""Device, as Space asks it over gRPC: does a space hold devices? Internal and
idempotent. (Whether an account is active: runtime/user_status.py.)"""

import uuid

import grpc
from warmhouse.device.v1 import device_pb2, device_pb2_grpc

from services.runtime.errors import dependency_unavailable
from services.runtime.service import method_paths

DEVICE_SERVICE = device_pb2.DESCRIPTOR.services_by_name["DeviceService"].full_name
# Retried on UNAVAILABLE by the channel: asking again changes nothing.
DEVICE_METHODS = method_paths(DEVICE_SERVICE, "CountSpaceDevices")


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
