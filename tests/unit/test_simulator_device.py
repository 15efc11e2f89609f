"""The simulated device's side of DeviceAdapterService.Connect, against a fake adapter.

The fake is a real grpc.aio server on 127.0.0.1: it records every frame a
device sends, per stream, and lets a test send commands, end a stream, or
refuse the credential.
"""

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from warmhouse.device_adapter.v1.device_adapter_pb2 import (
    SET_TARGET_TEMPERATURE,
    TURN_OFF,
    TURN_ON,
    Command,
    CommandResult,
    ConnectRequest,
    ConnectResponse,
    GetConnectionRequest,
    GetConnectionResponse,
    Hello,
    SendCommandRequest,
    SendCommandResponse,
    Telemetry,
    Welcome,
)
from warmhouse.device_adapter.v1.device_adapter_pb2_grpc import (
    DeviceAdapterServiceServicer,
    add_DeviceAdapterServiceServicer_to_server,
)

from services.simulator import cli, commands
from services.simulator.device import DeviceType, SimulatedDevice
from services.simulator.fleet import DeviceSpec, Fault, Fleet
from services.simulator.thermal import Room
from tests.polling import eventually

HEARTBEAT_SECONDS = 1


@dataclass
class FakeStream:
    """One Connect call as the fake adapter saw it."""

    hello: Hello
    frames: list[ConnectRequest] = field(default_factory=list)
    outgoing: asyncio.Queue[ConnectResponse | None] = field(default_factory=asyncio.Queue)
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    def send(self, command: Command) -> None:
        self.outgoing.put_nowait(ConnectResponse(command=command))

    def end(self) -> None:
        """End the call with status OK, as an adapter shutting down would."""
        self.outgoing.put_nowait(None)

    def kinds(self) -> list[str]:
        return [str(frame.WhichOneof("frame")) for frame in self.frames]

    def results(self) -> list[CommandResult]:
        return [frame.command_result for frame in self.frames if frame.HasField("command_result")]

    def samples(self) -> list[Telemetry]:
        return [frame.telemetry for frame in self.frames if frame.HasField("telemetry")]

    def sample_frames(self) -> list[list[Telemetry]]:
        return [list(frame.samples.telemetry) for frame in self.frames if frame.HasField("samples")]

    async def take(self, requests: AsyncIterator[ConnectRequest]) -> None:
        try:
            async for frame in requests:
                self.frames.append(frame)
        finally:
            self.outgoing.put_nowait(None)


class FakeAdapter(DeviceAdapterServiceServicer):
    def __init__(self) -> None:
        self.address = ""
        self.streams: list[FakeStream] = []
        self.refuse = False

    async def Connect(
        self,
        request_iterator: AsyncIterator[ConnectRequest],
        context: grpc.aio.ServicerContext[ConnectRequest, ConnectResponse],
    ) -> AsyncIterator[ConnectResponse]:
        requests = aiter(request_iterator)
        first = await anext(requests)
        stream = FakeStream(first.hello)
        stream.frames.append(first)
        self.streams.append(stream)
        if self.refuse:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "unknown device or wrong secret")
        yield ConnectResponse(welcome=Welcome(heartbeat_interval_seconds=HEARTBEAT_SECONDS))
        reader = asyncio.create_task(stream.take(requests))
        try:
            while (response := await stream.outgoing.get()) is not None:
                yield response
        finally:
            reader.cancel()
            stream.closed.set()

    # The internal methods are the real adapter's business, not a device's.

    async def SendCommand(
        self,
        request: SendCommandRequest,
        context: grpc.aio.ServicerContext[SendCommandRequest, SendCommandResponse],
    ) -> SendCommandResponse:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not faked")

    async def GetConnection(
        self,
        request: GetConnectionRequest,
        context: grpc.aio.ServicerContext[GetConnectionRequest, GetConnectionResponse],
    ) -> GetConnectionResponse:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not faked")


@pytest.fixture
async def adapter() -> AsyncIterator[FakeAdapter]:
    fake = FakeAdapter()
    server = grpc.aio.server()
    add_DeviceAdapterServiceServicer_to_server(fake, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    fake.address = f"127.0.0.1:{port}"
    try:
        yield fake
    finally:
        await server.stop(None)


StartDevice = Callable[..., Awaitable[SimulatedDevice]]


@pytest.fixture
async def start_device(adapter: FakeAdapter) -> AsyncIterator[StartDevice]:
    """Starts devices against the fake adapter; stops them after the test."""
    started: list[SimulatedDevice] = []

    async def start(device_type: DeviceType = DeviceType.HEATER, **options: Any) -> SimulatedDevice:
        options.setdefault("telemetry_interval", 60.0)
        options.setdefault("backoff_cap", 0.5)
        device = SimulatedDevice(
            f"device-{len(started)}",
            "s3cret",
            device_type,
            Room("living"),
            adapter=adapter.address,
            **options,
        )
        started.append(device)
        await device.start()
        return device

    try:
        yield start
    finally:
        for device in started:
            await device.stop()


async def connected_stream(adapter: FakeAdapter, device: SimulatedDevice) -> FakeStream:
    await device.wait_connected(5)
    return adapter.streams[-1]


def command(
    command_id: str,
    kind: int = SET_TARGET_TEMPERATURE,
    target: float | None = 22.5,
    expire: datetime | None = None,
) -> Command:
    message = Command(command_id=command_id, kind=kind)  # type: ignore[arg-type]
    if target is not None and kind == SET_TARGET_TEMPERATURE:
        message.target_temperature_celsius = target
    if expire is not None:
        message.expire_time.FromDatetime(expire)
    return message


def answers(stream: FakeStream) -> list[tuple[str, bool, str]]:
    return [(result.command_id, result.ok, result.message) for result in stream.results()]


# The stream.


async def test_hello_comes_first_then_the_welcome_sets_the_heartbeat(
    adapter: FakeAdapter, start_device: StartDevice
) -> None:
    device = await start_device()
    stream = await connected_stream(adapter, device)

    assert stream.kinds()[0] == "hello"
    assert (stream.hello.device_id, stream.hello.device_secret) == ("device-0", "s3cret")
    assert stream.hello.firmware_version == "sim-1.0"
    assert device.connections == 1
    assert device.heartbeat_interval == HEARTBEAT_SECONDS


async def test_an_idle_device_sends_heartbeats(
    adapter: FakeAdapter, start_device: StartDevice
) -> None:
    device = await start_device(telemetry_interval=60.0)
    stream = await connected_stream(adapter, device)

    await eventually(lambda: stream.kinds().count("heartbeat") >= 2, within=6, what="heartbeats")

    # The heating status and one sample right after the Welcome, then nothing but heartbeats.
    assert stream.kinds()[:3] == ["hello", "heating_status", "telemetry"]
    assert set(stream.kinds()[3:]) == {"heartbeat"}


async def test_telemetry_goes_out_every_interval_stamped_with_real_time(
    adapter: FakeAdapter, start_device: StartDevice
) -> None:
    device = await start_device(telemetry_interval=0.1)
    stream = await connected_stream(adapter, device)

    await eventually(lambda: len(stream.samples()) >= 3, what="three samples")

    sample = stream.samples()[-1]
    age = datetime.now(UTC) - sample.sample_time.ToDatetime(tzinfo=UTC)
    assert timedelta(0) <= age < timedelta(minutes=1)
    assert sample.HasField("temperature_celsius")
    assert sample.HasField("power_watts")
    assert device.samples_sent >= 3


async def test_samples_can_go_several_to_a_frame_oldest_first(
    adapter: FakeAdapter, start_device: StartDevice
) -> None:
    device = await start_device(telemetry_interval=0.05, samples_per_frame=3)
    stream = await connected_stream(adapter, device)

    await eventually(lambda: len(stream.sample_frames()) >= 2, what="two frames of samples")

    frames = stream.sample_frames()
    assert {len(frame) for frame in frames} == {3}
    times = [sample.sample_time.ToNanoseconds() for sample in frames[0]]
    assert times == sorted(times)
    assert stream.samples() == []
    # Counted once written: some may still be on their way.
    assert device.samples_sent % 3 == 0
    assert device.samples_sent >= 3 * len(frames)


async def test_a_repeated_command_gets_the_cached_answer_and_runs_once(
    adapter: FakeAdapter, start_device: StartDevice
) -> None:
    device = await start_device()
    stream = await connected_stream(adapter, device)

    stream.send(command("c1", target=22.5))
    stream.send(command("c1", target=25.0))

    await eventually(lambda: len(stream.results()) == 2, what="two answers")
    assert answers(stream) == [("c1", True, ""), ("c1", True, "")]
    assert device.executed == ["c1"]
    assert device.target_celsius == 22.5
    assert device.thermostat is not None
    assert device.thermostat.target_celsius == 22.5


async def test_an_expired_command_is_refused_and_not_carried_out(
    adapter: FakeAdapter, start_device: StartDevice
) -> None:
    device = await start_device()
    stream = await connected_stream(adapter, device)
    past = datetime.now(UTC) - timedelta(minutes=1)

    stream.send(command("late", kind=TURN_OFF, expire=past))
    stream.send(command("in-time", kind=TURN_OFF, expire=past + timedelta(hours=1)))

    await eventually(lambda: len(stream.results()) == 2, what="two answers")
    assert answers(stream) == [("late", False, "expired before it arrived"), ("in-time", True, "")]
    assert device.executed == ["in-time"]
    assert device.results["late"] == (False, "expired before it arrived")


async def test_the_reject_fault_refuses_new_commands_only_while_on(
    adapter: FakeAdapter, start_device: StartDevice
) -> None:
    device = await start_device()
    stream = await connected_stream(adapter, device)

    device.reject_commands(True)
    stream.send(command("c1", kind=TURN_OFF))
    await eventually(lambda: len(stream.results()) == 1, what="the refusal")
    device.reject_commands(False)
    stream.send(command("c1", kind=TURN_OFF))  # a repeat keeps its answer
    stream.send(command("c2", kind=TURN_OFF))

    await eventually(lambda: len(stream.results()) == 3, what="three answers")
    rejected = "rejected by the device (simulated fault)"
    assert answers(stream) == [("c1", False, rejected), ("c1", False, rejected), ("c2", True, "")]
    assert device.executed == ["c2"]
    assert device.enabled is False


async def test_the_device_reconnects_after_the_adapter_ends_the_stream(
    adapter: FakeAdapter, start_device: StartDevice
) -> None:
    device = await start_device()
    stream = await connected_stream(adapter, device)
    # Ended while a frame is on its way, grpc would report INTERNAL instead of OK.
    await eventually(lambda: stream.samples(), what="the first sample")

    stream.end()

    await eventually(lambda: device.connections == 2, what="a second connection")
    assert len(adapter.streams) == 2
    assert device.connected.is_set()
    assert device.last_disconnect_code == grpc.StatusCode.OK
    assert adapter.streams[1].kinds()[0] == "hello"


async def test_a_dropped_connection_is_cut_and_then_reopened(
    adapter: FakeAdapter, start_device: StartDevice
) -> None:
    device = await start_device()
    stream = await connected_stream(adapter, device)

    device.drop_connection()

    await eventually(lambda: device.connections == 2, what="a second connection")
    await asyncio.wait_for(stream.closed.wait(), 5)
    assert device.last_disconnect_code == grpc.StatusCode.CANCELLED


async def test_an_unauthenticated_device_stops_reconnecting(
    adapter: FakeAdapter, start_device: StartDevice
) -> None:
    adapter.refuse = True
    device = await start_device()

    await eventually(lambda: not device.running, what="the device giving up")

    assert device.gave_up
    assert device.last_disconnect_code == grpc.StatusCode.UNAUTHENTICATED
    assert device.connections == 0
    assert len(adapter.streams) == 1


async def test_retry_unauthenticated_keeps_knocking(
    adapter: FakeAdapter, start_device: StartDevice
) -> None:
    adapter.refuse = True
    device = await start_device(retry_unauthenticated=True)

    await eventually(lambda: len(adapter.streams) >= 3, what="repeated attempts")
    adapter.refuse = False
    await device.wait_connected(5)
    assert device.running
    assert not device.gave_up


async def test_a_silent_device_sends_nothing_and_does_not_reconnect_until_it_talks(
    adapter: FakeAdapter, start_device: StartDevice
) -> None:
    device = await start_device(telemetry_interval=0.2)
    stream = await connected_stream(adapter, device)
    await eventually(lambda: len(stream.samples()) >= 2, what="samples")

    device.go_silent()
    await asyncio.sleep(0.3)  # a write already under way may still finish
    sent = device.frames_sent
    await asyncio.sleep(2.5 * HEARTBEAT_SECONDS)  # long enough for two heartbeats and samples
    stream.send(command("while-silent", kind=TURN_OFF))
    await eventually(lambda: device.executed == ["while-silent"], what="the command carried out")

    # Counted by the device itself: a frame still in flight when it fell
    # silent cannot make this fail on a slow machine.
    assert device.frames_sent == sent
    assert device.connected.is_set()  # the stream stays open: the adapter must time it out

    stream.end()
    await eventually(lambda: not device.connected.is_set(), what="the stream's end")
    await asyncio.sleep(1.0)
    assert len(adapter.streams) == 1

    device.resume_talking()
    await eventually(lambda: device.connections == 2, what="the reconnection")
    adapter.streams[1].send(command("while-silent", kind=TURN_OFF))
    await eventually(lambda: answers(adapter.streams[1]) == [("while-silent", True, "")])
    assert device.executed == ["while-silent"]


async def test_a_held_answer_is_sent_when_the_command_is_repeated_after_a_reconnect(
    adapter: FakeAdapter, start_device: StartDevice
) -> None:
    device = await start_device()
    first = await connected_stream(adapter, device)

    device.hold_answers(True)
    first.send(command("c1", kind=TURN_OFF))
    await eventually(lambda: device.executed == ["c1"], what="the command carried out")
    first.send(command("c1", kind=TURN_OFF))  # the repeat is held too, not run again
    await eventually(lambda: first.kinds().count("heartbeat") >= 1, what="a frame after it")
    assert first.results() == []

    first.end()
    device.hold_answers(False)
    await eventually(lambda: device.connections == 2, what="the reconnection")
    second = adapter.streams[1]
    second.send(command("c1", kind=TURN_OFF))

    await eventually(lambda: answers(second) == [("c1", True, "")], what="the cached answer")
    assert device.executed == ["c1"]


# What a device does and reports, without a stream.


def idle_device(device_type: DeviceType, room: Room | None = None) -> SimulatedDevice:
    return SimulatedDevice(
        f"{device_type}-{id(room)}",
        "s3cret",
        device_type,
        room or Room("kitchen"),
        adapter="127.0.0.1:1",
    )


def test_each_type_reports_what_it_measures() -> None:
    room = Room("kitchen", temperature_celsius=17.0)
    heater = idle_device(DeviceType.HEATER, room)
    sensor = idle_device(DeviceType.SENSOR, room)
    controller = idle_device(DeviceType.CONTROLLER, room)

    heating = heater.telemetry()
    sensed = sensor.telemetry()
    controlled = controller.telemetry()

    assert heating.temperature_celsius == pytest.approx(17.0, abs=0.1)
    assert (heating.heater_on, heating.power_watts) == (True, 2000.0)
    assert sensed.temperature_celsius == heating.temperature_celsius
    assert not sensed.HasField("power_watts")
    assert not sensed.HasField("heater_on")
    assert controlled.heater_on is True
    assert not controlled.HasField("power_watts")
    assert [sample.gas_alarm for sample in (heating, sensed, controlled)] == [False] * 3


def test_overheat_and_gas_faults_show_in_telemetry_until_cleared() -> None:
    device = idle_device(DeviceType.SENSOR)

    device.overheat(True)
    device.gas_alarm(True)
    alarmed = device.telemetry()
    device.overheat(False)
    device.gas_alarm(False)
    cleared = device.telemetry()

    assert (alarmed.temperature_celsius, alarmed.gas_alarm) == (120.0, True)
    assert cleared.temperature_celsius < 100.0
    assert cleared.gas_alarm is False


def test_turn_off_holds_only_the_frost_floor_and_turn_on_restores_the_target() -> None:
    device = idle_device(DeviceType.HEATER)
    assert device.thermostat is not None

    off = device.answer(command("off", kind=TURN_OFF))
    assert off is not None
    assert off.ok
    assert not device.enabled
    # The room (15 °C) is above the frost floor (7 °C): the heater stays off.
    assert (device.thermostat.target_celsius, device.thermostat.on) == (7.0, False)
    assert device.telemetry().power_watts == 0.0

    device.answer(command("on", kind=TURN_ON))
    assert device.enabled
    assert (device.thermostat.target_celsius, device.thermostat.on) == (20.0, True)
    assert device.executed == ["off", "on"]


def test_a_heater_turned_off_still_heats_a_room_below_the_frost_floor() -> None:
    device = idle_device(DeviceType.HEATER, Room("cellar", temperature_celsius=4.0))
    assert device.thermostat is not None

    device.answer(command("off", kind=TURN_OFF))

    assert device.thermostat.on
    assert device.telemetry().power_watts == 2000.0


def test_a_controller_sets_every_heater_in_its_room() -> None:
    room = Room("hall")
    heaters = [idle_device(DeviceType.HEATER, room), idle_device(DeviceType.HEATER, room)]
    controller = idle_device(DeviceType.CONTROLLER, room)

    controller.answer(command("t", target=23.0))
    targets = [heater.thermostat.target_celsius for heater in heaters if heater.thermostat]
    controller.answer(command("off", kind=TURN_OFF))

    assert targets == [23.0, 23.0]
    assert [heater.thermostat.target_celsius for heater in heaters if heater.thermostat] == [
        7.0,
        7.0,
    ]
    assert not room.heating
    assert controller.telemetry().heater_on is False


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (command("no-target", target=None), commands.NO_TARGET),
        (command("hot", target=1e9), commands.TARGET_OUT_OF_RANGE),
        (command("nan", target=float("nan")), commands.TARGET_OUT_OF_RANGE),
        (Command(command_id="odd"), commands.UNKNOWN_KIND),
    ],
)
def test_a_command_the_device_cannot_do_is_answered_not_ok(message: Command, reason: str) -> None:
    device = idle_device(DeviceType.HEATER)
    result = device.answer(message)
    assert result is not None
    assert (result.ok, result.message) == (False, reason)
    assert device.executed == []


def test_a_command_without_a_usable_id_is_not_answered() -> None:
    device = idle_device(DeviceType.HEATER)
    assert device.answer(command("")) is None
    assert device.answer(command("x" * 129)) is None
    assert device.executed == []


def test_the_answer_cache_forgets_the_oldest_beyond_its_capacity() -> None:
    cache = commands.Answers(capacity=2)
    for command_id in ("a", "b", "c"):
        cache.remember(command_id, commands.DONE)
    assert list(cache) == ["b", "c"]


# The fleet and the command line.


async def test_a_fleet_shares_rooms_and_channels_and_counts_what_it_does(
    adapter: FakeAdapter,
) -> None:
    specs = [
        DeviceSpec("h1", "s", DeviceType.HEATER, "living"),
        DeviceSpec("c1", "s", DeviceType.CONTROLLER, "living"),
        DeviceSpec("s1", "s", DeviceType.SENSOR, "bedroom"),
    ]
    fleet = Fleet(adapter.address, specs, devices_per_channel=2, telemetry_interval=0.1)
    try:
        await fleet.start()
        await fleet.wait_connected(5)
        fleet.inflict(Fault.GAS, ["s1"])
        sensor_stream = next(s for s in adapter.streams if s.hello.device_id == "s1")
        await eventually(
            lambda: any(sample.gas_alarm for sample in sensor_stream.samples()), what="gas"
        )

        assert fleet.devices["h1"].room is fleet.devices["c1"].room
        assert sorted(fleet.rooms) == ["bedroom", "living"]
        assert fleet.stats.connects == 3
        assert fleet.stats.samples_sent >= 3
        assert fleet.status_line().startswith("connected 3/3 connects 3 samples")
        assert not fleet.devices["h1"].telemetry().gas_alarm
    finally:
        await fleet.stop()
    assert fleet.connected_count() == 0


def test_a_fleet_refuses_a_device_id_twice() -> None:
    spec = DeviceSpec("d", "s", DeviceType.SENSOR)
    with pytest.raises(ValueError, match="twice"):
        Fleet("127.0.0.1:1", [spec, spec])


def test_the_command_line_reads_devices_rooms_and_faults(tmp_path: Path) -> None:
    devices_file = tmp_path / "devices.json"
    devices_file.write_text(
        json.dumps(
            [
                {"deviceId": "a", "deviceSecret": "s", "type": "HEATER", "room": "den"},
                {"deviceId": "b", "deviceSecret": "s", "type": "SENSOR"},
            ]
        )
    )

    args = cli.parse(
        ["--adapter", "127.0.0.1:5", "--devices-file", str(devices_file), "--fault", "gas@2.5:b"]
    )

    assert args.device == [
        DeviceSpec("a", "s", DeviceType.HEATER, "den"),
        DeviceSpec("b", "s", DeviceType.SENSOR, "home"),
    ]
    assert args.fault == [cli.ScheduledFault(Fault.GAS, 2.5, "b")]
    assert (args.speed, args.telemetry_interval) == (60.0, 5.0)


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["--device", "a:s:HEATER"], "--adapter"),
        (["--adapter", "nowhere", "--device", "a:s:HEATER"], "HOST:PORT"),
        (["--adapter", "h:1", "--device", "a:s"], "ID:SECRET:TYPE"),
        (["--adapter", "h:1", "--device", "a:s:TOASTER"], "HEATER, SENSOR, CONTROLLER"),
        (["--adapter", "h:1", "--device", "a:s:HEATER", "--device", "a:t:SENSOR"], "twice"),
        (["--adapter", "h:1", "--device", "a:s:HEATER", "--fault", "flood@1"], "KIND@SECONDS"),
        (["--adapter", "h:1", "--device", "a:s:HEATER", "--fault", "gas@1:zz"], "not simulated"),
        (["--adapter", "h:1", "--device", "a:s:HEATER", "--speed", "0.5"], "at least 1"),
        (["--adapter", "h:1", "--device", "a:s:HEATER", "--duration", "-1"], "positive"),
        (["--adapter", "h:1"], "one of the arguments --device --devices-file is required"),
    ],
)
def test_bad_arguments_exit_2_with_a_reason(
    argv: list[str], complaint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.parse(argv)
    assert exit_.value.code == 2
    assert complaint in capsys.readouterr().err


@pytest.mark.parametrize(
    ("content", "complaint"),
    [
        ("not json", "not a JSON file"),
        ("[]", "non-empty JSON list"),
        ('[{"deviceId": "a", "deviceSecret": "s"}]', "entry 1: type must be a string"),
        ('[{"deviceId": "a", "deviceSecret": "s", "type": "LAMP"}]', "entry 1: the type"),
        ('["a"]', "entry 1 is not an object"),
    ],
)
def test_a_bad_devices_file_is_refused_with_the_entry_at_fault(
    tmp_path: Path, content: str, complaint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    devices_file = tmp_path / "devices.json"
    devices_file.write_text(content)
    with pytest.raises(SystemExit):
        cli.parse(["--adapter", "h:1", "--devices-file", str(devices_file)])
    assert complaint in capsys.readouterr().err


async def test_the_command_line_runs_a_fleet_for_its_duration_with_its_faults(
    adapter: FakeAdapter, capsys: pytest.CaptureFixture[str]
) -> None:
    args = cli.parse(
        [
            "--adapter",
            adapter.address,
            "--device",
            "d1:s:HEATER:den",
            "--telemetry-interval",
            "0.1",
            "--fault",
            "overheat@0",
            "--duration",
            "1.5",
            "--status-every",
            "0.5",
        ]
    )

    assert await cli.run(args) == 0

    out = capsys.readouterr().out
    assert "connected 1/1" in out
    assert "den=" in out
    assert "fault overheat on every device" in out
    assert any(sample.temperature_celsius == 120.0 for sample in adapter.streams[0].samples())


async def test_the_command_line_fails_when_every_credential_is_refused(
    adapter: FakeAdapter,
) -> None:
    adapter.refuse = True
    args = cli.parse(["--adapter", adapter.address, "--device", "d1:s:SENSOR", "--duration", "30"])
    assert await cli.run(args) == 1
