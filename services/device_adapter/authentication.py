"""Checking a device's Hello with the Device service, which holds the secrets."""

import logging

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from warmhouse.device.v1 import device_pb2, device_pb2_grpc

from services.device_adapter.connections import AuthenticatedDevice
from services.device_adapter.validation import HelloFields, credentials_invalid
from services.runtime.errors import dependency_unavailable

log = logging.getLogger(__name__)
# What DeviceService answers for a wrong id or secret (and only then: an
# UNAUTHENTICATED for our own service credential is a deployment fault).
_DEVICE_REFUSED = "DEVICE_CREDENTIALS_INVALID"


def _reason(error: grpc.aio.AioRpcError) -> str:
    try:
        status = rpc_status.from_call(error)  # type: ignore[arg-type]  # an aio call is one too
    except ValueError:
        return ""
    info = error_details_pb2.ErrorInfo()
    if status is None or not status.details or not status.details[0].Unpack(info):
        return ""
    return str(info.reason)


class DeviceAuthenticator:
    """`DeviceService.AuthenticateDevice` over a channel from `Runtime.open_channel`."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._devices = device_pb2_grpc.DeviceServiceStub(channel)

    async def authenticate(self, hello: HelloFields) -> AuthenticatedDevice:
        """The device as the Device service confirmed it: its id and its type.

        Raises Unauthenticated for wrong credentials, Unavailable when the
        Device service cannot tell (the device retries later).
        """
        request = device_pb2.AuthenticateDeviceRequest(
            device_id=hello.device_id, device_secret=hello.secret
        )
        try:
            response = await self._devices.AuthenticateDevice(request)
        except grpc.aio.AioRpcError as error:
            if (
                error.code() == grpc.StatusCode.UNAUTHENTICATED
                and _reason(error) == _DEVICE_REFUSED
            ):
                raise credentials_invalid() from None
            log.warning("device authentication unavailable: %s", error.code())
            raise dependency_unavailable("device") from None
        if response.device_id != hello.device_id:
            # Never expected; a stream must not run under another device's id.
            log.error("the Device service confirmed another device than asked")
            raise credentials_invalid()
        return AuthenticatedDevice(hello.device_id, response.type)
