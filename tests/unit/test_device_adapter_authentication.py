"""Checking a Hello with the Device service, over a real channel to a fake one."""

import uuid

import grpc
from warmhouse.device.v1 import device_pb2

from services.device_adapter.authentication import DeviceAuthenticator
from services.device_adapter.connections import AuthenticatedDevice
from services.device_adapter.validation import HelloFields
from services.runtime.grpc_types import ServicerContext

DEVICE_SERVICE = device_pb2.DESCRIPTOR.services_by_name["DeviceService"].full_name


async def confirm_as_controller(
    request: device_pb2.AuthenticateDeviceRequest, context: ServicerContext
) -> device_pb2.AuthenticateDeviceResponse:
    return device_pb2.AuthenticateDeviceResponse(
        device_id=request.device_id, space_id=str(uuid.uuid4()), type=device_pb2.CONTROLLER
    )


def fake_device_service() -> grpc.GenericRpcHandler:
    """DeviceService's AuthenticateDevice alone: every device is a CONTROLLER."""
    return grpc.method_handlers_generic_handler(
        DEVICE_SERVICE,
        {
            "AuthenticateDevice": grpc.unary_unary_rpc_method_handler(
                confirm_as_controller,
                request_deserializer=device_pb2.AuthenticateDeviceRequest.FromString,
                response_serializer=device_pb2.AuthenticateDeviceResponse.SerializeToString,
            )
        },
    )


async def test_the_device_is_confirmed_with_its_type() -> None:
    server = grpc.aio.server(handlers=[fake_device_service()])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            device_id = str(uuid.uuid4())
            device = await DeviceAuthenticator(channel).authenticate(
                HelloFields(device_id, "secret", "1.0")
            )
        assert device == AuthenticatedDevice(device_id, device_pb2.CONTROLLER)
    finally:
        await server.stop(None)
