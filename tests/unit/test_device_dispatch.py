"""Delivering commands to the replica holding the stream, on in-memory repositories
and a stand-in for the broker."""

import uuid
from dataclasses import dataclass, replace
from datetime import timedelta

import nats.errors
import pytest
from warmhouse.device_adapter.v1 import device_adapter_pb2 as adapter_pb2

from services.device import command_rules
from services.device.dispatch import CommandDispatcher
from services.runtime.device_links import ERROR_HEADER, NOT_CONNECTED
from tests.unit.device_fakes import DeviceWorld, device_world
from tests.unit.test_device_commands import a_heater, send, set_target

RESEND_AFTER = timedelta(seconds=30)


@dataclass
class Reply:
    data: bytes
    headers: dict[str, str] | None = None


class FakeBroker:
    """Answers a device's live subject as the replica holding `connection` would."""

    def __init__(self) -> None:
        self.connection: str | None = None
        self.written: list[adapter_pb2.Command] = []
        # The holder answers that it could not write (its stream is ending).
        self.refusing = False

    async def request(self, subject: str, payload: bytes, timeout: float) -> Reply:  # noqa: ASYNC109 - nats-py's signature
        if self.connection is None:
            raise nats.errors.NoRespondersError
        if self.refusing:
            return Reply(b"", {ERROR_HEADER: NOT_CONNECTED})
        self.written.append(adapter_pb2.Command.FromString(payload))
        return Reply(self.connection.encode())


@pytest.fixture
def world() -> DeviceWorld:
    return device_world()


def dispatcher(world: DeviceWorld, broker: FakeBroker) -> CommandDispatcher:
    return CommandDispatcher(
        world.uow,
        broker,  # type: ignore[arg-type]
        clock=world.clock,
        resend_after=RESEND_AFTER,
    )


def connect(world: DeviceWorld, device_id: uuid.UUID, broker: FakeBroker, stream: str) -> None:
    broker.connection = stream
    device = world.devices.rows[device_id]
    world.devices.rows[device_id] = replace(
        device, connection_id=stream, lease_until=world.clock() + timedelta(seconds=15)
    )


def statuses(world: DeviceWorld) -> list[str]:
    rows = world.uow.repos.commands.rows  # type: ignore[attr-defined]
    return [c.status for c in sorted(rows.values(), key=lambda c: c.created_at)]


async def test_nothing_is_written_while_no_replica_holds_the_stream(world: DeviceWorld) -> None:
    home, device = await a_heater(world)
    await send(world, home.owner, set_target(device, 21))
    broker = FakeBroker()
    await dispatcher(world, broker).deliver(device)
    assert broker.written == []
    assert statuses(world) == [command_rules.QUEUED]


async def test_a_holder_that_could_not_write_leaves_the_command_queued(world: DeviceWorld) -> None:
    home, device = await a_heater(world)
    await send(world, home.owner, set_target(device, 21))
    broker = FakeBroker()
    connect(world, device, broker, "stream-1")
    broker.refusing = True
    await dispatcher(world, broker).deliver(device)
    assert statuses(world) == [command_rules.QUEUED]
    broker.refusing = False
    await dispatcher(world, broker).deliver(device)
    assert statuses(world) == [command_rules.SENT]


async def test_open_commands_are_written_oldest_first_and_marked_sent(world: DeviceWorld) -> None:
    home, device = await a_heater(world)
    sent = []
    for celsius in (19, 20, 21):
        sent.append((await send(world, home.owner, set_target(device, celsius))).command_id)
        world.clock.advance(seconds=1)
    broker = FakeBroker()
    connect(world, device, broker, "stream-1")
    await dispatcher(world, broker).deliver(device)
    assert [c.command_id for c in broker.written] == sent
    assert statuses(world) == [command_rules.SENT] * 3
    # Written once per stream: delivering again writes nothing.
    await dispatcher(world, broker).deliver(device)
    assert len(broker.written) == 3


async def test_an_unanswered_command_is_written_again_after_a_while_on_the_same_stream(
    world: DeviceWorld,
) -> None:
    home, device = await a_heater(world)
    command_id = (await send(world, home.owner, set_target(device, 22))).command_id
    broker = FakeBroker()
    connect(world, device, broker, "stream-1")
    deliveries = dispatcher(world, broker)
    await deliveries.deliver(device)
    world.clock.advance(seconds=29)
    await deliveries.deliver(device)
    assert len(broker.written) == 1
    world.clock.advance(seconds=2)
    await deliveries.deliver(device)
    assert [c.command_id for c in broker.written] == [command_id, command_id]
    assert world.logs.lines(device)[-1].endswith("SENT (again: no answer yet)")
    # A new stream gets it at once.
    connect(world, device, broker, "stream-2")
    await deliveries.deliver(device)
    assert len(broker.written) == 3
    assert world.logs.lines(device)[-1].endswith("SENT (again, on a new connection)")
