"""DeviceService over gRPC: proto in → handler → proto out."""

from warmhouse.device.v1 import device_pb2, device_pb2_grpc

from services.device.commands import CommandHandlers
from services.device.handlers import DeviceHandlers
from services.device.heating import HeatingHandlers, desired_message
from services.device.ports import CommandRecord, DeviceLogRecord, DeviceRecord
from services.device.reading_queries import ReadingQueries, point_message
from services.runtime import idempotency
from services.runtime.auth import current_caller
from services.runtime.grpc_types import ServicerContext
from services.runtime.request import enum_name
from services.runtime.timestamps import timestamp

SEND_COMMAND = f"/{device_pb2.DESCRIPTOR.services_by_name['DeviceService'].full_name}/SendCommand"


def device_message(device: DeviceRecord) -> device_pb2.Device:
    message = device_pb2.Device(
        device_id=str(device.id),
        space_id=str(device.space_id),
        type=device_pb2.DeviceType.Value(device.type),
        name=device.name,
        status=device_pb2.DeviceStatus.Value(device.status),
        create_time=timestamp(device.created_at),
    )
    if device.last_seen is not None:
        message.last_seen_time.CopyFrom(timestamp(device.last_seen))
    if device.last_reading is not None:
        message.last_reading.MergeFromString(device.last_reading)
    return message


def command_message(command: CommandRecord) -> device_pb2.Command:
    message = device_pb2.Command(
        command_id=str(command.id),
        device_id=str(command.device_id),
        kind=device_pb2.CommandKind.Value(command.kind),
        status=device_pb2.CommandStatus.Value(command.status),
        message=command.message,
        request_id=command.request_id,
        requester_id=str(command.requester_id),
        create_time=timestamp(command.created_at),
        update_time=timestamp(command.updated_at),
        expire_time=timestamp(command.expire_at),
    )
    if command.target_temperature is not None:
        message.target_temperature_celsius = command.target_temperature
    return message


def _log_message(entry: DeviceLogRecord) -> device_pb2.DeviceLog:
    message = device_pb2.DeviceLog(
        log_id=str(entry.id),
        device_id=str(entry.device_id),
        kind=device_pb2.DeviceLogKind.Value(entry.kind),
        event=entry.event,
        occur_time=timestamp(entry.timestamp),
    )
    if entry.reading is not None:
        message.reading.MergeFromString(entry.reading)
    return message


class DeviceService(device_pb2_grpc.DeviceServiceServicer):
    def __init__(
        self,
        handlers: DeviceHandlers,
        commands: CommandHandlers,
        readings: ReadingQueries,
        heating: HeatingHandlers,
    ) -> None:
        self._handlers = handlers
        self._commands = commands
        self._readings = readings
        self._heating = heating

    async def RegisterDevice(
        self, request: device_pb2.RegisterDeviceRequest, context: ServicerContext
    ) -> device_pb2.RegisterDeviceResponse:
        registered = await self._handlers.register(
            current_caller(),
            request.space_id,
            enum_name(device_pb2.DeviceType.DESCRIPTOR, request.type),
            request.name,
        )
        return device_pb2.RegisterDeviceResponse(
            device=device_message(registered.device), device_secret=registered.secret
        )

    async def GetDevice(
        self, request: device_pb2.GetDeviceRequest, context: ServicerContext
    ) -> device_pb2.GetDeviceResponse:
        device = await self._handlers.get_device(current_caller(), request.device_id)
        return device_pb2.GetDeviceResponse(device=device_message(device))

    async def ListDevices(
        self, request: device_pb2.ListDevicesRequest, context: ServicerContext
    ) -> device_pb2.ListDevicesResponse:
        devices, next_token = await self._handlers.list_devices(
            current_caller(), request.space_id, request.page_size, request.page_token
        )
        return device_pb2.ListDevicesResponse(
            devices=[device_message(device) for device in devices], next_page_token=next_token
        )

    async def UpdateDeviceStatus(
        self, request: device_pb2.UpdateDeviceStatusRequest, context: ServicerContext
    ) -> device_pb2.UpdateDeviceStatusResponse:
        device = await self._handlers.update_status(
            current_caller(),
            request.device_id,
            enum_name(device_pb2.DeviceStatus.DESCRIPTOR, request.status),
        )
        return device_pb2.UpdateDeviceStatusResponse(
            device_id=str(device.id), status=device_pb2.DeviceStatus.Value(device.status)
        )

    async def SendCommand(
        self, request: device_pb2.SendCommandRequest, context: ServicerContext
    ) -> device_pb2.SendCommandResponse:
        caller = current_caller()
        key = idempotency.key_of(context, request.request_id, caller.user_id, SEND_COMMAND)
        return await self._commands.send(
            caller, key, request, enum_name(device_pb2.CommandKind.DESCRIPTOR, request.kind)
        )

    async def GetCommand(
        self, request: device_pb2.GetCommandRequest, context: ServicerContext
    ) -> device_pb2.GetCommandResponse:
        command = await self._commands.get(current_caller(), request.device_id, request.command_id)
        return device_pb2.GetCommandResponse(command=command_message(command))

    async def ListCommands(
        self, request: device_pb2.ListCommandsRequest, context: ServicerContext
    ) -> device_pb2.ListCommandsResponse:
        unspecified = request.status == device_pb2.COMMAND_STATUS_UNSPECIFIED
        commands, next_token = await self._commands.list_commands(
            current_caller(),
            request.device_id,
            None if unspecified else enum_name(device_pb2.CommandStatus.DESCRIPTOR, request.status),
            request.page_size,
            request.page_token,
        )
        return device_pb2.ListCommandsResponse(
            commands=[command_message(command) for command in commands],
            next_page_token=next_token,
        )

    async def ListReadings(
        self, request: device_pb2.ListReadingsRequest, context: ServicerContext
    ) -> device_pb2.ListReadingsResponse:
        points, bucket_seconds = await self._readings.list_readings(
            current_caller(),
            request.device_id,
            # `from` is a Python keyword.
            getattr(request, "from"),
            request.to,
            request.max_points,
        )
        return device_pb2.ListReadingsResponse(
            points=[point_message(point) for point in points], bucket_seconds=bucket_seconds
        )

    async def ListDeviceLogs(
        self, request: device_pb2.ListDeviceLogsRequest, context: ServicerContext
    ) -> device_pb2.ListDeviceLogsResponse:
        unspecified = request.kind == device_pb2.DEVICE_LOG_KIND_UNSPECIFIED
        entries, next_token = await self._handlers.list_logs(
            current_caller(),
            request.device_id,
            None if unspecified else enum_name(device_pb2.DeviceLogKind.DESCRIPTOR, request.kind),
            request.page_size,
            request.page_token,
        )
        return device_pb2.ListDeviceLogsResponse(
            device_logs=[_log_message(entry) for entry in entries], next_page_token=next_token
        )

    async def AuthenticateDevice(
        self, request: device_pb2.AuthenticateDeviceRequest, context: ServicerContext
    ) -> device_pb2.AuthenticateDeviceResponse:
        device = await self._handlers.authenticate(request.device_id, request.device_secret)
        return device_pb2.AuthenticateDeviceResponse(
            device_id=str(device.id),
            space_id=str(device.space_id),
            type=device_pb2.DeviceType.Value(device.type),
        )

    async def UpdateDevice(
        self, request: device_pb2.UpdateDeviceRequest, context: ServicerContext
    ) -> device_pb2.UpdateDeviceResponse:
        device = await self._handlers.update_device(
            current_caller(),
            request.device_id,
            request.name if request.HasField("name") else None,
            request.space_id if request.HasField("space_id") else None,
        )
        return device_pb2.UpdateDeviceResponse(device=device_message(device))

    async def DeleteDevice(
        self, request: device_pb2.DeleteDeviceRequest, context: ServicerContext
    ) -> device_pb2.DeleteDeviceResponse:
        await self._handlers.retire(current_caller(), request.device_id)
        return device_pb2.DeleteDeviceResponse()

    async def RotateDeviceSecret(
        self, request: device_pb2.RotateDeviceSecretRequest, context: ServicerContext
    ) -> device_pb2.RotateDeviceSecretResponse:
        secret = await self._handlers.rotate_secret(current_caller(), request.device_id)
        return device_pb2.RotateDeviceSecretResponse(device_secret=secret)

    async def CountSpaceDevices(
        self, request: device_pb2.CountSpaceDevicesRequest, context: ServicerContext
    ) -> device_pb2.CountSpaceDevicesResponse:
        count = await self._handlers.count_in_space(request.space_id)
        return device_pb2.CountSpaceDevicesResponse(device_count=count)

    async def GetHeating(
        self, request: device_pb2.GetHeatingRequest, context: ServicerContext
    ) -> device_pb2.GetHeatingResponse:
        return await self._heating.get(current_caller(), request.device_id)

    async def UpdateDesiredHeating(
        self, request: device_pb2.UpdateDesiredHeatingRequest, context: ServicerContext
    ) -> device_pb2.UpdateDesiredHeatingResponse:
        record = await self._heating.update(current_caller(), request)
        return device_pb2.UpdateDesiredHeatingResponse(desired=desired_message(record))
