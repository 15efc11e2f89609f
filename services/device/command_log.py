"""A command's moves between statuses: each one saved, logged and published together."""

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime

from google.protobuf.message import Message
from warmhouse.device.v1 import device_pb2

from services.device import command_rules, domain
from services.device.ports import CommandRecord, DeviceLogRecord, DeviceRepositories
from services.runtime.timestamps import timestamp

Publish = Callable[[Message], Awaitable[object]]


def _line(command: CommandRecord, status: str) -> str:
    what = command_rules.describe(command.kind, command.target_temperature)
    return f"command {command.id} {what}: {status}"


def _log(command: CommandRecord, status: str, now: datetime, note: str = "") -> DeviceLogRecord:
    line = _line(command, status) + (f" ({note})" if note else "")
    return DeviceLogRecord(
        id=uuid.uuid4(),
        device_id=command.device_id,
        kind=domain.COMMAND_UPDATED,
        event=line,
        timestamp=now,
    )


async def record_queued(
    repos: DeviceRepositories, publish: Publish, command: CommandRecord, space_id: uuid.UUID
) -> None:
    await repos.commands.add(command)
    await repos.logs.add(_log(command, command.status, command.created_at))
    requested = device_pb2.DeviceCommandRequested(
        command_id=str(command.id),
        device_id=str(command.device_id),
        space_id=str(space_id),
        kind=device_pb2.CommandKind.Value(command.kind),
        requester_id=str(command.requester_id),
        occur_time=timestamp(command.created_at),
    )
    if command.target_temperature is not None:
        requested.target_temperature_celsius = command.target_temperature
    await publish(requested)


async def record_sent(
    repos: DeviceRepositories,
    publish: Publish,
    command: CommandRecord,
    space_id: uuid.UUID,
    connection_id: str,
    now: datetime,
) -> CommandRecord:
    again = command.status == command_rules.SENT
    same_stream = command.sent_connection_id == connection_id
    sent = replace(
        command, status=command_rules.SENT, sent_connection_id=connection_id, updated_at=now
    )
    await repos.commands.save(sent)
    note = ""
    if again:
        note = "again: no answer yet" if same_stream else "again, on a new connection"
    await repos.logs.add(_log(sent, sent.status, now, note))
    await publish(
        device_pb2.DeviceCommandSent(
            command_id=str(command.id),
            device_id=str(command.device_id),
            space_id=str(space_id),
            connection_id=connection_id,
            occur_time=timestamp(now),
        )
    )
    return sent


async def record_final(
    repos: DeviceRepositories,
    publish: Publish,
    command: CommandRecord,
    space_id: uuid.UUID,
    status: str,
    message: str,
    now: datetime,
) -> CommandRecord:
    final = replace(command, status=status, message=message, updated_at=now)
    await repos.commands.save(final)
    await repos.logs.add(_log(final, status, now, message))
    await publish(
        device_pb2.DeviceCommandCompleted(
            command_id=str(command.id),
            device_id=str(command.device_id),
            space_id=str(space_id),
            status=device_pb2.CommandStatus.Value(status),
            message=message,
            occur_time=timestamp(now),
        )
    )
    return final


async def record_late_answer(
    repos: DeviceRepositories, command: CommandRecord, ok: bool, now: datetime
) -> None:
    """The device answered a command that had already expired: noted, status kept."""
    answer = command_rules.answered_status(ok)
    await repos.logs.add(_log(command, command.status, now, f"the device answered {answer} late"))
