"""Device Management use cases: each one transaction, its events in the outbox.

Handlers depend on the `UnitOfWork` protocol and the repositories of
`ports.py`, and on the access check (access.py), which asks Space when its
copy of the memberships does not grant a right. Writes first decide access
(which may call Space), then lock the device in a short transaction: no
transaction waits on the network.
"""

import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

from warmhouse.device.v1 import device_pb2

from services.device import domain
from services.device.access import AccessCheck
from services.device.device_secrets import DeviceSecrets
from services.device.ports import DeviceLogRecord, DeviceRecord, DeviceRepositories
from services.runtime.auth import Caller
from services.runtime.clock import Clock, utc_now
from services.runtime.errors import InvalidArgument, NotFound, Unauthenticated
from services.runtime.pagination import Cursor, PageTokens, page_size
from services.runtime.quotas import check_quota
from services.runtime.request import parse_uuid
from services.runtime.space_roles import Right
from services.runtime.text import display_name
from services.runtime.timestamps import timestamp
from services.runtime.unit_of_work import Transaction, UnitOfWork

Tx = Transaction[DeviceRepositories]


def device_not_found() -> NotFound:
    # Also for a device the caller may not see: ids cannot be probed.
    return NotFound("DEVICE_NOT_FOUND", "no such device")


def space_not_found() -> NotFound:
    return NotFound("SPACE_NOT_FOUND", "no such space")


def _space_not_in_home() -> InvalidArgument:
    # Also when the space does not exist or cannot be seen: one answer.
    return InvalidArgument(
        "SPACE_NOT_IN_HOME",
        "spaceId must be the device's home or one of its rooms",
        field="spaceId",
    )


def _credentials_invalid() -> Unauthenticated:
    # One answer for an unknown, malformed or retired id and a wrong secret.
    return Unauthenticated("DEVICE_CREDENTIALS_INVALID", "the device id or secret is not valid")


def log_entry(device_id: uuid.UUID, kind: str, line: str, now: datetime) -> DeviceLogRecord:
    return DeviceLogRecord(
        id=uuid.uuid4(), device_id=device_id, kind=kind, event=line, timestamp=now
    )


def retired_event(device: DeviceRecord, now: datetime) -> device_pb2.DeviceRetired:
    return device_pb2.DeviceRetired(
        device_id=str(device.id), space_id=str(device.space_id), occur_time=timestamp(now)
    )


@dataclass(frozen=True)
class RegisteredDevice:
    device: DeviceRecord
    # Given out once, here; only its hash is kept.
    secret: str


class DeviceHandlers:
    def __init__(
        self,
        uow: UnitOfWork[DeviceRepositories],
        access: AccessCheck,
        device_secrets: DeviceSecrets,
        page_tokens: PageTokens,
        *,
        devices_per_home: int = domain.DEVICES_PER_HOME,
        clock: Clock = utc_now,
        # Told after a commit that ended a device's credential (retired, new
        # secret), so that the stream it holds ends too.
        on_revoked: Callable[[uuid.UUID], None] = lambda device_id: None,
    ) -> None:
        self._on_revoked = on_revoked
        self._devices_per_home = devices_per_home
        self._uow = uow
        self._access = access
        self._secrets = device_secrets
        self._page_tokens = page_tokens
        self._clock = clock

    async def authorized_device(
        self, caller: Caller, device_id: uuid.UUID, right: Right
    ) -> DeviceRecord:
        """The live device, if the caller holds `right` in its home; else 404 or 403."""
        async with self._uow.read() as repos:
            found = await repos.devices.get_with_access(device_id, caller.user_uuid)
        if found is None:
            raise device_not_found()
        device, projected = found
        await self._access.decide(caller, device.space_id, projected, right, device_not_found)
        return device

    # Registration

    async def register(
        self, caller: Caller, space_id: str, type_name: str, name: str
    ) -> RegisteredDevice:
        space = parse_uuid(space_id, "spaceId")
        kind = domain.device_type(type_name)
        name = display_name(name)
        await self._access.require(caller, space, Right.MANAGE_DEVICES, space_not_found)
        now = self._clock()
        secret = self._secrets.new()
        device_id = uuid.uuid4()
        async with self._uow.transaction() as tx:
            # Share-locked: a deletion of the space being processed now either
            # finished first (refused here) or waits and then retires this device.
            known = await tx.repos.spaces.lock_space(space)
            if known is None or known.deleted:
                raise space_not_found()
            # Held: concurrent registrations in one home are counted one by one.
            await tx.repos.devices.hold_home(known.home_id)
            count = await tx.repos.devices.count_in_space(known.home_id)
            check_quota(count, self._devices_per_home, "devices per home")
            device = DeviceRecord(
                id=device_id,
                space_id=space,
                home_id=known.home_id,
                type=kind,
                name=name,
                status=domain.INITIAL_STATUS,
                last_seen=None,
                secret_hash=self._secrets.hash(device_id, secret),
                created_at=now,
                updated_at=now,
            )
            await tx.repos.devices.add(device)
            await tx.repos.logs.add(
                log_entry(device_id, domain.DEVICE_CHANGED, domain.REGISTERED, now)
            )
            await tx.add_event(
                device_pb2.DeviceRegistered(
                    device_id=str(device_id),
                    space_id=str(space),
                    type=device_pb2.DeviceType.Value(kind),
                    name=name,
                    occur_time=timestamp(now),
                )
            )
        return RegisteredDevice(device, secret)

    # Reads

    async def get_device(self, caller: Caller, device_id: str) -> DeviceRecord:
        return await self.authorized_device(caller, parse_uuid(device_id, "deviceId"), Right.READ)

    async def list_devices(
        self, caller: Caller, space_id: str, requested_size: int, page_token: str
    ) -> tuple[list[DeviceRecord], str]:
        space = parse_uuid(space_id, "spaceId")
        limit = page_size(requested_size)
        listing = f"devices:{space}"
        cursor = self._page_tokens.decode(page_token, listing=listing)
        home = await self._access.require(caller, space, Right.READ, space_not_found)
        async with self._uow.read() as repos:
            if home == space:
                rows = await repos.devices.list_in_home(space, cursor, limit + 1)
            else:
                rows = await repos.devices.list_in_space(space, cursor, limit + 1)
        return self._page_tokens.page(
            rows, limit, lambda d: Cursor(d.created_at, d.id), listing=listing
        )

    async def list_logs(
        self, caller: Caller, device_id: str, kind: str | None, requested_size: int, page_token: str
    ) -> tuple[list[DeviceLogRecord], str]:
        device = parse_uuid(device_id, "deviceId")
        kind = domain.log_kind_filter(kind)
        limit = page_size(requested_size)
        listing = f"logs:{device}:{kind}"
        cursor = self._page_tokens.decode(page_token, listing=listing)
        await self.authorized_device(caller, device, Right.READ)
        async with self._uow.read() as repos:
            rows = await repos.logs.list(device, kind, cursor, limit + 1)
        return self._page_tokens.page(
            rows, limit, lambda e: Cursor(e.timestamp, e.id), listing=listing
        )

    # Changes

    async def update_status(self, caller: Caller, device_id: str, status: str) -> DeviceRecord:
        target = parse_uuid(device_id, "deviceId")
        status = domain.device_status(status)
        await self.authorized_device(caller, target, Right.MANAGE_DEVICES)
        async with self._uow.transaction() as tx:
            device = await self._locked(tx, target)
            now = self._clock()
            if device.status == status:
                return device
            updated = replace(device, status=status, updated_at=now)
            await tx.repos.devices.save(updated)
            await tx.repos.logs.add(
                log_entry(
                    target, domain.STATUS_CHANGED, domain.status_line(device.status, status), now
                )
            )
            await tx.add_event(
                device_pb2.DeviceStatusChanged(
                    device_id=str(target),
                    space_id=str(device.space_id),
                    old_status=device_pb2.DeviceStatus.Value(device.status),
                    new_status=device_pb2.DeviceStatus.Value(status),
                    occur_time=timestamp(now),
                )
            )
        return updated

    async def update_device(
        self, caller: Caller, device_id: str, name: str | None, space_id: str | None
    ) -> DeviceRecord:
        if name is None and space_id is None:
            raise domain.nothing_to_update()
        target = parse_uuid(device_id, "deviceId")
        new_name = display_name(name) if name is not None else None
        new_space = parse_uuid(space_id, "spaceId") if space_id is not None else None
        device = await self.authorized_device(caller, target, Right.MANAGE_DEVICES)
        # Rights are the home's: one who may manage the device here may in its other spaces.
        if new_space is not None and new_space != device.space_id:
            await self._require_same_home(caller, new_space, device.home_id)
        async with self._uow.transaction() as tx:
            current = await self._locked(tx, target)
            now = self._clock()
            changed = replace(
                current,
                name=current.name if new_name is None else new_name,
                space_id=current.space_id if new_space is None else new_space,
            )
            if changed == current:
                return current
            if changed.space_id != current.space_id:
                known = await tx.repos.spaces.lock_space(changed.space_id)
                if known is None or known.deleted or known.home_id != current.home_id:
                    raise _space_not_in_home()
            updated = replace(changed, updated_at=now)
            await tx.repos.devices.save(updated)
            if updated.name != current.name:
                await tx.repos.logs.add(
                    log_entry(target, domain.DEVICE_CHANGED, domain.RENAMED, now)
                )
            if updated.space_id != current.space_id:
                await tx.repos.logs.add(log_entry(target, domain.DEVICE_CHANGED, domain.MOVED, now))
            await tx.add_event(
                device_pb2.DeviceUpdated(
                    device_id=str(target),
                    space_id=str(updated.space_id),
                    name=updated.name,
                    old_space_id=str(current.space_id),
                    occur_time=timestamp(now),
                )
            )
        return updated

    async def retire(self, caller: Caller, device_id: str) -> None:
        target = parse_uuid(device_id, "deviceId")
        await self.authorized_device(caller, target, Right.MANAGE_DEVICES)
        async with self._uow.transaction() as tx:
            device = await self._locked(tx, target)
            now = self._clock()
            retired = replace(device, retired_at=now, updated_at=now)
            await tx.repos.devices.save(retired)
            await tx.repos.logs.add(log_entry(target, domain.DEVICE_CHANGED, domain.RETIRED, now))
            await tx.add_event(retired_event(retired, now))
            tx.after_commit(lambda: self._on_revoked(target))

    async def rotate_secret(self, caller: Caller, device_id: str) -> str:
        target = parse_uuid(device_id, "deviceId")
        await self.authorized_device(caller, target, Right.MANAGE_DEVICES)
        secret = self._secrets.new()
        async with self._uow.transaction() as tx:
            device = await self._locked(tx, target)
            now = self._clock()
            await tx.repos.devices.save(
                replace(
                    device,
                    secret_hash=self._secrets.hash(target, secret),
                    secret_rotated_at=now,
                    updated_at=now,
                )
            )
            await tx.repos.logs.add(
                log_entry(target, domain.DEVICE_CHANGED, domain.SECRET_ROTATED, now)
            )
            await tx.add_event(
                device_pb2.DeviceSecretRotated(
                    device_id=str(target),
                    space_id=str(device.space_id),
                    occur_time=timestamp(now),
                )
            )
            tx.after_commit(lambda: self._on_revoked(target))
        return secret

    async def _require_same_home(
        self, caller: Caller, space_id: uuid.UUID, home_id: uuid.UUID
    ) -> None:
        # Rights are the home's: who may manage a device here may in its other spaces.
        if await self._access.home_of(caller, space_id) != home_id:
            raise _space_not_in_home()

    async def _locked(self, tx: Tx, device_id: uuid.UUID) -> DeviceRecord:
        """The live device, row-locked: retired since the access check → 404.
        Changes read the clock after this, so their log entries' and events'
        times follow the order in which they hold the row."""
        device = await tx.repos.devices.get(device_id, lock=True)
        if device is None:
            raise device_not_found()
        return device

    # For other services (internal)

    async def authenticate(self, device_id: str, secret: str) -> DeviceRecord:
        try:
            target = parse_uuid(device_id, "deviceId")
        except InvalidArgument:
            raise _credentials_invalid() from None
        async with self._uow.read() as repos:
            device = await repos.devices.get(target)
        if device is None or not self._secrets.matches(target, secret, device.secret_hash):
            raise _credentials_invalid()
        return device

    async def count_in_space(self, space_id: str) -> int:
        space = parse_uuid(space_id, "spaceId")
        async with self._uow.read() as repos:
            return await repos.devices.count_in_space(space)
