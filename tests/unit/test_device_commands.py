"""Sending, reading and expiring commands, on in-memory repositories."""

import math
import uuid
from dataclasses import replace

import pytest
from warmhouse.device.v1 import device_pb2

from services.device import command_rules
from services.device.commands import expire_lapsed
from services.runtime.auth import Caller
from services.runtime.errors import Conflict, InvalidArgument, NotFound, PermissionDenied, Throttled
from services.runtime.idempotency import IdempotencyKey
from tests.fakes import raises
from tests.unit.device_fakes import DeviceWorld, device_world
from tests.unit.test_device_handlers import Home, events, person, projected_home, register

SEND = "/warmhouse.device.v1.DeviceService/SendCommand"


@pytest.fixture
def world() -> DeviceWorld:
    return device_world()


def set_target(
    device_id: uuid.UUID, celsius: float, **fields: object
) -> device_pb2.SendCommandRequest:
    return device_pb2.SendCommandRequest(
        device_id=str(device_id),
        kind=device_pb2.SET_TARGET_TEMPERATURE,
        target_temperature_celsius=celsius,
        **fields,  # type: ignore[arg-type]
    )


def switch(
    device_id: uuid.UUID, kind: device_pb2.CommandKind.ValueType
) -> device_pb2.SendCommandRequest:
    return device_pb2.SendCommandRequest(device_id=str(device_id), kind=kind)


async def send(
    world: DeviceWorld,
    caller: Caller,
    request: device_pb2.SendCommandRequest,
    key: str | None = None,
) -> device_pb2.SendCommandResponse:
    kind = device_pb2.CommandKind.Name(request.kind)
    idempotency_key = IdempotencyKey(caller.user_id, key, SEND) if key else None
    return await world.commands.send(caller, idempotency_key, request, kind)


async def a_heater(world: DeviceWorld) -> tuple[Home, uuid.UUID]:
    home = await projected_home(world)
    registered = await register(world, home.owner, home.room)
    return home, registered.device.id


async def test_a_command_is_stored_queued_with_a_deadline_and_delivery_starts(
    world: DeviceWorld,
) -> None:
    home, device = await a_heater(world)
    reply = await send(world, home.owner, set_target(device, 21.5))
    assert reply.status == device_pb2.QUEUED
    stored = await world.commands.get(home.guest, str(device), reply.command_id)
    assert (stored.status, stored.target_temperature) == (command_rules.QUEUED, 21.5)
    assert stored.expire_at - stored.created_at == command_rules.DEFAULT_DEADLINE
    assert stored.requester_id == uuid.UUID(home.owner.user_id)
    assert world.woken == [device]
    requested = events(world, device_pb2.DeviceCommandRequested)
    assert [event.command_id for event in requested] == [reply.command_id]
    assert "SET_TARGET_TEMPERATURE 21.5: QUEUED" in world.logs.lines(device)[-1]


async def test_a_deadline_can_be_set_per_command(world: DeviceWorld) -> None:
    home, device = await a_heater(world)
    reply = await send(world, home.owner, set_target(device, 20, deadline_seconds=30))
    stored = await world.commands.get(home.owner, str(device), reply.command_id)
    assert (stored.expire_at - stored.created_at).total_seconds() == 30


@pytest.mark.parametrize("seconds", [0, -5, 604801])
async def test_a_deadline_out_of_range_is_refused(world: DeviceWorld, seconds: int) -> None:
    home, device = await a_heater(world)
    error = await raises(
        send(world, home.owner, set_target(device, 20, deadline_seconds=seconds)), InvalidArgument
    )
    assert error.reason == "INVALID_DEADLINE"


@pytest.mark.parametrize("celsius", [4.9, 30.1, math.nan, math.inf, -math.inf])
async def test_a_target_outside_the_heating_range_is_refused(
    world: DeviceWorld, celsius: float
) -> None:
    home, device = await a_heater(world)
    error = await raises(send(world, home.owner, set_target(device, celsius)), InvalidArgument)
    assert error.reason == "INVALID_TARGET_TEMPERATURE"
    assert events(world, device_pb2.DeviceCommandRequested) == []


async def test_a_target_goes_only_with_set_target_temperature(world: DeviceWorld) -> None:
    home, device = await a_heater(world)
    request = switch(device, device_pb2.TURN_ON)
    request.target_temperature_celsius = 20
    error = await raises(send(world, home.owner, request), InvalidArgument)
    assert error.reason == "UNEXPECTED_TARGET_TEMPERATURE"
    missing = await raises(
        send(world, home.owner, switch(device, device_pb2.SET_TARGET_TEMPERATURE)),
        InvalidArgument,
    )
    assert missing.reason == "INVALID_TARGET_TEMPERATURE"


async def test_an_unknown_kind_is_refused(world: DeviceWorld) -> None:
    home, device = await a_heater(world)
    error = await raises(
        world.commands.send(
            home.owner, None, switch(device, device_pb2.COMMAND_KIND_UNSPECIFIED), ""
        ),
        InvalidArgument,
    )
    assert error.reason == "INVALID_COMMAND_KIND"


async def test_a_guest_may_set_the_temperature_but_not_switch_the_device(
    world: DeviceWorld,
) -> None:
    home, device = await a_heater(world)
    await send(world, home.guest, set_target(device, 22))
    await raises(send(world, home.guest, switch(device, device_pb2.TURN_OFF)), PermissionDenied)
    await send(world, home.maintainer, switch(device, device_pb2.TURN_OFF))


async def test_a_stranger_is_told_the_device_does_not_exist(world: DeviceWorld) -> None:
    home, device = await a_heater(world)
    stranger = person()
    await raises(send(world, stranger, set_target(device, 22)), NotFound)
    reply = await send(world, home.owner, set_target(device, 22))
    await raises(world.commands.get(stranger, str(device), reply.command_id), NotFound)
    await raises(world.commands.list_commands(stranger, str(device), None, 0, ""), NotFound)


async def test_a_command_of_another_device_is_not_found(world: DeviceWorld) -> None:
    home, device = await a_heater(world)
    other = (await register(world, home.owner, home.id, "Other")).device.id
    reply = await send(world, home.owner, set_target(device, 22))
    error = await raises(world.commands.get(home.owner, str(other), reply.command_id), NotFound)
    assert error.reason == "COMMAND_NOT_FOUND"


async def test_the_same_key_gives_the_first_command_and_other_parameters_conflict(
    world: DeviceWorld,
) -> None:
    home, device = await a_heater(world)
    first = await send(world, home.owner, set_target(device, 21), key="k-1")
    again = await send(world, home.owner, set_target(device, 21), key="k-1")
    assert again == first
    assert len(events(world, device_pb2.DeviceCommandRequested)) == 1
    await raises(send(world, home.owner, set_target(device, 23), key="k-1"), Conflict)
    stored = await world.commands.get(home.owner, str(device), first.command_id)
    assert stored.request_id == "k-1"


async def test_commands_are_listed_newest_first_and_filtered_by_status(
    world: DeviceWorld,
) -> None:
    home, device = await a_heater(world)
    sent = []
    for celsius in (19, 20, 21):
        sent.append((await send(world, home.owner, set_target(device, celsius))).command_id)
        world.clock.advance(seconds=1)
    page, token = await world.commands.list_commands(home.guest, str(device), None, 2, "")
    assert [str(c.id) for c in page] == [sent[2], sent[1]]
    rest, last = await world.commands.list_commands(home.guest, str(device), None, 2, token)
    assert ([str(c.id) for c in rest], last) == ([sent[0]], "")
    none, _ = await world.commands.list_commands(
        home.guest, str(device), command_rules.ACKNOWLEDGED, 0, ""
    )
    assert none == []
    await raises(
        world.commands.list_commands(home.guest, str(device), "DONE", 0, ""), InvalidArgument
    )


async def test_open_commands_expire_at_their_deadline_and_say_why(world: DeviceWorld) -> None:
    home, device = await a_heater(world)
    queued = await send(world, home.owner, set_target(device, 21, deadline_seconds=5))
    sent = await send(world, home.owner, set_target(device, 22, deadline_seconds=5))
    later = await send(world, home.owner, set_target(device, 23, deadline_seconds=60))
    rows = world.uow.repos.commands.rows  # type: ignore[attr-defined]
    sent_id = uuid.UUID(sent.command_id)
    rows[sent_id] = replace(rows[sent_id], status=command_rules.SENT, sent_connection_id="c1")
    assert await expire_lapsed(world.uow, world.clock) == 0
    world.clock.advance(seconds=5)
    assert await expire_lapsed(world.uow, world.clock) == 2
    by_id = {str(c.id): c for c in rows.values()}
    assert by_id[queued.command_id].message == command_rules.NOT_DELIVERED
    assert by_id[sent.command_id].message == command_rules.NOT_ANSWERED
    assert by_id[later.command_id].status == command_rules.QUEUED
    completed = events(world, device_pb2.DeviceCommandCompleted)
    assert {event.status for event in completed} == {device_pb2.EXPIRED}
    assert await expire_lapsed(world.uow, world.clock) == 0


def test_a_device_message_is_one_bounded_printable_line() -> None:
    shown = command_rules.device_message("bad\x00value\n" + "x" * 600)
    assert shown.startswith("bad value ")
    assert len(shown) == command_rules.MAX_DEVICE_MESSAGE


async def test_a_device_holds_at_most_so_many_waiting_commands() -> None:
    world = device_world(open_commands_per_device=2)
    home, device = await a_heater(world)
    await send(world, home.guest, set_target(device, 20))
    await send(world, home.guest, set_target(device, 21))
    error = await raises(send(world, home.owner, set_target(device, 22)), Throttled)
    assert error.reason == "QUOTA_EXCEEDED"
    assert world.uow.repos.commands.held_devices[-1] == device  # type: ignore[attr-defined]
    # Answered or expired ones no longer wait.
    world.clock.advance(minutes=11)
    await expire_lapsed(world.uow, world.clock)
    await send(world, home.owner, set_target(device, 22))
