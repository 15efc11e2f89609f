"""Delivering commands and heating plans to the adapter replica that holds the device's stream.

Each replica answers on a device's live subject (runtime/device_links.py)
only while it holds that device's stream, so there is no routing table to go
stale: no responders means not connected, and the command stays QUEUED. A
device's open commands and its heating plan (heating_delivery.py) go out one
at a time in the order they were made, so a command queued before a newer
plan reaches the device before it (the plan then ends what the command
did), and one made after it, after it. A command is marked SENT once the
replica has written it to the stream. Delivery starts when something is
stored and when the device connects; a sweep every few seconds catches what
those missed (a restart in between, a broker hiccup).
"""

import asyncio
import contextlib
import logging
import uuid
from datetime import datetime, timedelta

import nats.errors
from nats.aio.client import Client as NatsClient
from warmhouse.device_adapter.v1 import device_adapter_pb2

from services.device import command_rules
from services.device.command_log import record_sent
from services.device.heating_delivery import PlanDelivery
from services.device.ports import CommandRecord, DeviceRecord, DeviceRepositories, HeatingRecord
from services.runtime.clock import Clock, utc_now
from services.runtime.device_links import LiveAction, ask_holder, live_subject
from services.runtime.loops import raise_if_stopping
from services.runtime.timestamps import timestamp
from services.runtime.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)
SWEEP_EVERY = timedelta(seconds=2)
# A command written to a stream that stays up but never answered is written
# again after this: its answer may have been lost, and the device answers a
# repeated id with its earlier result.
RESEND_UNANSWERED_AFTER = timedelta(seconds=30)
# Devices delivered to at once (after an adapter restart thousands reconnect).
CONCURRENT_DEVICES = 64
SWEEP_LIMIT = 1000


def wire_command(command: CommandRecord) -> device_adapter_pb2.Command:
    wire = device_adapter_pb2.Command(
        command_id=str(command.id),
        kind=device_adapter_pb2.CommandKind.Value(command.kind),
        expire_time=timestamp(command.expire_at),
    )
    if command.target_temperature is not None:
        wire.target_temperature_celsius = command.target_temperature
    return wire


async def write_to_holder(
    nats_client: NatsClient, device_id: uuid.UUID, action: LiveAction, payload: bytes
) -> str | None:
    """The id of the stream the frame was written to; None when it was not."""
    try:
        written = await ask_holder(nats_client, device_id, action, payload)
    except (TimeoutError, nats.errors.TimeoutError):
        log.info("no answer from the adapter holding a device; the sweep retries")
        return None
    if written is None:
        return None
    return written.decode() or None


def _made_at(item: CommandRecord | HeatingRecord) -> datetime:
    return item.created_at if isinstance(item, CommandRecord) else item.desired_at


class DeviceDispatcher:
    name = "device-dispatcher"

    def __init__(
        self,
        uow: UnitOfWork[DeviceRepositories],
        nats_client: NatsClient,
        clock: Clock = utc_now,
        sweep_every: timedelta = SWEEP_EVERY,
        resend_after: timedelta = RESEND_UNANSWERED_AFTER,
        plans: PlanDelivery | None = None,
    ) -> None:
        self._resend_after = resend_after
        self._uow = uow
        self._nats = nats_client
        self._clock = clock
        self._plans = plans or PlanDelivery(uow, clock)
        self._sweep_every = sweep_every.total_seconds()
        self._running: dict[uuid.UUID, asyncio.Task[None]] = {}
        # Woken while a delivery to it was under way: go round once more.
        self._again: set[uuid.UUID] = set()
        self._slots = asyncio.Semaphore(CONCURRENT_DEVICES)

    def wake(self, device_id: uuid.UUID) -> None:
        """Deliver the device's open commands and its plan soon (called after a commit)."""
        if device_id in self._running:
            self._again.add(device_id)
            return
        self._running[device_id] = asyncio.create_task(
            self._deliver_until_settled(device_id), name=f"deliver {device_id}"
        )

    async def run(self) -> None:
        try:
            while True:
                raise_if_stopping()
                await asyncio.sleep(self._sweep_every)
                try:
                    await self.sweep()
                except Exception:
                    raise_if_stopping()
                    log.warning("delivery sweep failed; will retry", exc_info=True)
        finally:
            for task in list(self._running.values()):
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*self._running.values(), return_exceptions=True)

    async def sweep(self) -> None:
        async with self._uow.read() as repos:
            now = self._clock()
            commands = await repos.commands.devices_awaiting_delivery(
                now, now - self._resend_after, SWEEP_LIMIT
            )
            plans = await self._plans.awaiting(repos, SWEEP_LIMIT)
        for device_id in dict.fromkeys([*commands, *plans]):
            self.wake(device_id)

    async def _deliver_until_settled(self, device_id: uuid.UUID) -> None:
        try:
            while True:
                self._again.discard(device_id)
                try:
                    async with self._slots:
                        await self.deliver(device_id)
                except Exception:
                    raise_if_stopping()
                    log.warning("delivery to a device failed; the sweep retries", exc_info=True)
                if device_id not in self._again:
                    return
        finally:
            self._running.pop(device_id, None)

    async def deliver(self, device_id: uuid.UUID) -> None:
        """Write the device's open commands and its plan (when due) to its stream, in the
        order they were made, until one cannot be."""
        async with self._uow.read() as repos:
            device = await repos.devices.get(device_id)
            if device is None or device.connection_id is None or device.lease_until is None:
                return
            now = self._clock()
            pending: list[CommandRecord | HeatingRecord] = [
                *await repos.commands.undelivered(
                    device_id, device.connection_id, now, now - self._resend_after
                )
            ]
            plan = await self._plans.due(repos, device)
        if plan is not None:
            pending.append(plan)
        for item in sorted(pending, key=_made_at):
            if not await self._write(device, item):
                return

    async def _write(self, device: DeviceRecord, item: CommandRecord | HeatingRecord) -> bool:
        if isinstance(item, HeatingRecord):
            payload = item.desired.SerializeToString()
            written = await write_to_holder(self._nats, device.id, LiveAction.PLAN, payload)
            if written is not None:
                await self._plans.mark_pushed(device.id, item.desired.version, written)
        else:
            payload = wire_command(item).SerializeToString()
            written = await write_to_holder(self._nats, device.id, LiveAction.COMMAND, payload)
            if written is not None:
                await self._mark_sent(item, device.space_id, written)
        return written is not None

    async def _mark_sent(
        self, command: CommandRecord, space_id: uuid.UUID, connection_id: str
    ) -> None:
        async with self._uow.transaction() as tx:
            current = await tx.repos.commands.get(command.device_id, command.id, lock=True)
            # Answered (the answer's event can overtake this reply), or expired meanwhile.
            if current is None or current.status not in command_rules.OPEN_STATUSES:
                return
            now = self._clock()
            # Written to this stream before, and not long enough ago to count
            # as unanswered: a delivery that overlapped this one.
            recent = current.updated_at >= now - self._resend_after
            if current.sent_connection_id == connection_id and recent:
                return
            await record_sent(tx.repos, tx.add_event, current, space_id, connection_id, now)


class RevocationNotices:
    """Tells the replica holding a device's stream that its credential ended.

    Best effort (core NATS): a replica that misses it keeps the stream until
    the device reconnects, when the old credential is refused."""

    def __init__(self, nats_client: NatsClient) -> None:
        self._nats = nats_client
        self._sending: set[asyncio.Task[None]] = set()

    def __call__(self, device_id: uuid.UUID) -> None:
        task = asyncio.create_task(self._send(device_id))
        # Held until done: the loop keeps only weak references to tasks.
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, device_id: uuid.UUID) -> None:
        try:
            await self._nats.publish(live_subject(device_id, LiveAction.REVOKE), b"")
        except Exception:
            log.warning(
                "could not tell the adapter that a device's credential ended", exc_info=True
            )
