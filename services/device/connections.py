"""What the Device Adapter's events say about devices: connected, gone, still
there, and how they answered commands.

A device is ONLINE from its DeviceConnected until the DeviceDisconnected of
that same stream (a late one about an older stream changes nothing), or until
its lease runs out: each adapter replica reports the streams it holds every
few seconds, so a replica killed without a word stops renewing them and the
lease sweep marks its devices OFFLINE. ERROR, set by hand, stays ERROR.
"""

import logging
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from warmhouse.device.v1 import device_pb2
from warmhouse.device_adapter.v1 import device_adapter_pb2

from services.device import command_rules, domain
from services.device.command_log import record_final, record_late_answer
from services.device.handlers import log_entry
from services.device.ports import DeviceRecord, DeviceRepositories, Presence
from services.device.repository import sql_repositories
from services.runtime import outbox
from services.runtime.clock import Clock, utc_now
from services.runtime.database import Connection, Database
from services.runtime.device_links import ADAPTER_EVENT_RETENTION
from services.runtime.messaging import EventContext, EventT, Handler, Subscription
from services.runtime.timestamps import timestamp

log = logging.getLogger(__name__)
# When an event does not say how long its report holds.
DEFAULT_LEASE = timedelta(seconds=15)
LAPSED_LEASES_BATCH = 500
_REASONS = device_adapter_pb2.DisconnectReason


def _moment(stamp: Timestamp) -> datetime:
    return stamp.ToDatetime(tzinfo=UTC)


def _device_uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


class _Events:
    """Writes a change's log entry and event in the consumer's transaction."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.repos: DeviceRepositories = sql_repositories(connection)

    async def publish(self, event: Message) -> None:
        await outbox.add_event(self.connection, event)

    async def status_changed(
        self, device: DeviceRecord, new_status: str, now: datetime, why: str = ""
    ) -> None:
        await self.repos.logs.add(
            log_entry(
                device.id,
                domain.STATUS_CHANGED,
                domain.status_line(device.status, new_status, why),
                now,
            )
        )
        await self.publish(
            device_pb2.DeviceStatusChanged(
                device_id=str(device.id),
                space_id=str(device.space_id),
                old_status=device_pb2.DeviceStatus.Value(device.status),
                new_status=device_pb2.DeviceStatus.Value(new_status),
                occur_time=timestamp(now),
            )
        )

    async def save_with_status(
        self, before: DeviceRecord, after: DeviceRecord, now: datetime, why: str = ""
    ) -> None:
        await self.repos.devices.save(after)
        if after.status != before.status:
            await self.status_changed(before, after.status, now, why)


def _opened_with_an_old_secret(device: DeviceRecord, opened: datetime | None) -> bool:
    rotated = device.secret_rotated_at
    return rotated is not None and opened is not None and opened < rotated


class ConnectionEvents:
    def __init__(
        self,
        on_connected: Callable[[uuid.UUID], None],
        clock: Clock = utc_now,
        on_stale_credential: Callable[[uuid.UUID], None] = lambda device_id: None,
    ) -> None:
        # Starts delivering the device's open commands once the change is committed.
        self._on_connected = on_connected
        # Ends again the stream of a device retired, or opened with a secret
        # since replaced: the notice sent then may not have reached its replica.
        self._on_stale_credential = on_stale_credential
        self._clock = clock

    async def connected(
        self,
        connection: Connection,
        event: device_adapter_pb2.DeviceConnected,
        context: EventContext,
    ) -> None:
        device_id = _device_uuid(event.device_id)
        if device_id is None:
            return
        changes = _Events(connection)
        device = await changes.repos.devices.get(device_id, lock=True)
        opened = _moment(event.occur_time)
        # A stream that opened no later than the one last known (current or
        # ended) is old news, unless it is that very stream again.
        known = device.connected_at if device is not None else None
        old_news = known is not None and opened <= known
        if device is None or (old_news and event.connection_id != device.connection_id):
            return
        now = self._clock()
        lease = timedelta(seconds=event.lease_seconds) if event.lease_seconds > 0 else DEFAULT_LEASE
        after = replace(
            device,
            connection_id=event.connection_id,
            connected_at=opened,
            lease_until=now + lease,
            last_seen=opened if device.last_seen is None else max(device.last_seen, opened),
            status=domain.connected_status(device.status),
            updated_at=now,
        )
        await changes.save_with_status(device, after, now)
        context.after_commit(lambda: self._on_connected(device_id))
        # Authenticated just before the secret changed: the notice then found
        # no stream to end.
        if _opened_with_an_old_secret(device, opened):
            context.after_commit(partial(self._on_stale_credential, device_id))

    async def disconnected(
        self,
        connection: Connection,
        event: device_adapter_pb2.DeviceDisconnected,
        context: EventContext,
    ) -> None:
        device_id = _device_uuid(event.device_id)
        if device_id is None:
            return
        # A newer stream took over: its DeviceConnected (maybe not here yet) decides.
        if event.reason == _REASONS.REPLACED:
            return
        changes = _Events(connection)
        device = await changes.repos.devices.get(device_id, lock=True)
        if device is None:
            return
        ended = _moment(event.occur_time)
        # Not the stream it holds: about an older one (opened before it; its
        # end may well be stamped after the newer one opened), nothing to do.
        # About a newer one whose DeviceConnected has not been handled yet
        # (events of two consumers overtake each other): it ended, so has every
        # older one, and its late DeviceConnected must not bring it back.
        opened = _moment(event.connect_time) if event.HasField("connect_time") else ended
        newer = device.connected_at is None or opened > device.connected_at
        if device.connection_id != event.connection_id and not newer:
            return
        now = self._clock()
        last_seen = _moment(event.last_seen_time) if event.HasField("last_seen_time") else None
        after = replace(
            device,
            connection_id=None,
            # The latest stream known to have opened: its late DeviceConnected,
            # or any older stream's, must not bring the device back.
            connected_at=max(opened, device.connected_at or opened),
            lease_until=None,
            last_seen=max(filter(None, (device.last_seen, last_seen)), default=None),
            status=domain.disconnected_status(device.status),
            updated_at=now,
        )
        why = _REASONS.Name(event.reason) if event.reason in _REASONS.values() else ""
        await changes.save_with_status(device, after, now, why)

    async def present(
        self,
        connection: Connection,
        event: device_adapter_pb2.DevicesPresent,
        context: EventContext,
    ) -> None:
        reports = [
            Presence(device_id, report.connection_id, _moment(report.last_seen_time))
            for report in event.devices
            if (device_id := _device_uuid(report.device_id)) is not None
        ]
        if not reports:
            return
        lease = timedelta(seconds=event.lease_seconds) if event.lease_seconds > 0 else DEFAULT_LEASE
        changes = _Events(connection)
        now = self._clock()
        renewed = await changes.repos.devices.renew_leases(reports, now + lease)
        for device in renewed:
            # The lease had run out (reports were late), yet the stream lives on:
            # renew_leases brought it back ONLINE.
            if device.status == domain.OFFLINE:
                await changes.status_changed(device, domain.ONLINE, now, "reported again")
                context.after_commit(partial(self._on_connected, device.id))
            if _opened_with_an_old_secret(device, device.connected_at):
                context.after_commit(partial(self._on_stale_credential, device.id))
        unrenewed = {report.device_id for report in reports} - {d.id for d in renewed}
        if unrenewed:
            for retired in await changes.repos.devices.retired_among(sorted(unrenewed)):
                context.after_commit(partial(self._on_stale_credential, retired))

    async def command_answered(
        self,
        connection: Connection,
        event: device_adapter_pb2.CommandAcknowledged,
        context: EventContext,
    ) -> None:
        device_id, command_id = _device_uuid(event.device_id), _device_uuid(event.command_id)
        if device_id is None or command_id is None:
            return
        changes = _Events(connection)
        command = await changes.repos.commands.get(device_id, command_id, lock=True)
        if command is None:
            log.info("a device answered a command it was never sent; ignored")
            return
        now = self._clock()
        if command.status == command_rules.EXPIRED:
            await record_late_answer(changes.repos, command, event.ok, now)
            return
        if command.status not in command_rules.OPEN_STATUSES:
            return  # answered before: a repeat changes nothing
        device = await changes.repos.devices.get(device_id)
        if device is None:
            return  # retired meanwhile: its open commands expire
        await record_final(
            changes.repos,
            changes.publish,
            command,
            device.space_id,
            command_rules.answered_status(event.ok),
            command_rules.device_message(event.message),
            now,
        )


async def mark_lapsed_offline(
    database: Database, reports_arriving: Callable[[], bool], clock: Clock = utc_now
) -> int:
    """Devices no adapter reported in time (e.g. their replica was killed) go OFFLINE.

    Only while reports can arrive: after this service or the broker was away,
    the reports published meanwhile are still being fetched, and leases that
    ran out in the gap would flap OFFLINE and back."""
    if not reports_arriving():
        return 0
    async with database.transaction() as connection:
        changes = _Events(connection)
        now = clock()
        lapsed = await changes.repos.devices.lapsed_leases(now, LAPSED_LEASES_BATCH)
        for device in lapsed:
            after = replace(
                device,
                lease_until=None,
                status=domain.disconnected_status(device.status),
                updated_at=now,
            )
            await changes.save_with_status(device, after, now, "no adapter reported it")
        return len(lapsed)


def _subscription(
    durable: str, event_type: type[EventT], handle: Handler[EventT]
) -> Subscription[EventT]:
    return Subscription.of_event(
        durable, "device-adapter", event_type, handle, retention=ADAPTER_EVENT_RETENTION
    )


def subscriptions(events: ConnectionEvents) -> list[Subscription[Any]]:
    return [
        _subscription(
            "device-adapter-connected", device_adapter_pb2.DeviceConnected, events.connected
        ),
        _subscription(
            "device-adapter-disconnected",
            device_adapter_pb2.DeviceDisconnected,
            events.disconnected,
        ),
        _subscription("device-adapter-present", device_adapter_pb2.DevicesPresent, events.present),
        _subscription(
            "device-adapter-command-answered",
            device_adapter_pb2.CommandAcknowledged,
            events.command_answered,
        ),
    ]
