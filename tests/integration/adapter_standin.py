"""An adapter replica as Device sees one, on the real broker: it answers a
device's live subjects and publishes the adapter's events. Tests of Device's
side of the device loop use it; the real adapter is tested end to end."""

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import nats
from google.protobuf.message import Message
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from warmhouse.device_adapter.v1 import device_adapter_pb2 as adapter_pb2
from warmhouse.heating.v1 import heating_pb2

from services.runtime.device_links import live_wildcard
from services.runtime.outbox import MSG_ID_HEADER, subject_of
from services.runtime.timestamps import timestamp


class Replica:
    """Holds streams of devices: records the commands written to each."""

    def __init__(self, client: NatsClient) -> None:
        self._nats = client
        self._held: dict[str, tuple[str, Subscription]] = {}
        self._opened: dict[str, datetime] = {}
        self.written: dict[str, list[adapter_pb2.Command]] = {}
        # Heating plans written to each device's streams, in order.
        self.plans: dict[str, list[heating_pb2.HeatingPlan]] = {}
        # The highest plan version written to each stream.
        self._plan_written: dict[str, int] = {}
        # Devices told to end their stream (retired, new secret), once per notice.
        self.revoked: list[str] = []

    async def publish(self, event: Message) -> None:
        await self._nats.jetstream().publish(
            subject_of(event), event.SerializeToString(), headers={MSG_ID_HEADER: str(uuid.uuid4())}
        )

    async def connect(self, device_id: str, *, announce: bool = True) -> str:
        """Hold a new stream of the device; its DeviceConnected is published."""
        connection_id = str(uuid.uuid4())

        async def on_live(message: Msg) -> None:
            if message.subject.endswith(".command"):
                command = adapter_pb2.Command.FromString(message.data)
                self.written.setdefault(device_id, []).append(command)
                await message.respond(connection_id.encode())
            elif message.subject.endswith(".plan"):
                plan = heating_pb2.HeatingPlan.FromString(message.data)
                self.plans.setdefault(device_id, []).append(plan)
                written = self._plan_written.get(connection_id, 0)
                self._plan_written[connection_id] = max(written, plan.version)
                await message.respond(connection_id.encode())
            elif message.subject.endswith(".revoke"):
                self.revoked.append(device_id)

        subscription = await self._nats.subscribe(live_wildcard(device_id), cb=on_live)
        await self._nats.flush()
        self._held[device_id] = (connection_id, subscription)
        self._opened[connection_id] = datetime.now(UTC)
        if announce:
            await self.announce(device_id)
        return connection_id

    async def announce(self, device_id: str) -> None:
        """Publish the DeviceConnected of the stream held (maybe late)."""
        connection_id = self._held[device_id][0]
        await self.publish(
            adapter_pb2.DeviceConnected(
                device_id=device_id,
                connection_id=connection_id,
                occur_time=timestamp(self._opened[connection_id]),
                lease_seconds=15,
            )
        )

    async def drop(
        self,
        device_id: str,
        reason: adapter_pb2.DisconnectReason.ValueType = adapter_pb2.CLOSED_BY_DEVICE,
        *,
        announce: bool = True,
    ) -> str:
        """End the device's stream (a killed replica does not announce it)."""
        connection_id, subscription = self._held.pop(device_id)
        await subscription.unsubscribe()
        if announce:
            now = timestamp(datetime.now(UTC))
            await self.publish(
                adapter_pb2.DeviceDisconnected(
                    device_id=device_id,
                    connection_id=connection_id,
                    reason=reason,
                    last_seen_time=now,
                    occur_time=now,
                    connect_time=timestamp(self._opened[connection_id]),
                )
            )
        return connection_id

    async def report_presence(self, lease_seconds: int) -> None:
        now = timestamp(datetime.now(UTC))
        await self.publish(
            adapter_pb2.DevicesPresent(
                adapter_id="stand-in",
                devices=[
                    adapter_pb2.Presence(
                        device_id=device, connection_id=held[0], last_seen_time=now
                    )
                    for device, held in self._held.items()
                ],
                lease_seconds=lease_seconds,
                occur_time=now,
            )
        )

    async def answer(self, device_id: str, command_id: str, ok: bool, message: str = "") -> None:
        await self.publish(
            adapter_pb2.CommandAcknowledged(
                device_id=device_id,
                command_id=command_id,
                ok=ok,
                message=message,
                occur_time=timestamp(datetime.now(UTC)),
            )
        )

    async def report_heating(
        self,
        device_id: str,
        status: heating_pb2.HeatingStatus,
        received: datetime | None = None,
        *,
        connection_id: str | None = None,
    ) -> None:
        """The device's HeatingStatus as received at `received` (default now) on the
        stream it holds (or an older one, `connection_id`)."""
        connection_id = connection_id or self._held[device_id][0]
        await self.publish(
            adapter_pb2.HeatingStatusReceived(
                device_id=device_id,
                connection_id=connection_id,
                status=status,
                occur_time=timestamp(received or datetime.now(UTC)),
                connect_time=timestamp(self._opened[connection_id]),
                plan_version_written=self._plan_written.get(connection_id, 0),
            )
        )


@asynccontextmanager
async def replica(nats_url: str) -> AsyncIterator[Replica]:
    client = await nats.connect(nats_url)
    try:
        yield Replica(client)
    finally:
        await client.drain()
