"""Device's side of the device loop on real PostgreSQL and NATS: commands
stored first and delivered in order, exactly once as the device sees it, to
whichever replica holds the stream; status from the adapter's events. The
adapter is a stand-in here (tests/integration/adapter_standin.py)."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import grpc
import pytest
from warmhouse.device.v1 import device_pb2
from warmhouse.device_adapter.v1 import device_adapter_pb2 as adapter_pb2

from services.runtime.config import RuntimeSettings
from tests.accounts import refused
from tests.integration.adapter_standin import Replica, replica
from tests.integration.households import Household
from tests.integration.mesh import Mesh
from tests.integration.test_device_service import device_events, device_id_in
from tests.polling import eventually

if TYPE_CHECKING:
    from warmhouse.device.v1.device_pb2_grpc import DeviceServiceAsyncStub

Code = grpc.StatusCode
# Longer than the dispatcher's sweep: anything it would deliver, it has.
SWEEP_WAIT = 2.5


@pytest.fixture
async def standin(runtime_settings: RuntimeSettings) -> AsyncIterator[Replica]:
    async with replica(runtime_settings.nats_url) as held:
        yield held


async def send(
    devices: "DeviceServiceAsyncStub",
    household: Household,
    device_id: str,
    celsius: float,
    **fields: object,
) -> str:
    request = device_pb2.SendCommandRequest(
        device_id=device_id,
        kind=device_pb2.SET_TARGET_TEMPERATURE,
        target_temperature_celsius=celsius,
        **fields,  # type: ignore[arg-type]
    )
    reply = await devices.SendCommand(request, metadata=household.owner.auth)
    assert reply.status == device_pb2.QUEUED
    return reply.command_id


async def command(
    devices: "DeviceServiceAsyncStub", household: Household, device_id: str, command_id: str
) -> device_pb2.Command:
    request = device_pb2.GetCommandRequest(device_id=device_id, command_id=command_id)
    return (await devices.GetCommand(request, metadata=household.guest.auth)).command


async def status_of(
    devices: "DeviceServiceAsyncStub", household: Household, device_id: str
) -> device_pb2.DeviceStatus.ValueType:
    request = device_pb2.GetDeviceRequest(device_id=device_id)
    return (await devices.GetDevice(request, metadata=household.guest.auth)).device.status


async def _final(
    devices: "DeviceServiceAsyncStub",
    household: Household,
    device_id: str,
    command_id: str,
    within: float = 10.0,
) -> device_pb2.Command:
    """The command once it has reached a final status."""

    async def final() -> device_pb2.Command | None:
        found = await command(devices, household, device_id, command_id)
        return None if found.status in (device_pb2.QUEUED, device_pb2.SENT) else found

    found = await eventually(final, within=within, what="a final status")
    assert found is not None
    return found


async def _statuses(
    devices: "DeviceServiceAsyncStub", household: Household, device_id: str, ids: list[str]
) -> list[device_pb2.CommandStatus.ValueType]:
    return [(await command(devices, household, device_id, c)).status for c in ids]


async def test_an_offline_device_keeps_its_commands_queued_then_gets_them_in_order(
    devices: "DeviceServiceAsyncStub", household: Household, standin: Replica, mesh: Mesh
) -> None:
    device_id = await device_id_in(devices, household)
    sent = [await send(devices, household, device_id, celsius) for celsius in (19, 20, 21)]
    await asyncio.sleep(SWEEP_WAIT)
    queued = await _statuses(devices, household, device_id, sent)
    assert queued == [device_pb2.QUEUED] * 3
    connection = await standin.connect(device_id)
    await eventually(lambda: len(standin.written.get(device_id, [])) == 3, what="delivery")
    written = standin.written[device_id]
    assert [c.command_id for c in written] == sent
    assert [c.target_temperature_celsius for c in written] == [19, 20, 21]
    assert all(c.HasField("expire_time") for c in written)

    async def all_sent() -> bool:
        statuses = await _statuses(devices, household, device_id, sent)
        return statuses == [device_pb2.SENT] * 3

    await eventually(all_sent, what="SENT")
    jetstream = mesh.device.runtime.jetstream
    sent_events = await device_events(jetstream, device_pb2.DeviceCommandSent, device_id)
    assert {event.connection_id for event in sent_events} == {connection}
    await standin.answer(device_id, sent[0], ok=True)
    await standin.answer(device_id, sent[1], ok=False, message="valve\x00stuck")
    await standin.answer(device_id, sent[0], ok=False)  # a repeat changes nothing
    first = await _final(devices, household, device_id, sent[0])
    second = await _final(devices, household, device_id, sent[1])
    assert first.status == device_pb2.ACKNOWLEDGED
    assert (second.status, second.message) == (device_pb2.REJECTED, "valve stuck")
    assert (await command(devices, household, device_id, sent[2])).status == device_pb2.SENT
    await asyncio.sleep(SWEEP_WAIT)
    assert len(standin.written[device_id]) == 3, "written once per stream"
    completed = await device_events(jetstream, device_pb2.DeviceCommandCompleted, device_id)
    assert sorted(event.status for event in completed) == [
        device_pb2.ACKNOWLEDGED,
        device_pb2.REJECTED,
    ]


async def test_a_new_stream_gets_again_what_the_old_one_left_unanswered(
    devices: "DeviceServiceAsyncStub", household: Household, standin: Replica, mesh: Mesh
) -> None:
    device_id = await device_id_in(devices, household)
    await standin.connect(device_id)
    unanswered = await send(devices, household, device_id, 22)
    await eventually(lambda: len(standin.written.get(device_id, [])) == 1, what="delivery")
    # The replica dies without a word; the device comes back through another.
    await standin.drop(device_id, announce=False)
    async with replica(mesh.device.runtime.settings.nats_url) as other:
        await other.connect(device_id)
        await eventually(lambda: len(other.written.get(device_id, [])) == 1, what="redelivery")
        assert other.written[device_id][0].command_id == unanswered
        await other.answer(device_id, unanswered, ok=True)
        done = await _final(devices, household, device_id, unanswered)
    assert done.status == device_pb2.ACKNOWLEDGED
    assert len(standin.written[device_id]) == 1, "nothing went to the dead replica again"


async def test_a_command_past_its_deadline_expires_and_is_never_delivered(
    devices: "DeviceServiceAsyncStub", household: Household, standin: Replica
) -> None:
    device_id = await device_id_in(devices, household)
    short = await send(devices, household, device_id, 23, deadline_seconds=1)
    expired = await _final(devices, household, device_id, short)
    assert (expired.status, expired.message) == (
        device_pb2.EXPIRED,
        "not delivered before its deadline",
    )
    await standin.connect(device_id)
    await asyncio.sleep(SWEEP_WAIT)
    assert standin.written.get(device_id, []) == []


async def test_the_same_key_twenty_times_at_once_stores_one_command(
    devices: "DeviceServiceAsyncStub", household: Household
) -> None:
    device_id = await device_id_in(devices, household)
    key = str(uuid.uuid4())
    request = device_pb2.SendCommandRequest(
        device_id=device_id, kind=device_pb2.TURN_OFF, request_id=key
    )
    replies = await asyncio.gather(
        *(devices.SendCommand(request, metadata=household.owner.auth) for _ in range(20))
    )
    assert len({reply.command_id for reply in replies}) == 1
    listing = await devices.ListCommands(
        device_pb2.ListCommandsRequest(device_id=device_id), metadata=household.guest.auth
    )
    assert [c.command_id for c in listing.commands] == [replies[0].command_id]
    assert listing.commands[0].request_id == key
    other = device_pb2.SendCommandRequest(
        device_id=device_id, kind=device_pb2.TURN_ON, request_id=key
    )
    call = devices.SendCommand(other, metadata=household.owner.auth)
    assert await refused(call, Code.ABORTED) == "IDEMPOTENCY_KEY_REUSED"


async def test_a_device_is_online_while_its_stream_lives_and_offline_after(
    devices: "DeviceServiceAsyncStub", household: Household, standin: Replica
) -> None:
    device_id = await device_id_in(devices, household)
    await standin.connect(device_id)
    await eventually(
        lambda: _is(devices, household, device_id, device_pb2.ONLINE), within=2, what="ONLINE"
    )
    await standin.drop(device_id, adapter_pb2.HEARTBEAT_TIMEOUT)
    await eventually(lambda: _is(devices, household, device_id, device_pb2.OFFLINE), what="OFFLINE")
    logs = await devices.ListDeviceLogs(
        device_pb2.ListDeviceLogsRequest(device_id=device_id, kind=device_pb2.STATUS_CHANGED),
        metadata=household.guest.auth,
    )
    assert [entry.event for entry in logs.device_logs] == [
        "status ONLINE -> OFFLINE (HEARTBEAT_TIMEOUT)",
        "status OFFLINE -> ONLINE",
    ]


async def test_the_end_of_a_replaced_or_older_stream_changes_nothing(
    devices: "DeviceServiceAsyncStub", household: Household, standin: Replica, mesh: Mesh
) -> None:
    device_id = await device_id_in(devices, household)
    await standin.connect(device_id)
    async with replica(mesh.device.runtime.settings.nats_url) as newer:
        await newer.connect(device_id)
        await standin.drop(device_id, adapter_pb2.REPLACED)
        await eventually(
            lambda: _is(devices, household, device_id, device_pb2.ONLINE), what="ONLINE"
        )
        await asyncio.sleep(1.0)
        assert await _is(devices, household, device_id, device_pb2.ONLINE)
        await newer.drop(device_id)
        await eventually(
            lambda: _is(devices, household, device_id, device_pb2.OFFLINE), what="OFFLINE"
        )


async def test_the_late_end_of_an_older_stream_leaves_the_newer_one_in_charge(
    devices: "DeviceServiceAsyncStub", household: Household, standin: Replica, mesh: Mesh
) -> None:
    device_id = await device_id_in(devices, household)
    await standin.connect(device_id)
    await eventually(lambda: _is(devices, household, device_id, device_pb2.ONLINE), what="ONLINE")
    async with replica(mesh.device.runtime.settings.nats_url) as newer:
        # The device moved on (its adapter stopping); the old stream's end is
        # stamped after the new stream opened.
        await newer.connect(device_id)
        await asyncio.sleep(0.5)
        await standin.drop(device_id, adapter_pb2.ADAPTER_SHUTDOWN)
        command_id = await send(devices, household, device_id, 21)
        await eventually(lambda: len(newer.written.get(device_id, [])) == 1, what="delivery")
        assert newer.written[device_id][0].command_id == command_id
        assert await _is(devices, household, device_id, device_pb2.ONLINE)


async def test_a_newer_streams_late_connected_event_still_brings_the_device_back(
    devices: "DeviceServiceAsyncStub", household: Household, standin: Replica, mesh: Mesh
) -> None:
    device_id = await device_id_in(devices, household)
    await standin.connect(device_id)
    await eventually(lambda: _is(devices, household, device_id, device_pb2.ONLINE), what="ONLINE")
    async with replica(mesh.device.runtime.settings.nats_url) as newer:
        await newer.connect(device_id, announce=False)
        await asyncio.sleep(0.2)
        # The old stream's end (stamped after the new one opened) is handled
        # first; the new stream's DeviceConnected only then.
        await standin.drop(device_id, adapter_pb2.ADAPTER_SHUTDOWN)
        await eventually(
            lambda: _is(devices, household, device_id, device_pb2.OFFLINE), what="OFFLINE"
        )
        await newer.announce(device_id)
        await eventually(
            lambda: _is(devices, household, device_id, device_pb2.ONLINE), what="ONLINE again"
        )
        command_id = await send(devices, household, device_id, 22)
        await eventually(lambda: len(newer.written.get(device_id, [])) == 1, what="delivery")
        assert newer.written[device_id][0].command_id == command_id


async def test_a_retired_device_a_replica_still_reports_is_told_again_to_go(
    devices: "DeviceServiceAsyncStub", household: Household, standin: Replica
) -> None:
    device_id = await device_id_in(devices, household)
    await standin.connect(device_id)
    await eventually(lambda: _is(devices, household, device_id, device_pb2.ONLINE), what="ONLINE")
    retire = device_pb2.DeleteDeviceRequest(device_id=device_id)
    await devices.DeleteDevice(retire, metadata=household.owner.auth)
    await eventually(lambda: standin.revoked == [device_id], what="the notice at retirement")
    # Say the replica missed it and still holds the stream: its next report
    # brings the notice again.
    await standin.report_presence(lease_seconds=15)
    await eventually(lambda: standin.revoked == [device_id] * 2, what="the notice again")


async def test_a_stream_opened_with_a_secret_since_replaced_is_told_again_to_go(
    devices: "DeviceServiceAsyncStub", household: Household, standin: Replica
) -> None:
    device_id = await device_id_in(devices, household)
    await standin.connect(device_id)
    await eventually(lambda: _is(devices, household, device_id, device_pb2.ONLINE), what="ONLINE")
    rotate = device_pb2.RotateDeviceSecretRequest(device_id=device_id)
    await devices.RotateDeviceSecret(rotate, metadata=household.owner.auth)
    await eventually(lambda: standin.revoked == [device_id], what="the notice at rotation")
    await standin.report_presence(lease_seconds=15)
    await eventually(lambda: standin.revoked == [device_id] * 2, what="the notice again")
    # A stream opened after the rotation is left alone.
    await standin.drop(device_id)
    await standin.connect(device_id)
    await standin.report_presence(lease_seconds=15)
    await asyncio.sleep(1.0)
    assert standin.revoked == [device_id] * 2


async def test_a_device_no_replica_reports_goes_offline_when_its_lease_runs_out(
    devices: "DeviceServiceAsyncStub", household: Household, standin: Replica
) -> None:
    device_id = await device_id_in(devices, household)
    await standin.connect(device_id)
    await eventually(lambda: _is(devices, household, device_id, device_pb2.ONLINE), what="ONLINE")
    await standin.report_presence(lease_seconds=1)
    # Killed: no DeviceDisconnected, no more reports.
    await standin.drop(device_id, announce=False)
    await eventually(
        lambda: _is(devices, household, device_id, device_pb2.OFFLINE), within=5, what="OFFLINE"
    )


async def _is(
    devices: "DeviceServiceAsyncStub",
    household: Household,
    device_id: str,
    expected: device_pb2.DeviceStatus.ValueType,
) -> bool:
    return await status_of(devices, household, device_id) == expected
