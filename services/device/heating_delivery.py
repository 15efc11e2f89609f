"""Heating plans out to devices, heating status back from them.

A plan goes to the replica holding the device's stream (the live "plan"
subject) when it changes and when the device connects; the sweep sends it
again to a device that has not applied it a while after it was written (the
frame or the device's answer may have been lost). A device applies an equal
version again, so sending twice costs nothing.

Reports are taken in the order the adapter received them: a report received
before the one stored (from an older stream, delivered late) is ignored, an
equal time is taken (never dropped).
"""

import logging
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, timedelta

from nats.aio.client import Client as NatsClient
from warmhouse.device_adapter.v1 import device_adapter_pb2

from services.device import domain, heating_rules
from services.device.dispatch import SWEEP_EVERY, SWEEP_LIMIT, DeviceDeliveries, write_to_holder
from services.device.handlers import log_entry
from services.device.heating import default_record
from services.device.ports import DeviceRepositories, HeatingRecord
from services.device.repository import sql_repositories
from services.runtime.clock import Clock, utc_now
from services.runtime.database import Connection
from services.runtime.device_links import ADAPTER_EVENT_RETENTION, LiveAction
from services.runtime.messaging import EventContext, Subscription
from services.runtime.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)
# Written, and still not applied after this: written again.
RESEND_UNAPPLIED_AFTER = timedelta(seconds=30)
DURABLE = "device-heating-status"


class PlanDispatcher(DeviceDeliveries):
    name = "plan-dispatcher"

    def __init__(
        self,
        uow: UnitOfWork[DeviceRepositories],
        nats_client: NatsClient,
        clock: Clock = utc_now,
        sweep_every: timedelta = SWEEP_EVERY,
        resend_after: timedelta = RESEND_UNAPPLIED_AFTER,
    ) -> None:
        super().__init__(sweep_every)
        self._uow = uow
        self._nats = nats_client
        self._clock = clock
        self._resend_after = resend_after

    async def awaiting(self) -> list[uuid.UUID]:
        async with self._uow.read() as repos:
            return await repos.heating.devices_awaiting_plan(
                self._clock() - self._resend_after, SWEEP_LIMIT
            )

    async def deliver(self, device_id: uuid.UUID) -> None:
        async with self._uow.read() as repos:
            device = await repos.devices.get(device_id)
            if (
                device is None
                or device.connection_id is None
                or device.lease_until is None
                or device.type not in heating_rules.HEATING_TYPES
            ):
                return
            record = await repos.heating.get(device_id) or default_record(device)
        if not self._due(record, device.connection_id):
            return
        payload = record.desired.SerializeToString()
        connection_id = await write_to_holder(self._nats, device_id, LiveAction.PLAN, payload)
        if connection_id is not None:
            await self._mark_pushed(device_id, record.desired.version, connection_id)

    def _due(self, record: HeatingRecord, connection_id: str) -> bool:
        if record.pushed_connection_id != connection_id:
            return True
        if record.pushed_version < record.desired.version:
            return True
        unapplied = record.applied_version < record.desired.version
        return unapplied and (
            record.pushed_at is None or record.pushed_at < self._clock() - self._resend_after
        )

    async def _mark_pushed(self, device_id: uuid.UUID, version: int, connection_id: str) -> None:
        async with self._uow.transaction() as tx:
            device = await tx.repos.devices.get(device_id, lock=True)
            if device is None:
                return
            record = await tx.repos.heating.get(device_id) or default_record(device)
            await tx.repos.heating.save(
                replace(
                    record,
                    pushed_version=version,
                    pushed_connection_id=connection_id,
                    pushed_at=self._clock(),
                )
            )


class HeatingReports:
    def __init__(self, on_plan_lost: Callable[[uuid.UUID], None]) -> None:
        # Told after a commit that found a device without the plan written to it.
        self._on_plan_lost = on_plan_lost

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
        if device is None or device.type not in heating_rules.HEATING_TYPES:
            return
        record = await repos.heating.get(device_id) or default_record(device)
        received = event.occur_time.ToDatetime(tzinfo=UTC)
        if record.reported_at is not None and received < record.reported_at:
            return  # an older report, delivered late
        status = event.status
        after = replace(
            record,
            reported=status,
            reported_version=record.reported_version + 1,
            reported_at=received,
        )
        # The device runs less than was written to it, and says so after the
        # write: it lost the plan (a restart); write it again now.
        lost = (
            status.plan_version < record.pushed_version
            and record.pushed_at is not None
            and received > record.pushed_at
        )
        if lost:
            after = replace(after, pushed_version=0)
        await repos.heating.save(after)
        before = record.reported
        if (before.window_open if before is not None else False) != status.window_open:
            await repos.logs.add(
                log_entry(
                    device_id, domain.HEATING_CHANGED, heating_rules.window_line(status), received
                )
            )
        if lost:
            context.after_commit(lambda: self._on_plan_lost(device_id))


def subscription(reports: HeatingReports) -> Subscription[device_adapter_pb2.HeatingStatusReceived]:
    return Subscription.of_event(
        DURABLE,
        "device-adapter",
        device_adapter_pb2.HeatingStatusReceived,
        reports.status_received,
        retention=ADAPTER_EVENT_RETENTION,
    )
