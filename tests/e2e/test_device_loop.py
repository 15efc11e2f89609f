"""The device loop end to end: simulated hardware (a real Connect client)
against adapter processes, Device, NATS, PostgreSQL and Envoy, with the
settings the platform ships with."""

import asyncio
import uuid

import grpc
import nats
import pytest
from warmhouse.device_adapter.v1 import device_adapter_pb2 as adapter_pb2
from warmhouse.device_adapter.v1 import device_adapter_pb2_grpc as adapter_pb2_grpc

from services.devstack.stack import Stack
from services.runtime.device_links import ADAPTER_EVENT_BYTES, ADAPTER_EVENT_RETENTION
from tests.e2e.device_loop import (
    OFFLINE_BOUND_SECONDS,
    ONLINE_BOUND_SECONDS,
    Hardware,
    adapter_address,
    adapter_replica,
    replica_address,
    running,
    targets,
    within,
)
from tests.e2e.homes import Home, ok
from tests.e2e.rest import Rest
from tests.protobuf_padding import unknown_field

# Devices report often here, so tests need not wait five seconds for a sample.
FAST = 0.2


def is_status(hardware: Hardware, status: str):  # type: ignore[no-untyped-def]
    async def probe() -> bool:
        return await hardware.status() == status

    return probe


def has_status(hardware: Hardware, command_id: str, *statuses: str):  # type: ignore[no-untyped-def]
    async def probe() -> bool:
        return (await hardware.command(command_id))["status"] in statuses

    return probe


async def test_a_device_connects_reports_and_obeys(api: Rest, home: Home, stack: Stack) -> None:
    hardware = Hardware(api, home)
    async with running(hardware.simulated(adapter_address(stack), telemetry_interval=FAST)) as sim:
        await sim.wait_connected(10)
        await within(ONLINE_BOUND_SECONDS, is_status(hardware, "ONLINE"), "ONLINE")

        async def has_reading() -> bool:
            return "lastReading" in await hardware.device()

        await within(10, has_reading, "a reading")
        reading = (await hardware.device())["lastReading"]
        assert {"temperatureCelsius", "heaterOn", "sampleTime"} <= set(reading)
        command_id = await hardware.send(
            {"kind": "SET_TARGET_TEMPERATURE", "targetTemperatureCelsius": 21.5},
            token=home.guest.token,
        )
        await within(10, has_status(hardware, command_id, "ACKNOWLEDGED"), "ACKNOWLEDGED")
        assert sim.target_celsius == 21.5
        assert sim.executed == [command_id]
        history = await asyncio.to_thread(hardware.get, "/readings")
        assert history["points"], history
        assert all(point["sampleCount"] == "1" for point in history["points"])
    lines = await hardware.logs("COMMAND_UPDATED")
    assert [line.rsplit(": ", 1)[1] for line in lines] == ["ACKNOWLEDGED", "SENT", "QUEUED"]


async def test_samples_sent_several_to_a_frame_are_each_kept(
    api: Rest, home: Home, stack: Stack
) -> None:
    hardware = Hardware(api, home, "SENSOR")
    simulated = hardware.simulated(
        adapter_address(stack), telemetry_interval=0.05, samples_per_frame=5
    )
    async with running(simulated) as sim:
        await sim.wait_connected(10)
        await within(10, lambda: sim.samples_sent >= 10, "two frames sent")

        async def kept() -> bool:
            history = await asyncio.to_thread(hardware.get, "/readings")
            return len(history.get("points", [])) >= 10

        await within(10, kept, "ten samples kept")
    history = await asyncio.to_thread(hardware.get, "/readings")
    times = [point["time"] for point in history["points"]]
    assert times == sorted(times)
    assert len(set(times)) == len(times), "each sample its own time"


async def test_a_wrong_secret_is_refused_and_a_retired_device_is_cut_off(
    api: Rest, home: Home, stack: Stack
) -> None:
    hardware = Hardware(api, home)
    async with running(hardware.simulated(adapter_address(stack), secret="x" * 43)) as impostor:
        await within(10, lambda: impostor.gave_up, "refusal")
    assert impostor.last_disconnect_code == grpc.StatusCode.UNAUTHENTICATED
    assert impostor.connections == 0
    async with running(hardware.simulated(adapter_address(stack))) as sim:
        await sim.wait_connected(10)
        retire = await asyncio.to_thread(
            api.call, "DELETE", f"/devices/{hardware.device_id}", None, home.owner.token
        )
        ok(retire)
        await within(10, lambda: sim.gave_up, "the retired device cut off")
        assert sim.last_disconnect_code == grpc.StatusCode.UNAUTHENTICATED


async def test_a_silent_device_is_offline_within_the_bound_and_online_again_fast(
    api: Rest, home: Home, stack: Stack
) -> None:
    hardware = Hardware(api, home)
    async with running(hardware.simulated(adapter_address(stack))) as sim:
        await sim.wait_connected(10)
        await within(ONLINE_BOUND_SECONDS, is_status(hardware, "ONLINE"), "ONLINE")
        sim.go_silent()
        took = await within(OFFLINE_BOUND_SECONDS, is_status(hardware, "OFFLINE"), "OFFLINE")
        print(f"silent device shown OFFLINE after {took:.1f}s")
        sim.connected.clear()
        sim.resume_talking()
        await sim.wait_connected(10)
        await within(ONLINE_BOUND_SECONDS, is_status(hardware, "ONLINE"), "ONLINE again")


async def test_the_devices_of_a_killed_replica_are_offline_within_the_bound(
    api: Rest, home: Home, stack: Stack
) -> None:
    hardware = Hardware(api, home)
    with adapter_replica(stack, "adapter-killed") as replica:
        async with running(hardware.simulated(replica_address(replica))) as sim:
            await sim.wait_connected(10)
            await within(ONLINE_BOUND_SECONDS, is_status(hardware, "ONLINE"), "ONLINE")
            replica.process.kill()
            took = await within(OFFLINE_BOUND_SECONDS, is_status(hardware, "OFFLINE"), "OFFLINE")
            print(f"devices of a killed replica shown OFFLINE after {took:.1f}s")


async def test_an_answer_lost_with_a_killed_replica_is_asked_again_and_the_device_acts_once(
    api: Rest, home: Home, stack: Stack
) -> None:
    hardware = Hardware(api, home)
    with adapter_replica(stack, "adapter-doomed") as doomed:
        both = targets(replica_address(doomed), adapter_address(stack))
        async with running(hardware.simulated(both)) as sim:
            await sim.wait_connected(10)
            sim.hold_answers(True)
            command_id = await hardware.send({"kind": "TURN_OFF"})
            await within(10, has_status(hardware, command_id, "SENT"), "SENT")
            await within(5, lambda: sim.executed == [command_id], "carried out")
            doomed.process.kill()
            sim.hold_answers(False)
            await within(30, has_status(hardware, command_id, "ACKNOWLEDGED"), "ACKNOWLEDGED")
            assert sim.executed == [command_id], "carried out once"
            assert sim.connections == 2
            assert sim.enabled is False
    lines = await hardware.logs("COMMAND_UPDATED")
    assert any("again, on a new connection" in line for line in lines), lines


async def test_an_offline_device_gets_its_command_on_connecting_unless_it_expired(
    api: Rest, home: Home, stack: Stack
) -> None:
    hardware = Hardware(api, home)
    lasting = await hardware.send(
        {"kind": "SET_TARGET_TEMPERATURE", "targetTemperatureCelsius": 19}
    )
    expiring = await hardware.send(
        {"kind": "SET_TARGET_TEMPERATURE", "targetTemperatureCelsius": 25, "deadlineSeconds": 1}
    )
    await within(10, has_status(hardware, expiring, "EXPIRED"), "EXPIRED")
    assert (await hardware.command(lasting))["status"] == "QUEUED"
    async with running(hardware.simulated(adapter_address(stack))) as sim:
        await within(10, has_status(hardware, lasting, "ACKNOWLEDGED"), "ACKNOWLEDGED")
        await asyncio.sleep(2.5)
        assert sim.executed == [lasting]
        assert sim.target_celsius == 19


async def test_a_gas_alarm_is_raised_once_per_episode_and_cleared(
    api: Rest, home: Home, stack: Stack
) -> None:
    hardware = Hardware(api, home, "SENSOR")
    async with running(hardware.simulated(adapter_address(stack), telemetry_interval=0.05)) as sim:
        await sim.wait_connected(10)
        for episode in (1, 2):
            sim.gas_alarm(True)
            await asyncio.sleep(0.6)  # a dozen samples in alarm
            sim.gas_alarm(False)

            async def cleared(expected: int = episode) -> bool:
                return len(await hardware.logs("ALARM_CLEARED")) == expected

            await within(10, cleared, f"episode {episode} cleared")
    raised = await hardware.logs("ALARM_RAISED")
    assert raised == ["alarm: GAS_LEAK"] * 2, raised


async def test_one_idempotency_key_sent_twenty_times_at_once_makes_one_command(
    api: Rest, home: Home
) -> None:
    hardware = Hardware(api, home)
    key = str(uuid.uuid4())
    body = {"kind": "TURN_ON"}

    def post() -> str:
        reply = api.call(
            "POST",
            f"/devices/{hardware.device_id}/command",
            body,
            home.owner.token,
            headers={"Idempotency-Key": key},
        )
        return str(ok(reply)["commandId"])

    ids = await asyncio.gather(*(asyncio.to_thread(post) for _ in range(20)))
    assert len(set(ids)) == 1
    listing = await asyncio.to_thread(hardware.get, "/commands")
    assert [c["commandId"] for c in listing["commands"]] == [ids[0]]


async def test_a_second_stream_replaces_the_first_across_replicas(
    api: Rest, home: Home, stack: Stack
) -> None:
    hardware = Hardware(api, home)
    with adapter_replica(stack, "adapter-second") as second:
        async with running(hardware.simulated(adapter_address(stack))) as first:
            await first.wait_connected(10)
            # The first is told to back off for long, so the two do not take turns.
            first.go_silent()
            async with running(hardware.simulated(replica_address(second))) as newer:
                await newer.wait_connected(10)
                await within(5, lambda: not first.connected.is_set(), "the first ended")
                # The newer stream is the one commands reach.
                command_id = await hardware.send({"kind": "TURN_OFF"})
                await within(10, has_status(hardware, command_id, "ACKNOWLEDGED"), "ACKNOWLEDGED")
                assert newer.executed == [command_id]
                assert first.executed == []
                assert newer.connected.is_set()
                assert await hardware.status() == "ONLINE"


async def test_repeated_failures_from_one_peer_are_throttled(
    api: Rest, home: Home, stack: Stack
) -> None:
    hardware = Hardware(api, home)
    limit = {"WARMHOUSE_DEVICE_ADAPTER_AUTH_FAILURES_PER_MINUTE": "3"}
    with adapter_replica(stack, "adapter-throttled", **limit) as strict:
        codes = []
        for _ in range(5):
            async with running(
                hardware.simulated(replica_address(strict), secret="y" * 43)
            ) as impostor:
                await within(10, lambda: impostor.last_disconnect_code is not None, "refusal")
                codes.append(impostor.last_disconnect_code)
        assert codes[:3] == [grpc.StatusCode.UNAUTHENTICATED] * 3
        assert set(codes[3:]) == {grpc.StatusCode.RESOURCE_EXHAUSTED}
        # The right secret from the throttled peer waits too.
        async with running(hardware.simulated(replica_address(strict))) as sim:
            await within(10, lambda: sim.last_disconnect_code is not None, "the answer to it")
            assert sim.last_disconnect_code == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert sim.connections == 0


async def test_a_queued_command_survives_a_restart_of_device_service(
    api: Rest, home: Home, stack: Stack
) -> None:
    hardware = Hardware(api, home)
    command_id = await hardware.send({"kind": "TURN_OFF"})
    device_service = stack.services["device"]
    await asyncio.to_thread(device_service.stop)
    try:
        # Meanwhile the device comes: the adapter cannot check its secret
        # (UNAVAILABLE), so it tries again, as hardware does.
        async with running(hardware.simulated(adapter_address(stack))) as sim:
            await within(10, lambda: sim.last_disconnect_code is not None, "the adapter's answer")
            assert sim.last_disconnect_code == grpc.StatusCode.UNAVAILABLE
            assert sim.connections == 0
            await asyncio.to_thread(device_service.start)
            await within(20, has_status(hardware, command_id, "ACKNOWLEDGED"), "ACKNOWLEDGED")
            assert sim.executed == [command_id]
            assert sim.enabled is False
    finally:
        if not device_service.process.running:
            await asyncio.to_thread(device_service.start)


# What one misbehaving device can no longer do to others.


async def test_a_padded_frame_ends_only_its_own_stream(api: Rest, home: Home, stack: Stack) -> None:
    # A SENSOR: nothing (such as a heating plan) comes down its stream before the answer.
    padder, neighbour = Hardware(api, home, "SENSOR"), Hardware(api, home)
    async with running(neighbour.simulated(adapter_address(stack), telemetry_interval=FAST)) as sim:
        await sim.wait_connected(10)

        async def reading_time() -> str | None:
            reading = (await neighbour.device()).get("lastReading")
            return None if reading is None else str(reading["sampleTime"])

        await within(10, reading_time, "a reading of the neighbour")
        async with grpc.aio.insecure_channel(adapter_address(stack)) as channel:
            call = adapter_pb2_grpc.DeviceAdapterServiceStub(channel).Connect()
            hello = adapter_pb2.Hello(device_id=padder.device_id, device_secret=padder.secret)
            await call.write(adapter_pb2.ConnectRequest(hello=hello))
            welcome = await call.read()
            assert isinstance(welcome, adapter_pb2.ConnectResponse)
            assert welcome.WhichOneof("frame") == "welcome"
            clean = adapter_pb2.Telemetry(temperature_celsius=21.0).SerializeToString()
            padded = adapter_pb2.Telemetry.FromString(clean + unknown_field(900_000))
            frame = adapter_pb2.ConnectRequest(telemetry=padded)
            assert frame.ByteSize() > 900_000
            with pytest.raises(grpc.aio.AioRpcError) as ended:  # noqa: PT012 - write, then read
                await call.write(frame)
                await call.read()
            assert ended.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        first = await reading_time()

        async def newer_reading() -> bool:
            return await reading_time() != first

        await within(10, newer_reading, "a newer reading of the neighbour")
        assert sim.connections == 1
    assert "lastReading" not in await padder.device()


async def test_the_adapters_events_stay_a_day_and_are_capped_in_bytes(stack: Stack) -> None:
    client = await nats.connect(stack.nats.url)
    try:
        info = await client.jetstream().stream_info("WARMHOUSE_DEVICE_ADAPTER")
    finally:
        await client.close()
    assert info.config.max_age == ADAPTER_EVENT_RETENTION.total_seconds()
    assert info.config.max_bytes == ADAPTER_EVENT_BYTES
