"""What the Device service's use cases read and write, independent of storage.

Handlers see only these: records as plain dataclasses, repositories as
protocols. `repository.py` implements them on PostgreSQL; unit tests on
dictionaries (tests/unit/device_fakes.py).
"""

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from warmhouse.heating.v1 import heating_pb2

from services.runtime.auth import Caller
from services.runtime.pagination import Cursor
from services.runtime.space_roles import Membership, Right


@dataclass(frozen=True)
class DeviceRecord:
    id: uuid.UUID
    space_id: uuid.UUID
    # The space's home (the space itself when it is a home): whose members may see it.
    home_id: uuid.UUID
    type: str
    name: str
    status: str
    last_seen: datetime | None
    # HMAC of the device's secret (device_secrets.py); the secret is never stored.
    secret_hash: bytes
    created_at: datetime
    updated_at: datetime
    retired_at: datetime | None = None
    # The adapter stream it holds (connections.py); None when it has none.
    connection_id: str | None = None
    connected_at: datetime | None = None
    # Counts as connected until then unless an adapter reports it again.
    lease_until: datetime | None = None
    # A stream opened before this was opened with the old secret.
    secret_rotated_at: datetime | None = None
    # The newest sample (a serialized Reading), written by telemetry ingestion only.
    last_reading: bytes | None = None


@dataclass(frozen=True)
class HeatingRecord:
    """A heating device's desired and reported state (heating.proto)."""

    device_id: uuid.UUID
    # Carries its version.
    desired: heating_pb2.HeatingPlan
    desired_at: datetime
    # None for the defaults.
    desired_by: uuid.UUID | None = None
    # None until the device first reports.
    reported: heating_pb2.HeatingStatus | None = None
    reported_version: int = 0
    # When the report's stream opened, and when the adapter received the report.
    reported_stream_at: datetime | None = None
    reported_at: datetime | None = None
    # The plan version last written to a stream, which stream, and when.
    pushed_version: int = 0
    pushed_connection_id: str | None = None
    pushed_at: datetime | None = None
    # Desired changes since changes_window_start (heating_rules.count_change).
    changes_window_start: datetime | None = None
    changes_in_window: int = 0
    # When an open window was last logged, and whether the one open now was.
    window_logged_at: datetime | None = None
    window_open_logged: bool = False

    @property
    def applied_version(self) -> int:
        return self.reported.plan_version if self.reported is not None else 0


@dataclass(frozen=True)
class Presence:
    """An adapter's report that a device still holds a stream."""

    device_id: uuid.UUID
    connection_id: str
    last_seen: datetime


@dataclass(frozen=True)
class CommandRecord:
    id: uuid.UUID
    device_id: uuid.UUID
    kind: str
    target_temperature: float | None
    status: str
    message: str
    request_id: str
    requester_id: uuid.UUID
    created_at: datetime
    updated_at: datetime
    expire_at: datetime
    # The stream it was last written to; a newer stream gets it again.
    sent_connection_id: str | None = None


@dataclass(frozen=True)
class DeviceLogRecord:
    id: uuid.UUID
    device_id: uuid.UUID
    kind: str
    event: str
    timestamp: datetime
    # A serialized Reading, for READING_RECORDED and ALARM_RAISED entries.
    reading: bytes | None = None


@dataclass(frozen=True)
class ProjectedAccess:
    """What this service's copy of Space's data says about a caller and a space."""

    # None: the copy does not know the space (yet).
    home_id: uuid.UUID | None
    deleted: bool = False
    # The caller's membership of the home; None for none, or one that ended.
    membership: Membership | None = None

    def allows(self, caller: Caller, right: Right, now: datetime) -> bool:
        """True only when the copy alone grants `right`; anything else is asked of Space."""
        if self.home_id is None or self.deleted:
            return False
        if caller.is_admin:
            return True
        return self.membership is not None and self.membership.allows(right, now)


@dataclass(frozen=True)
class KnownSpace:
    space_id: uuid.UUID
    home_id: uuid.UUID
    deleted: bool


class Devices(Protocol):
    async def add(self, device: DeviceRecord) -> None: ...

    async def get(self, device_id: uuid.UUID, *, lock: bool = False) -> DeviceRecord | None:
        """A live (not retired) device; `lock` holds its row until the transaction ends."""

    async def get_with_access(
        self, device_id: uuid.UUID, user_id: uuid.UUID
    ) -> tuple[DeviceRecord, ProjectedAccess] | None:
        """A live device and what the projection says of `user_id` in its space (one query)."""

    async def list_in_home(
        self, home_id: uuid.UUID, after: Cursor | None, limit: int
    ) -> list[DeviceRecord]:
        """Live devices of a home and its rooms, in (created_at, id) order."""

    async def list_in_space(
        self, space_id: uuid.UUID, after: Cursor | None, limit: int
    ) -> list[DeviceRecord]:
        """Live devices of exactly this space, in (created_at, id) order."""

    async def save(self, device: DeviceRecord) -> None:
        """Write the mutable fields back."""

    async def hold_home(self, home_id: uuid.UUID) -> None:
        """Serialize, until the transaction ends, with other registrations in the home."""

    async def count_in_space(self, space_id: uuid.UUID) -> int:
        """Live devices whose space or home is `space_id`."""

    async def retire_in_space(self, space_id: uuid.UUID, now: datetime) -> list[DeviceRecord]:
        """Retire every live device of exactly this space; those retired."""

    async def renew_leases(
        self, reports: list[Presence], lease_until: datetime
    ) -> list[DeviceRecord]:
        """Extend the lease and last_seen of each reported device still on the
        reported stream, OFFLINE ones back ONLINE; the renewed devices,
        row-locked, as they were before."""

    async def retired_among(self, device_ids: list[uuid.UUID]) -> list[uuid.UUID]:
        """Those of `device_ids` that were retired."""

    async def lapsed_leases(self, now: datetime, limit: int) -> list[DeviceRecord]:
        """Live devices whose lease ran out, row-locked (skipping rows locked elsewhere)."""


class Commands(Protocol):
    async def add(self, command: CommandRecord) -> None: ...

    async def get(
        self, device_id: uuid.UUID, command_id: uuid.UUID, *, lock: bool = False
    ) -> CommandRecord | None: ...

    async def listing(
        self, device_id: uuid.UUID, status: str | None, after: Cursor | None, limit: int
    ) -> list[CommandRecord]:
        """Newest first, in (created_at, id) descending order, after the cursor."""

    async def undelivered(
        self, device_id: uuid.UUID, connection_id: str, now: datetime, resend_before: datetime
    ) -> list[CommandRecord]:
        """Open, unexpired commands not yet written to stream `connection_id`, or
        written (last) before `resend_before` and still unanswered; oldest first."""

    async def save(self, command: CommandRecord) -> None:
        """Write status, message, sent_connection_id and updated_at back."""

    async def hold_device(self, device_id: uuid.UUID) -> None:
        """Serialize, until the transaction ends, with other commands stored for the device."""

    async def count_open(self, device_id: uuid.UUID) -> int:
        """The device's QUEUED and SENT commands."""

    async def lapsed(self, now: datetime, limit: int) -> list[tuple[CommandRecord, uuid.UUID]]:
        """Open commands past their deadline with their device's space, row-locked
        (skipping rows locked elsewhere)."""

    async def devices_awaiting_delivery(
        self, now: datetime, resend_before: datetime, limit: int
    ) -> list[uuid.UUID]:
        """Connected devices with commands `undelivered` would return."""


class DeviceLogs(Protocol):
    async def add(self, entry: DeviceLogRecord) -> None: ...

    async def list(
        self, device_id: uuid.UUID, kind: str | None, after: Cursor | None, limit: int
    ) -> list[DeviceLogRecord]:
        """Newest first, in (timestamp, id) descending order, after the cursor
        (whose created_at is an entry's timestamp)."""


class SpaceProjection(Protocol):
    """This service's copy of which spaces exist and who belongs to which home."""

    async def access(self, space_id: uuid.UUID, user_id: uuid.UUID) -> ProjectedAccess: ...

    async def lock_space(self, space_id: uuid.UUID) -> KnownSpace | None:
        """The space, share-locked until the transaction ends: a concurrent
        deletion waits for the device being put there (and then retires it)."""

    async def remember_space(self, space_id: uuid.UUID, home_id: uuid.UUID) -> None:
        """Record that the space exists; keeps what is already known (a deletion)."""

    async def mark_deleted(self, space_id: uuid.UUID, home_id: uuid.UUID) -> None: ...

    async def apply_membership(
        self,
        home_id: uuid.UUID,
        user_id: uuid.UUID,
        role: str | None,
        expire_at: datetime | None,
        version: int,
    ) -> bool:
        """Record a membership (`role` None: it ended) unless one of the same
        or a newer version is recorded; whether it was applied."""


class Heating(Protocol):
    async def get(self, device_id: uuid.UUID) -> HeatingRecord | None:
        """None while the device runs the defaults and never reported (no row yet).
        Writers lock the device's row first: that serializes them."""

    async def save(self, record: HeatingRecord) -> None:
        """Insert or overwrite the device's row."""

    async def devices_awaiting_plan(self, resend_before: datetime, limit: int) -> list[uuid.UUID]:
        """Connected heating devices whose stream has not had the current plan, or
        that have not applied a plan last written before `resend_before`."""


@dataclass(frozen=True)
class DeviceRepositories:
    """What one unit of work hands out."""

    devices: Devices
    logs: DeviceLogs
    spaces: SpaceProjection
    commands: Commands
    heating: Heating
