"""Delivering commands to the replica holding the stream, on in-memory repositories
and a stand-in for the broker."""

import uuid
from collections.abc import Awaitable
from dataclasses import dataclass, replace
from datetime import timedelta

import nats.errors
import pytest
from warmhouse.device.v1 import device_pb2
from warmhouse.device_adapter.v1 import device_adapter_pb2 as adapter_pb2
from warmhouse.heating.v1 import heating_pb2

from services.device import command_rules
from services.device.dispatch import DeviceDispatcher
from services.runtime.auth import Caller
from services.runtime.device_links import ERROR_HEADER, NOT_CONNECTED
from tests.unit.device_fakes import DeviceWorld, device_world
from tests.unit.test_device_commands import a_heater, send, set_target, switch
from tests.unit.test_device_handlers import projected_home

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
        # Heating plans, and what was written in which order ("command" or "plan").
        self.plans: list[heating_pb2.HeatingPlan] = []
        self.order: list[str] = []
        # The holder answers that it could not write (its stream is ending).
        self.refusing = False

    async def request(self, subject: str, payload: bytes, timeout: float) -> Reply:  # noqa: ASYNC109 - nats-py's signature
        if self.connection is None:
            raise nats.errors.NoRespondersError
        if self.refusing:
            return Reply(b"", {ERROR_HEADER: NOT_CONNECTED})
        if subject.endswith(".plan"):
            self.plans.append(heating_pb2.HeatingPlan.FromString(payload))
            self.order.append("plan")
        else:
            self.written.append(adapter_pb2.Command.FromString(payload))
            self.order.append("command")
        return Reply(self.connection.encode())


@pytest.fixture
def world() -> DeviceWorld:
    return device_world()


def dispatcher(world: DeviceWorld, broker: FakeBroker) -> DeviceDispatcher:
    return DeviceDispatcher(
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


# Heating plans, in order with the commands.


def change_desired(
    world: DeviceWorld, home_owner: Caller, device: uuid.UUID, version: int, **fields: object
) -> Awaitable[object]:
    request = device_pb2.UpdateDesiredHeatingRequest(
        device_id=str(device),
        version=version,
        **fields,  # type: ignore[arg-type]
    )
    return world.heating.update(home_owner, request)


async def test_a_connected_heater_gets_its_plan_once_per_stream_and_version(
    world: DeviceWorld,
) -> None:
    home, device = await a_heater(world)
    broker = FakeBroker()
    connect(world, device, broker, "stream-1")
    deliveries = dispatcher(world, broker)
    await deliveries.deliver(device)
    assert [plan.version for plan in broker.plans] == [1]
    await deliveries.deliver(device)
    assert len(broker.plans) == 1
    world.clock.advance(seconds=1)
    await change_desired(world, home.owner, device, 1, target_celsius=22)
    await deliveries.deliver(device)
    assert [plan.version for plan in broker.plans] == [1, 2]
    # Not applied for longer than the resend time: written again.
    world.clock.advance(seconds=31)
    await deliveries.deliver(device)
    assert [plan.version for plan in broker.plans] == [1, 2, 2]
    # A new stream gets it at once.
    connect(world, device, broker, "stream-2")
    await deliveries.deliver(device)
    assert [plan.version for plan in broker.plans] == [1, 2, 2, 2]


async def test_commands_and_the_plan_go_out_in_the_order_they_were_made(
    world: DeviceWorld,
) -> None:
    home, device = await a_heater(world)
    await send(world, home.owner, set_target(device, 25))
    world.clock.advance(seconds=1)
    # A newer plan than the command: written after it, so it ends the command's override.
    await change_desired(world, home.owner, device, 1, mode=heating_pb2.AUTO)
    world.clock.advance(seconds=1)
    await send(world, home.owner, switch(device, device_pb2.TURN_OFF))
    broker = FakeBroker()
    connect(world, device, broker, "stream-1")
    await dispatcher(world, broker).deliver(device)
    assert broker.order == ["command", "plan", "command"]


async def test_a_sensor_gets_no_plan(world: DeviceWorld) -> None:
    home = await projected_home(world)
    sensor = await world.handlers.register(home.owner, str(home.room), "SENSOR", "Thermometer")
    broker = FakeBroker()
    connect(world, sensor.device.id, broker, "stream-1")
    await dispatcher(world, broker).deliver(sensor.device.id)
    assert broker.plans == []
