"""Heating plans out to devices, heating status back from them.

A plan goes to the replica holding the device's stream (the live "plan"
subject, written by dispatch.py in order with the device's commands) when it
changes and when the device connects; the sweep sends it again to a device
that has not applied it a while after it was written (the frame or the
device's answer may have been lost). A device applies an equal version
again, so sending twice costs nothing.

Reports are taken in the order the adapter received them: by the time their
stream opened, then by the time they arrived on it. A report from an older
stream delivered late is ignored; an equal time is taken (never dropped).
"""

import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from google.protobuf.timestamp_pb2 import Timestamp
from warmhouse.device_adapter.v1 import device_adapter_pb2
from warmhouse.heating.v1 import heating_pb2

from services.device import domain, heating_rules
from services.device.handlers import log_entry
from services.device.heating import default_record
from services.device.ports import DeviceRecord, DeviceRepositories, HeatingRecord
from services.device.repository import sql_repositories
from services.runtime.clock import Clock, utc_now
from services.runtime.database import Connection
from services.runtime.device_links import ADAPTER_EVENT_RETENTION
from services.runtime.heating_model import HEATING_DEVICE_TYPES
from services.runtime.messaging import EventContext, Subscription
from services.runtime.unit_of_work import UnitOfWork

# Written, and still not applied after this: written again.
RESEND_UNAPPLIED_AFTER = timedelta(seconds=30)
# A device that says it does not run the plan written to its stream gets it
# again, but not more often than this: its status may have crossed the plan
# on the wire, and a firmware refusing the plan must not make a loop.
RESEND_REFUSED_AFTER = timedelta(seconds=2)
DURABLE = "device-heating-status"


class PlanDelivery:
    """Which plan a device's stream still needs, and what was written where."""

    def __init__(
        self,
        uow: UnitOfWork[DeviceRepositories],
        clock: Clock = utc_now,
        resend_after: timedelta = RESEND_UNAPPLIED_AFTER,
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._resend_after = resend_after

    async def awaiting(self, repos: DeviceRepositories, limit: int) -> list[uuid.UUID]:
        return await repos.heating.devices_awaiting_plan(self._clock() - self._resend_after, limit)

    async def due(self, repos: DeviceRepositories, device: DeviceRecord) -> HeatingRecord | None:
        """The device's plan, when its stream (device.connection_id) should get it now."""
        if device.type not in HEATING_DEVICE_TYPES or device.connection_id is None:
            return None
        record = await repos.heating.get(device.id) or default_record(device)
        return record if self._is_due(record, device.connection_id) else None

    def _is_due(self, record: HeatingRecord, connection_id: str) -> bool:
        if record.pushed_connection_id != connection_id:
            return True
        if record.pushed_version < record.desired.version:
            return True
        unapplied = record.applied_version < record.desired.version
        return unapplied and (
            record.pushed_at is None or record.pushed_at < self._clock() - self._resend_after
        )

    async def mark_pushed(self, device_id: uuid.UUID, version: int, connection_id: str) -> None:
        async with self._uow.transaction() as tx:
            device = await tx.repos.devices.get(device_id, lock=True)
            if device is None:
                return
            record = await tx.repos.heating.get(device_id) or default_record(device)
            if record.pushed_connection_id == connection_id:
                # Two deliveries overlapping (or two Device replicas): the higher stands.
                version = max(version, record.pushed_version)
            await tx.repos.heating.save(
                replace(
                    record,
                    pushed_version=version,
                    pushed_connection_id=connection_id,
                    pushed_at=self._clock(),
                )
            )


def _moment(stamp: Timestamp) -> datetime:
    return stamp.ToDatetime(tzinfo=UTC)


class HeatingReports:
    def __init__(
        self, on_plan_refused: Callable[[uuid.UUID], None], clock: Clock = utc_now
    ) -> None:
        # Told after a commit that found the device should get its plan again.
        self._on_plan_refused = on_plan_refused
        self._clock = clock

    async def status_received(
        self,
        connection: Connection,
        event: device_adapter_pb2.HeatingStatusReceived,
        context: EventContext,
    ) -> None:
        try:
            device_id = uuid.UUID(event.device_id)
        except ValueError:
            return
        repos = sql_repositories(connection)
        device = await repos.devices.get(device_id, lock=True)
        if device is None or device.type not in HEATING_DEVICE_TYPES:
            return
        record = await repos.heating.get(device_id) or default_record(device)
        received = _moment(event.occur_time)
        opened = _moment(event.connect_time) if event.HasField("connect_time") else received
        if _older(opened, received, record):
            return
        status = event.status
        after = replace(
            record,
            reported=status,
            reported_version=record.reported_version + 1,
            reported_at=received,
            reported_stream_at=opened,
        )
        if self._refused(record, event):
            after = replace(after, pushed_version=0)
            context.after_commit(lambda: self._on_plan_refused(device_id))
        if status.plan_version > record.desired.version:
            # The device runs a version this service never gave out (its storage
            # outlived a restored database): renumber the plan above it, or the
            # device would ignore every plan until the versions caught up.
            after = replace(after, desired=_renumbered(record.desired, status.plan_version + 1))
            line = f"desired v{after.desired.version}: renumbered above the device's own"
            await repos.logs.add(log_entry(device_id, domain.HEATING_CHANGED, line, received))
            context.after_commit(lambda: self._on_plan_refused(device_id))
        after = await _log_window(repos, record, after, received)
        await repos.heating.save(after)

    def _refused(
        self, record: HeatingRecord, event: device_adapter_pb2.HeatingStatusReceived
    ) -> bool:
        """The device runs less than its stream was given (it restarted, or dropped the
        frame), and it was not given it again just now."""
        behind = event.status.plan_version < event.plan_version_written
        recently = record.pushed_at is not None and (
            record.pushed_at > self._clock() - RESEND_REFUSED_AFTER
        )
        return behind and event.connection_id == record.pushed_connection_id and not recently


async def _log_window(
    repos: DeviceRepositories, before: HeatingRecord, after: HeatingRecord, received: datetime
) -> HeatingRecord:
    """Log a window opening (at most every WINDOW_LOG_EVERY) and the closing of one logged."""
    was_open = before.reported.window_open if before.reported is not None else False
    status = after.reported
    assert status is not None
    if status.window_open == was_open:
        return after
    if status.window_open:
        if not heating_rules.window_worth_logging(before.window_logged_at, received):
            return replace(after, window_open_logged=False)
        after = replace(after, window_logged_at=received, window_open_logged=True)
    elif not before.window_open_logged:
        return after
    else:
        after = replace(after, window_open_logged=False)
    line = heating_rules.window_line(status)
    await repos.logs.add(log_entry(after.device_id, domain.HEATING_CHANGED, line, received))
    return after


def _renumbered(plan: heating_pb2.HeatingPlan, version: int) -> heating_pb2.HeatingPlan:
    renumbered = heating_pb2.HeatingPlan()
    renumbered.CopyFrom(plan)
    renumbered.version = version
    return renumbered


def _older(opened: datetime, received: datetime, record: HeatingRecord) -> bool:
    """Whether a report (from a stream opened at `opened`, received at `received`) is
    older than the one stored."""
    if record.reported_at is None:
        return False
    stored_opened = record.reported_stream_at or record.reported_at
    return (opened, received) < (stored_opened, record.reported_at)


def subscription(reports: HeatingReports) -> Subscription[device_adapter_pb2.HeatingStatusReceived]:
    return Subscription.of_event(
        DURABLE,
        "device-adapter",
        device_adapter_pb2.HeatingStatusReceived,
        reports.status_received,
        retention=ADAPTER_EVENT_RETENTION,
    )
