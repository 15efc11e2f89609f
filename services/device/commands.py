"""Command use cases: send (stored first, idempotent), read one, list a device's."""

import uuid
from collections.abc import Callable

from warmhouse.device.v1 import device_pb2

from services.device import command_rules, heating_rules
from services.device.command_log import record_final, record_queued
from services.device.handlers import DeviceHandlers, device_not_found
from services.device.ports import CommandRecord, DeviceRepositories
from services.runtime.auth import Caller
from services.runtime.clock import Clock, utc_now
from services.runtime.errors import NotFound
from services.runtime.heating_model import HEATING_DEVICE_TYPES
from services.runtime.idempotency import IdempotencyKey
from services.runtime.pagination import Cursor, PageTokens, page_size
from services.runtime.request import parse_uuid
from services.runtime.space_roles import Right
from services.runtime.unit_of_work import Transaction, UnitOfWork, run_idempotently


def command_not_found() -> NotFound:
    return NotFound("COMMAND_NOT_FOUND", "no such command")


class CommandHandlers:
    def __init__(
        self,
        uow: UnitOfWork[DeviceRepositories],
        devices: DeviceHandlers,
        page_tokens: PageTokens,
        # Told after a command is committed, so that delivery starts at once.
        on_queued: Callable[[uuid.UUID], None],
        clock: Clock = utc_now,
        *,
        open_per_device: int = command_rules.OPEN_COMMANDS_PER_DEVICE,
    ) -> None:
        self._open_per_device = open_per_device
        self._uow = uow
        self._devices = devices
        self._page_tokens = page_tokens
        self._on_queued = on_queued
        self._clock = clock

    async def send(
        self,
        caller: Caller,
        key: IdempotencyKey | None,
        request: device_pb2.SendCommandRequest,
        kind_name: str,
    ) -> device_pb2.SendCommandResponse:
        device_id = parse_uuid(request.device_id, "deviceId")
        kind = command_rules.command_kind(kind_name)
        target = command_rules.target_temperature(
            kind,
            request.target_temperature_celsius
            if request.HasField("target_temperature_celsius")
            else None,
        )
        deadline_seconds = (
            request.deadline_seconds if request.HasField("deadline_seconds") else None
        )
        command_rules.deadline(deadline_seconds, self._clock())
        await self._devices.authorized_device(caller, device_id, command_rules.required_right(kind))

        async def store(tx: Transaction[DeviceRepositories]) -> device_pb2.SendCommandResponse:
            device = await tx.repos.devices.get(device_id)
            if device is None:
                raise device_not_found()
            if target is not None and device.type in HEATING_DEVICE_TYPES:
                heating = await tx.repos.heating.get(device_id)
                plan = heating.desired if heating is not None else heating_rules.default_plan()
                heating_rules.check_command_target(plan, target)
            # Held: a burst of commands for one device is counted one by one.
            await tx.repos.commands.hold_device(device_id)
            open_commands = await tx.repos.commands.count_open(device_id)
            command_rules.check_open_commands(open_commands, self._open_per_device)
            now = self._clock()
            command = CommandRecord(
                id=uuid.uuid4(),
                device_id=device_id,
                kind=kind,
                target_temperature=target,
                status=command_rules.QUEUED,
                message="",
                request_id=key.key if key is not None else "",
                requester_id=caller.user_uuid,
                created_at=now,
                updated_at=now,
                expire_at=command_rules.deadline(deadline_seconds, now),
            )
            await record_queued(tx.repos, tx.add_event, command, device.space_id)
            tx.after_commit(lambda: self._on_queued(device_id))
            return device_pb2.SendCommandResponse(
                command_id=str(command.id),
                status=device_pb2.CommandStatus.Value(command.status),
            )

        return await run_idempotently(
            self._uow, key, request, device_pb2.SendCommandResponse, store
        )

    async def get(self, caller: Caller, device_id: str, command_id: str) -> CommandRecord:
        device = parse_uuid(device_id, "deviceId")
        command = parse_uuid(command_id, "commandId")
        await self._devices.authorized_device(caller, device, Right.READ)
        async with self._uow.read() as repos:
            found = await repos.commands.get(device, command)
        if found is None:
            raise command_not_found()
        return found

    async def list_commands(
        self,
        caller: Caller,
        device_id: str,
        status: str | None,
        requested_size: int,
        page_token: str,
    ) -> tuple[list[CommandRecord], str]:
        device = parse_uuid(device_id, "deviceId")
        status = command_rules.status_filter(status)
        limit = page_size(requested_size)
        listing = f"commands:{device}:{status}"
        cursor = self._page_tokens.decode(page_token, listing=listing)
        await self._devices.authorized_device(caller, device, Right.READ)
        async with self._uow.read() as repos:
            rows = await repos.commands.listing(device, status, cursor, limit + 1)
        return self._page_tokens.page(
            rows, limit, lambda c: Cursor(c.created_at, c.id), listing=listing
        )


LAPSED_BATCH = 500


async def expire_lapsed(uow: UnitOfWork[DeviceRepositories], clock: Clock = utc_now) -> int:
    """Open commands past their deadline become EXPIRED; how many did."""
    async with uow.transaction() as tx:
        now = clock()
        lapsed = await tx.repos.commands.lapsed(now, LAPSED_BATCH)
        for command, space_id in lapsed:
            await record_final(
                tx.repos,
                tx.add_event,
                command,
                space_id,
                command_rules.EXPIRED,
                command_rules.expiry_message(command.status),
                now,
            )
        return len(lapsed)
