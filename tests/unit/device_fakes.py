"""In-memory repositories, Space and a clock for the Device service's use cases."""

import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime

from services.device.access import AccessCheck, SpaceAccessAnswer
from services.device.command_rules import OPEN_STATUSES, SENT
from services.device.commands import CommandHandlers
from services.device.device_secrets import DeviceSecrets
from services.device.domain import OFFLINE, ONLINE
from services.device.handlers import DeviceHandlers
from services.device.heating import HeatingHandlers
from services.device.ports import (
    CommandRecord,
    DeviceLogRecord,
    DeviceRecord,
    DeviceRepositories,
    HeatingRecord,
    KnownSpace,
    Presence,
    ProjectedAccess,
)
from services.runtime.heating_model import HEATING_DEVICE_TYPES
from services.runtime.pagination import Cursor, PageTokens
from services.runtime.space_roles import Membership
from tests.fakes import FakeClock, FakeUnitOfWork


@dataclass(frozen=True)
class MembershipRow:
    role: str | None
    expire_at: datetime | None
    version: int


class FakeSpaceProjection:
    def __init__(self) -> None:
        self.spaces: dict[uuid.UUID, KnownSpace] = {}
        self.memberships: dict[tuple[uuid.UUID, uuid.UUID], MembershipRow] = {}

    def projected(self, space_id: uuid.UUID, user_id: uuid.UUID) -> ProjectedAccess:
        known = self.spaces.get(space_id)
        if known is None:
            return ProjectedAccess(home_id=None)
        return self.of_home(known.home_id, user_id, deleted=known.deleted)

    def of_home(
        self, home_id: uuid.UUID, user_id: uuid.UUID, *, deleted: bool = False
    ) -> ProjectedAccess:
        row = self.memberships.get((home_id, user_id))
        membership = Membership(row.role, row.expire_at) if row is not None and row.role else None
        return ProjectedAccess(home_id, deleted, membership)

    async def access(self, space_id: uuid.UUID, user_id: uuid.UUID) -> ProjectedAccess:
        return self.projected(space_id, user_id)

    async def lock_space(self, space_id: uuid.UUID) -> KnownSpace | None:
        return self.spaces.get(space_id)

    async def remember_space(self, space_id: uuid.UUID, home_id: uuid.UUID) -> None:
        self.spaces.setdefault(space_id, KnownSpace(space_id, home_id, deleted=False))

    async def mark_deleted(self, space_id: uuid.UUID, home_id: uuid.UUID) -> None:
        self.spaces[space_id] = KnownSpace(space_id, home_id, deleted=True)

    async def apply_membership(
        self,
        home_id: uuid.UUID,
        user_id: uuid.UUID,
        role: str | None,
        expire_at: datetime | None,
        version: int,
    ) -> bool:
        current = self.memberships.get((home_id, user_id))
        if current is not None and current.version >= version:
            return False
        self.memberships[(home_id, user_id)] = MembershipRow(role, expire_at, version)
        return True


class FakeDevices:
    def __init__(self, projection: FakeSpaceProjection) -> None:
        self.rows: dict[uuid.UUID, DeviceRecord] = {}
        self.held_homes: list[uuid.UUID] = []
        self._projection = projection

    def _live(self) -> list[DeviceRecord]:
        ordered = sorted(self.rows.values(), key=lambda device: (device.created_at, device.id))
        return [device for device in ordered if device.retired_at is None]

    async def add(self, device: DeviceRecord) -> None:
        self.rows[device.id] = device

    async def get(self, device_id: uuid.UUID, *, lock: bool = False) -> DeviceRecord | None:
        device = self.rows.get(device_id)
        return device if device is not None and device.retired_at is None else None

    async def get_with_access(
        self, device_id: uuid.UUID, user_id: uuid.UUID
    ) -> tuple[DeviceRecord, ProjectedAccess] | None:
        device = await self.get(device_id)
        if device is None:
            return None
        known = self._projection.spaces.get(device.space_id)
        if known is None:
            return device, ProjectedAccess(home_id=None)
        return device, self._projection.of_home(device.home_id, user_id, deleted=known.deleted)

    @staticmethod
    def _page(rows: list[DeviceRecord], after: Cursor | None, limit: int) -> list[DeviceRecord]:
        if after is not None:
            rows = [d for d in rows if (d.created_at, d.id) > (after.created_at, after.id)]
        return rows[:limit]

    async def list_in_home(
        self, home_id: uuid.UUID, after: Cursor | None, limit: int
    ) -> list[DeviceRecord]:
        return self._page([d for d in self._live() if d.home_id == home_id], after, limit)

    async def list_in_space(
        self, space_id: uuid.UUID, after: Cursor | None, limit: int
    ) -> list[DeviceRecord]:
        return self._page([d for d in self._live() if d.space_id == space_id], after, limit)

    async def save(self, device: DeviceRecord) -> None:
        self.rows[device.id] = device

    async def hold_home(self, home_id: uuid.UUID) -> None:
        self.held_homes.append(home_id)

    async def count_in_space(self, space_id: uuid.UUID) -> int:
        return sum(1 for d in self._live() if space_id in (d.space_id, d.home_id))

    async def retire_in_space(self, space_id: uuid.UUID, now: datetime) -> list[DeviceRecord]:
        retired = [
            replace(d, retired_at=now, updated_at=now)
            for d in self._live()
            if d.space_id == space_id
        ]
        self.rows.update({device.id: device for device in retired})
        return retired

    async def renew_leases(
        self, reports: list[Presence], lease_until: datetime
    ) -> list[DeviceRecord]:
        renewed = []
        for report in reports:
            device = await self.get(report.device_id)
            if device is None or device.connection_id != report.connection_id:
                continue
            renewed.append(device)
            status = ONLINE if device.status == OFFLINE else device.status
            self.rows[device.id] = replace(
                device,
                lease_until=lease_until,
                status=status,
                last_seen=max(filter(None, (device.last_seen, report.last_seen))),
            )
        return renewed

    async def retired_among(self, device_ids: list[uuid.UUID]) -> list[uuid.UUID]:
        return sorted(
            d for d in device_ids if d in self.rows and self.rows[d].retired_at is not None
        )

    async def lapsed_leases(self, now: datetime, limit: int) -> list[DeviceRecord]:
        due = [d for d in self._live() if d.lease_until is not None and d.lease_until < now]
        return due[:limit]


class FakeDeviceLogs:
    def __init__(self) -> None:
        self.rows: list[DeviceLogRecord] = []

    def lines(self, device_id: uuid.UUID) -> list[str]:
        """The device's entries' lines, oldest first."""
        return [entry.event for entry in self.rows if entry.device_id == device_id]

    async def add(self, entry: DeviceLogRecord) -> None:
        self.rows.append(entry)

    async def list(
        self, device_id: uuid.UUID, kind: str | None, after: Cursor | None, limit: int
    ) -> list[DeviceLogRecord]:
        rows = sorted(
            (e for e in self.rows if e.device_id == device_id and kind in (None, e.kind)),
            key=lambda entry: (entry.timestamp, entry.id),
            reverse=True,
        )
        if after is not None:
            rows = [e for e in rows if (e.timestamp, e.id) < (after.created_at, after.id)]
        return rows[:limit]


class FakeCommands:
    def __init__(self, devices: FakeDevices) -> None:
        self.rows: dict[uuid.UUID, CommandRecord] = {}
        self.held_devices: list[uuid.UUID] = []
        self._devices = devices

    async def add(self, command: CommandRecord) -> None:
        self.rows[command.id] = command

    async def get(
        self, device_id: uuid.UUID, command_id: uuid.UUID, *, lock: bool = False
    ) -> CommandRecord | None:
        command = self.rows.get(command_id)
        return command if command is not None and command.device_id == device_id else None

    async def listing(
        self, device_id: uuid.UUID, status: str | None, after: Cursor | None, limit: int
    ) -> list[CommandRecord]:
        rows = sorted(
            (
                c
                for c in self.rows.values()
                if c.device_id == device_id and status in (None, c.status)
            ),
            key=lambda command: (command.created_at, command.id),
            reverse=True,
        )
        if after is not None:
            rows = [c for c in rows if (c.created_at, c.id) < (after.created_at, after.id)]
        return rows[:limit]

    def _open(self, now: datetime) -> list[CommandRecord]:
        ordered = sorted(self.rows.values(), key=lambda command: (command.created_at, command.id))
        return [c for c in ordered if c.status in OPEN_STATUSES and c.expire_at > now]

    async def undelivered(
        self, device_id: uuid.UUID, connection_id: str, now: datetime, resend_before: datetime
    ) -> list[CommandRecord]:
        return [
            c
            for c in self._open(now)
            if c.device_id == device_id and _due(c, connection_id, resend_before)
        ]

    async def save(self, command: CommandRecord) -> None:
        self.rows[command.id] = command

    async def hold_device(self, device_id: uuid.UUID) -> None:
        self.held_devices.append(device_id)

    async def count_open(self, device_id: uuid.UUID) -> int:
        return sum(
            1 for c in self.rows.values() if c.device_id == device_id and c.status in OPEN_STATUSES
        )

    async def lapsed(self, now: datetime, limit: int) -> list[tuple[CommandRecord, uuid.UUID]]:
        due = [c for c in self.rows.values() if c.status in OPEN_STATUSES and c.expire_at <= now]
        return [(c, self._devices.rows[c.device_id].space_id) for c in due[:limit]]

    async def devices_awaiting_delivery(
        self, now: datetime, resend_before: datetime, limit: int
    ) -> list[uuid.UUID]:
        waiting = []
        for command in self._open(now):
            device = self._devices.rows[command.device_id]
            connected = device.lease_until is not None and device.retired_at is None
            if connected and _due(command, device.connection_id, resend_before):
                waiting.append(device.id)
        return list(dict.fromkeys(waiting))[:limit]


class FakeHeating:
    def __init__(self, devices: FakeDevices) -> None:
        self._devices = devices
        self.rows: dict[uuid.UUID, HeatingRecord] = {}

    async def get(self, device_id: uuid.UUID) -> HeatingRecord | None:
        return self.rows.get(device_id)

    async def save(self, record: HeatingRecord) -> None:
        self.rows[record.device_id] = record

    async def devices_awaiting_plan(self, resend_before: datetime, limit: int) -> list[uuid.UUID]:
        waiting = []
        for device in self._devices.rows.values():
            connected = device.lease_until is not None and device.retired_at is None
            if not connected or device.type not in HEATING_DEVICE_TYPES:
                continue
            row = self.rows.get(device.id)
            if row is None or _plan_due(row, device.connection_id, resend_before):
                waiting.append(device.id)
        return waiting[:limit]


def _plan_due(row: HeatingRecord, connection_id: str | None, resend_before: datetime) -> bool:
    version = row.desired.version
    unapplied = row.applied_version < version and (
        row.pushed_at is not None and row.pushed_at < resend_before
    )
    return row.pushed_connection_id != connection_id or row.pushed_version < version or unapplied


def _due(command: CommandRecord, connection_id: str | None, resend_before: datetime) -> bool:
    stale = command.status == SENT and command.updated_at < resend_before
    return command.sent_connection_id != connection_id or stale


class FakeSpace:
    """Space as the source of truth: what GetSpaceAccess answers; counts the calls."""

    def __init__(self, clock: FakeClock) -> None:
        self._clock = clock
        self.homes: dict[uuid.UUID, uuid.UUID] = {}
        self.members: dict[tuple[uuid.UUID, uuid.UUID], tuple[str, datetime | None]] = {}
        self.versions: dict[uuid.UUID, int] = {}
        self.calls: list[tuple[uuid.UUID, uuid.UUID]] = []
        self.failure: Exception | None = None

    def new_home(self) -> uuid.UUID:
        home = uuid.uuid4()
        self.homes[home] = home
        return home

    def new_room(self, home: uuid.UUID) -> uuid.UUID:
        room = uuid.uuid4()
        self.homes[room] = home
        return room

    def set_member(
        self, home: uuid.UUID, user: uuid.UUID, role: str | None, expire_at: datetime | None = None
    ) -> int:
        """Add, change (role) or remove (None) a membership; its version."""
        self.versions[home] = self.versions.get(home, 0) + 1
        if role is None:
            self.members.pop((home, user), None)
        else:
            self.members[(home, user)] = (role, expire_at)
        return self.versions[home]

    async def access(self, space_id: uuid.UUID, user_id: uuid.UUID) -> SpaceAccessAnswer | None:
        self.calls.append((space_id, user_id))
        if self.failure is not None:
            raise self.failure
        home = self.homes.get(space_id)
        if home is None:
            return None
        role, expire_at = self.members.get((home, user_id), (None, None))
        if expire_at is not None and expire_at <= self._clock():
            role, expire_at = None, None
        return SpaceAccessAnswer(space_id, home, role, expire_at, self.versions.get(home, 0))


@dataclass
class DeviceWorld:
    """Handlers wired to fakes, and the fakes to look at."""

    handlers: DeviceHandlers
    commands: CommandHandlers
    # Devices whose delivery was started, in order.
    woken: list[uuid.UUID]
    access: AccessCheck
    uow: FakeUnitOfWork[DeviceRepositories]
    devices: FakeDevices
    logs: FakeDeviceLogs
    projection: FakeSpaceProjection
    space: FakeSpace
    secrets: DeviceSecrets
    heating: HeatingHandlers
    heating_rows: FakeHeating
    # Devices whose plan delivery was started, in order.
    plans_woken: list[uuid.UUID]
    clock: FakeClock = field(default_factory=FakeClock)
    # Whether the projection's events are arriving (the broker reachable).
    events_arriving: list[bool] = field(default_factory=lambda: [True])

    async def project(self) -> None:
        """The projection catches up with Space, as its events would make it."""
        for space, home in self.space.homes.items():
            await self.projection.remember_space(space, home)
        for (home, user), (role, expire_at) in self.space.members.items():
            await self.projection.apply_membership(
                home, user, role, expire_at, self.space.versions[home]
            )


def device_world(devices_per_home: int = 2000, open_commands_per_device: int = 100) -> DeviceWorld:
    clock = FakeClock()
    projection = FakeSpaceProjection()
    devices, logs = FakeDevices(projection), FakeDeviceLogs()
    heating_rows = FakeHeating(devices)
    uow = FakeUnitOfWork(
        DeviceRepositories(devices, logs, projection, FakeCommands(devices), heating_rows)
    )
    space = FakeSpace(clock)
    events_arriving = [True]
    access = AccessCheck(uow, space, lambda: events_arriving[0], clock)
    secrets = DeviceSecrets(b"device-secret-key-for-unit-tests-0123456789")
    page_tokens = PageTokens(b"page-token-key-for-unit-tests-0123456789")
    handlers = DeviceHandlers(
        uow, access, secrets, page_tokens, devices_per_home=devices_per_home, clock=clock
    )
    woken: list[uuid.UUID] = []
    commands = CommandHandlers(
        uow, handlers, page_tokens, woken.append, clock, open_per_device=open_commands_per_device
    )
    plans_woken: list[uuid.UUID] = []
    heating = HeatingHandlers(uow, handlers, plans_woken.append, clock)
    return DeviceWorld(
        handlers,
        commands,
        woken,
        access,
        uow,
        devices,
        logs,
        projection,
        space,
        secrets,
        heating,
        heating_rows,
        plans_woken,
        clock,
        events_arriving,
    )
