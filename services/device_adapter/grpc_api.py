"""DeviceAdapterService over gRPC: proto in → use case → proto out."""

from collections.abc import AsyncIterator

from warmhouse.device_adapter.v1 import device_adapter_pb2 as pb
from warmhouse.device_adapter.v1 import device_adapter_pb2_grpc

from services.device_adapter.connections import Connections
from services.device_adapter.routing import LiveClient
from services.runtime.errors import InvalidArgument
from services.runtime.grpc_types import ServicerContext


class DeviceAdapterService(device_adapter_pb2_grpc.DeviceAdapterServiceServicer):
    def __init__(self, connections: Connections, live: LiveClient) -> None:
        self._connections = connections
        self._live = live

    async def Connect(
        self, request_iterator: AsyncIterator[pb.ConnectRequest], context: ServicerContext
    ) -> AsyncIterator[pb.ConnectResponse]:
        async for response in self._connections.serve(request_iterator, str(context.peer())):
            yield response

    async def SendCommand(
        self, request: pb.SendCommandRequest, context: ServicerContext
    ) -> pb.SendCommandResponse:
        if not request.HasField("command"):
            raise InvalidArgument("FIELD_REQUIRED", "command is required", field="command")
        await self._live.send_command(request.device_id, request.command)
        return pb.SendCommandResponse()

    async def GetConnection(
        self, request: pb.GetConnectionRequest, context: ServicerContext
    ) -> pb.GetConnectionResponse:
        return await self._live.connection(request.device_id)
