"""The Connect use case, with fakes for the Device service, NATS and JetStream."""

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator

import pytest
from google.protobuf.message import Message
from warmhouse.device.v1 import device_pb2
from warmhouse.device_adapter.v1 import device_adapter_pb2 as pb
from warmhouse.heating.v1 import heating_pb2

from services.device_adapter.connections import (
    MAX_SAMPLES_PER_FRAME,
    AuthenticatedDevice,
    Connections,
    ConnectionSettings,
)
from services.device_adapter.streams import Delivery, DeviceType, Stream, StreamRegistry
from services.device_adapter.throttle import CHECKS_AT_ONCE, FailedConnectThrottle
from services.device_adapter.validation import HelloFields, credentials_invalid
from services.runtime.errors import (
    Conflict,
    DomainError,
    InvalidArgument,
    Throttled,
    Unauthenticated,
    Unavailable,
    dependency_unavailable,
)
from tests.polling import eventually
from tests.protobuf_padding import unknown_field

SECRET = "good secret"
PEER = "ipv4:10.0.0.7:40000"
WALL = 1_800_000_000.0


class FakeDevices:
    def __init__(self) -> None:
        self.asked: list[str] = []
        self.down = False
        # How long an answer takes (a real one crosses the network).
        self.delay = 0.0
        # Each device's type; HEATER when not listed.
        self.types: dict[str, DeviceType] = {}

    async def authenticate(self, hello: HelloFields) -> AuthenticatedDevice:
        self.asked.append(hello.device_id)
        await asyncio.sleep(self.delay)
        if self.down:
            raise dependency_unavailable("device")
        if hello.secret != SECRET:
            raise credentials_invalid()
        return AuthenticatedDevice(
            hello.device_id, self.types.get(hello.device_id, device_pb2.HEATER)
        )


class FakeSubscription:
    def __init__(self) -> None:
        self.unsubscribed = False

    async def unsubscribe(self, limit: int = 0) -> None:
        self.unsubscribed = True


class FakeRoutes:
    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.subscriptions: list[FakeSubscription] = []

    async def follow(self, stream: Stream) -> None:
        subscription = FakeSubscription()
        self.subscriptions.append(subscription)
        stream.subscription = subscription
        self.log.append(f"follow {stream.connection_id}")

    async def announce(self, stream: Stream) -> None:
        self.log.append(f"announce {stream.connection_id}")

    async def unfollow(self, stream: Stream) -> None:
        subscription, stream.subscription = stream.subscription, None
        if subscription is not None:
            await subscription.unsubscribe()
        self.log.append(f"unfollow {stream.connection_id}")

    async def replies_sent(self) -> None:
        return None


class FakeEvents:
    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.published: list[tuple[Message, str]] = []
        self.failing = False
        # Events of a kind wait for its gate while it is there (a slow broker).
        self.gates: dict[type[Message], asyncio.Event] = {}
        # Events waiting at a gate now.
        self.held = 0

    def hold(self, kind: type[Message]) -> asyncio.Event:
        """Hold events of `kind` until the returned gate is set."""
        gate = self.gates[kind] = asyncio.Event()
        return gate

    async def publish(self, event: Message, msg_id: str) -> None:
        if self.failing:
            raise TimeoutError("no ack")
        gate = self.gates.get(type(event))
        if gate is not None:
            self.held += 1
            try:
                await gate.wait()
            finally:
                self.held -= 1
        self.published.append((event, msg_id))
        self.log.append(f"publish {event.DESCRIPTOR.name}")

    def of(self, kind: type[Message]) -> list[Message]:
        return [event for event, _ in self.published if isinstance(event, kind)]

    def disconnected(self) -> list[pb.DeviceDisconnected]:
        return [event for event, _ in self.published if isinstance(event, pb.DeviceDisconnected)]

    def acknowledged(self) -> list[pb.CommandAcknowledged]:
        return [event for event, _ in self.published if isinstance(event, pb.CommandAcknowledged)]


class FakeTelemetry:
    def __init__(self) -> None:
        self.samples: list[pb.TelemetryReceived] = []
        self.rejected = 0
        self.rate_limited = 0

    def add(self, sample: pb.TelemetryReceived) -> None:
        self.samples.append(sample)

    def reject(self) -> None:
        self.rejected += 1

    def rate_limit(self) -> None:
        self.rate_limited += 1


class Adapter:
    def __init__(
        self,
        hello_seconds: float = 5.0,
        failures_per_minute: int = 3,
        *,
        samples_per_second: float = 20,
        max_pending_acknowledgements: int = 100,
        heating_statuses_per_minute: float = 60,
        max_unpublished_statuses: int = 20,
    ) -> None:
        self.log: list[str] = []
        # Monotonic and wall-clock seconds, moved by the test.
        self.now = 1000.0
        self.wall = WALL
        self.devices = FakeDevices()
        self.routes = FakeRoutes(self.log)
        self.events = FakeEvents(self.log)
        self.telemetry = FakeTelemetry()
        self.registry = StreamRegistry()
        self.connections = Connections(
            ConnectionSettings(
                heartbeat_seconds=5,
                hello_seconds=hello_seconds,
                samples_per_second=samples_per_second,
                max_pending_acknowledgements=max_pending_acknowledgements,
                heating_statuses_per_minute=heating_statuses_per_minute,
                max_unpublished_statuses=max_unpublished_statuses,
            ),
            self.devices,
            self.routes,
            self.events,
            self.telemetry,
            FailedConnectThrottle(failures_per_minute),
            self.registry,
            clock=lambda: self.now,
            wall_clock=lambda: self.wall,
        )


class Device:
    """The hardware's side of one stream."""

    def __init__(self, adapter: Adapter, device_id: str | None = None, secret: str = SECRET):
        self.device_id = device_id or str(uuid.uuid4())
        self.secret = secret
        self.frames: asyncio.Queue[pb.ConnectRequest | None] = asyncio.Queue()
        self.responses = adapter.connections.serve(self._requests(), PEER)

    async def _requests(self) -> AsyncIterator[pb.ConnectRequest]:
        while (frame := await self.frames.get()) is not None:
            yield frame

    def send(self, frame: pb.ConnectRequest | None) -> None:
        self.frames.put_nowait(frame)

    def hello(self) -> None:
        self.send(
            pb.ConnectRequest(hello=pb.Hello(device_id=self.device_id, device_secret=self.secret))
        )

    async def connect(self) -> pb.Welcome:
        self.hello()
        response = await anext(self.responses)
        assert response.WhichOneof("frame") == "welcome"
        return response.welcome

    async def refusal(self) -> DomainError:
        """How the stream ends, expecting a status other than OK."""
        with pytest.raises(DomainError) as ended:
            await self._drain()
        return ended.value

    async def _drain(self) -> None:
        async for _ in self.responses:
            pass

    async def closes_normally(self) -> None:
        with pytest.raises(StopAsyncIteration):
            await anext(self.responses)

    async def receive_command(self, stream: Stream, command_id: str | None = None) -> str:
        """A command written to the stream and read by the device; its id."""
        command_id = command_id or str(uuid.uuid4())
        stream.send(pb.ConnectResponse(command=pb.Command(command_id=command_id)))
        response = await anext(self.responses)
        assert response.command.command_id == command_id
        return command_id

    def answer(self, command_id: str, ok: bool = True, message: str = "") -> None:
        self.send(
            pb.ConnectRequest(
                command_result=pb.CommandResult(command_id=command_id, ok=ok, message=message)
            )
        )


def the_stream(adapter: Adapter, device: Device) -> Stream:
    stream = adapter.registry.get(device.device_id)
    assert stream is not None
    return stream


async def test_a_device_is_welcomed_after_its_stream_is_followed_and_announced() -> None:
    adapter = Adapter()
    device = Device(adapter)
    welcome = await device.connect()
    assert welcome.heartbeat_interval_seconds == 5
    assert welcome.server_time.seconds == int(WALL)
    stream = the_stream(adapter, device)
    connection = stream.connection_id
    assert adapter.log == [
        f"follow {connection}",
        f"announce {connection}",
        "publish DeviceConnected",
    ]
    (connected,) = adapter.events.of(pb.DeviceConnected)
    assert isinstance(connected, pb.DeviceConnected)
    assert (connected.device_id, connected.connection_id) == (device.device_id, connection)
    device.send(None)
    await device.closes_normally()


async def test_a_device_leaving_is_published_once_with_its_connection() -> None:
    adapter = Adapter()
    device = Device(adapter)
    await device.connect()
    stream = the_stream(adapter, device)
    device.send(None)
    await device.closes_normally()
    disconnected = await eventually(adapter.events.disconnected)
    assert [(event.connection_id, event.reason) for event in disconnected] == [
        (stream.connection_id, pb.CLOSED_BY_DEVICE)
    ]
    assert adapter.routes.subscriptions[0].unsubscribed
    assert len(adapter.registry) == 0
    assert adapter.log.index(f"unfollow {stream.connection_id}") < adapter.log.index(
        "publish DeviceDisconnected"
    )


async def test_telemetry_is_stamped_and_handed_on_and_bad_samples_dropped() -> None:
    adapter = Adapter()
    device = Device(adapter)
    await device.connect()
    device.send(pb.ConnectRequest(telemetry=pb.Telemetry(temperature_celsius=float("nan"))))
    device.send(pb.ConnectRequest(telemetry=pb.Telemetry(temperature_celsius=21.0)))
    (received,) = await eventually(lambda: adapter.telemetry.samples)
    assert received.device_id == device.device_id
    assert received.connection_id == the_stream(adapter, device).connection_id
    assert received.telemetry.temperature_celsius == 21.0
    assert received.telemetry.HasField("sample_time")
    assert received.occur_time.seconds == int(WALL)
    assert adapter.telemetry.rejected == 1
    device.send(None)
    await device.closes_normally()


async def test_the_first_frame_must_be_a_hello() -> None:
    adapter = Adapter()
    device = Device(adapter)
    device.send(pb.ConnectRequest(heartbeat=pb.Heartbeat()))
    refusal = await device.refusal()
    assert isinstance(refusal, Unauthenticated)
    assert refusal.reason == "HELLO_REQUIRED"
    assert adapter.devices.asked == []


async def test_a_hello_must_come_in_time() -> None:
    adapter = Adapter(hello_seconds=0.01)
    refusal = await Device(adapter).refusal()
    assert refusal.reason == "HELLO_REQUIRED"


async def test_wrong_credentials_are_refused_then_throttled_without_asking() -> None:
    adapter = Adapter(failures_per_minute=2)
    for _ in range(2):
        device = Device(adapter, secret="guess")
        device.hello()
        refusal = await device.refusal()
        assert isinstance(refusal, Unauthenticated)
        assert refusal.reason == "DEVICE_CREDENTIALS_INVALID"
        assert device.device_id not in refusal.message
    asked = len(adapter.devices.asked)
    device = Device(adapter)
    device.hello()
    refusal = await device.refusal()
    assert isinstance(refusal, Throttled)
    assert refusal.reason == "TOO_MANY_FAILED_CONNECTS"
    assert len(adapter.devices.asked) == asked == 2


async def test_guesses_sent_at_once_on_many_streams_reach_device_only_a_few_at_a_time() -> None:
    adapter = Adapter(failures_per_minute=2)
    adapter.devices.delay = 0.01
    guessers = [Device(adapter, secret="guess") for _ in range(50)]
    for guesser in guessers:
        guesser.hello()
    refusals = await asyncio.gather(*(guesser.refusal() for guesser in guessers))
    # The first turn's checks (throttle.CHECKS_AT_ONCE) were asked; then the
    # failures counted, and every later turn was refused without asking.
    assert len(adapter.devices.asked) <= 2 + CHECKS_AT_ONCE
    assert sum(isinstance(refusal, Throttled) for refusal in refusals) >= 50 - 2 - CHECKS_AT_ONCE


async def test_an_unreachable_device_service_counts_no_failure() -> None:
    adapter = Adapter(failures_per_minute=1)
    adapter.devices.down = True
    device = Device(adapter)
    device.hello()
    assert isinstance(await device.refusal(), Unavailable)
    adapter.devices.down = False
    await Device(adapter).connect()


async def test_a_second_hello_ends_the_stream() -> None:
    adapter = Adapter()
    device = Device(adapter)
    await device.connect()
    device.hello()
    refusal = await device.refusal()
    assert isinstance(refusal, InvalidArgument)
    assert refusal.reason == "HELLO_ONLY_ONCE"
    disconnected = await eventually(adapter.events.disconnected)
    assert disconnected[0].reason == pb.CLOSED_BY_DEVICE


async def test_a_newer_stream_replaces_the_older() -> None:
    adapter = Adapter()
    older = Device(adapter)
    await older.connect()
    first = the_stream(adapter, older).connection_id
    newer = Device(adapter, older.device_id)
    await newer.connect()
    refusal = await older.refusal()
    assert isinstance(refusal, Conflict)
    assert refusal.reason == "STREAM_REPLACED"
    disconnected = await eventually(adapter.events.disconnected)
    assert [(event.connection_id, event.reason) for event in disconnected] == [(first, pb.REPLACED)]
    # The older stream's end leaves the newer one in place.
    assert the_stream(adapter, newer).connection_id != first
    newer.send(None)
    await newer.closes_normally()


async def test_a_command_is_written_and_only_then_reported_written() -> None:
    adapter = Adapter()
    device = Device(adapter)
    await device.connect()
    stream = the_stream(adapter, device)
    command_id = str(uuid.uuid4())
    written = stream.send(pb.ConnectResponse(command=pb.Command(command_id=command_id)))
    response = await anext(device.responses)
    assert response.command.command_id == command_id
    # The generator resumes (grpc wrote the frame) when the next one is asked for.
    assert not written.done()
    later = stream.send(pb.ConnectResponse(command=pb.Command(command_id="next")))
    await anext(device.responses)
    assert written.result() is Delivery.WRITTEN
    device.send(None)
    await device.closes_normally()
    assert later.result() is Delivery.WRITTEN


async def test_a_command_not_yet_written_when_the_stream_ends_is_reported_unwritten() -> None:
    adapter = Adapter()
    device = Device(adapter)
    await device.connect()
    stream = the_stream(adapter, device)
    stream.end(pb.CREDENTIALS_REVOKED)
    pending = stream.send(pb.ConnectResponse(command=pb.Command(command_id="x")))
    refusal = await device.refusal()
    assert refusal.reason == "CREDENTIALS_REVOKED"
    assert pending.result() is Delivery.NOT_WRITTEN


async def test_an_answer_is_acknowledged_once_per_command() -> None:
    adapter = Adapter()
    device = Device(adapter)
    await device.connect()
    command_id = await device.receive_command(the_stream(adapter, device))
    device.answer(command_id.upper(), ok=False, message="too hot")
    device.send(pb.ConnectRequest(command_result=pb.CommandResult(command_id="nonsense")))
    device.send(None)
    await device.closes_normally()
    await eventually(adapter.events.disconnected)
    acknowledgements = [
        (event, msg_id)
        for event, msg_id in adapter.events.published
        if isinstance(event, pb.CommandAcknowledged)
    ]
    assert len(acknowledgements) == 1
    event, msg_id = acknowledgements[0]
    assert (event.device_id, event.command_id, event.ok, event.message) == (
        device.device_id,
        command_id,
        False,
        "too hot",
    )
    assert msg_id == f"{device.device_id}-{command_id}-acknowledged"


async def test_shutdown_ends_every_stream_and_publishes_why() -> None:
    adapter = Adapter()
    devices = [Device(adapter) for _ in range(3)]
    for device in devices:
        await device.connect()
    await adapter.connections.shut_down(within_seconds=5.0)
    # Published before shut_down returns, while the broker is still there.
    assert sorted(event.device_id for event in adapter.events.disconnected()) == sorted(
        device.device_id for device in devices
    )
    assert {event.reason for event in adapter.events.disconnected()} == {pb.ADAPTER_SHUTDOWN}
    for device in devices:
        refusal = await device.refusal()
        assert isinstance(refusal, Unavailable)
        assert refusal.reason == "ADAPTER_SHUTDOWN"
    latecomer = Device(adapter)
    latecomer.hello()
    assert (await latecomer.refusal()).reason == "ADAPTER_SHUTDOWN"


async def test_shutdown_does_not_wait_for_a_hello() -> None:
    adapter = Adapter(hello_seconds=3600.0)
    device = Device(adapter)
    refusal = asyncio.create_task(device.refusal())
    await eventually(lambda: adapter.connections.awaiting_hello == 1)
    await adapter.connections.shut_down(within_seconds=5.0)
    ended = await refusal
    assert isinstance(ended, Unavailable)
    assert ended.reason == "ADAPTER_SHUTDOWN"
    assert adapter.connections.awaiting_hello == 0


async def test_a_stream_that_cannot_be_announced_is_refused_and_cleaned_up() -> None:
    adapter = Adapter()
    adapter.events.failing = True
    device = Device(adapter)
    device.hello()
    refusal = await device.refusal()
    assert isinstance(refusal, Unavailable)
    assert refusal.reason == "DEPENDENCY_UNAVAILABLE"
    await eventually(lambda: adapter.routes.subscriptions[0].unsubscribed)
    assert len(adapter.registry) == 0


def warnings_about(caplog: pytest.LogCaptureFixture, words: str) -> list[logging.LogRecord]:
    return [
        record
        for record in caplog.records
        if record.levelno == logging.WARNING and words in record.getMessage()
    ]


async def test_only_the_first_answer_to_a_command_written_on_the_stream_is_forwarded(
    caplog: pytest.LogCaptureFixture,
) -> None:
    adapter = Adapter()
    device, other = Device(adapter), Device(adapter)
    await device.connect()
    await other.connect()
    written = await device.receive_command(the_stream(adapter, device))
    for_the_other = await other.receive_command(the_stream(adapter, other))
    for _ in range(3):
        device.answer(str(uuid.uuid4()))  # never written anywhere
    device.answer(for_the_other)  # written, but on another stream
    device.answer("42")  # no command id at all
    device.answer(written, message="first")
    device.answer(written, message="again")
    await eventually(lambda: adapter.connections.answers.unexpected == 6)
    (acknowledged,) = await eventually(adapter.events.acknowledged)
    assert (acknowledged.command_id, acknowledged.message) == (written, "first")
    assert adapter.connections.answers.forwarded == 1
    # The other device's answer to its own command still goes through.
    other.answer(for_the_other)
    await eventually(lambda: len(adapter.events.acknowledged()) == 2)
    assert warnings_about(caplog, "answered a command not written") == [
        warnings_about(caplog, "answered a command not written")[0]
    ]
    assert not the_stream(adapter, device).ended
    for each in (device, other):
        each.send(None)
        await each.closes_normally()


async def test_pending_acknowledgements_are_limited_per_stream(
    caplog: pytest.LogCaptureFixture,
) -> None:
    adapter = Adapter(max_pending_acknowledgements=2)
    gate = adapter.events.hold(pb.CommandAcknowledged)
    flooding, calm = Device(adapter), Device(adapter)
    await flooding.connect()
    await calm.connect()
    commands = [await flooding.receive_command(the_stream(adapter, flooding)) for _ in range(4)]
    for command_id in commands:
        flooding.answer(command_id)
    await eventually(lambda: adapter.connections.answers.overflow == 2)
    calm.answer(await calm.receive_command(the_stream(adapter, calm)))
    await eventually(lambda: adapter.connections.answers.forwarded == 3)
    assert len(warnings_about(caplog, "too many pending")) == 1
    gate.set()
    acknowledged = await eventually(lambda: len(adapter.events.acknowledged()) == 3)
    assert acknowledged
    assert the_stream(adapter, flooding).pending_acknowledgements == 0
    # With its answers out, the stream may have more pending again.
    flooding.answer(await flooding.receive_command(the_stream(adapter, flooding)))
    await eventually(lambda: len(adapter.events.acknowledged()) == 4)
    for each in (flooding, calm):
        each.send(None)
        await each.closes_normally()


def telemetry(celsius: float = 21.0) -> pb.ConnectRequest:
    return pb.ConnectRequest(telemetry=pb.Telemetry(temperature_celsius=celsius))


async def test_telemetry_beyond_the_streams_rate_is_dropped_and_the_stream_stays(
    caplog: pytest.LogCaptureFixture,
) -> None:
    adapter = Adapter(samples_per_second=2)
    device = Device(adapter)
    await device.connect()
    # A burst of five seconds' worth passes, the rest of it does not.
    for _ in range(15):
        device.send(telemetry())
    await eventually(lambda: adapter.telemetry.rate_limited == 5)
    assert len(adapter.telemetry.samples) == 10
    adapter.now += 1.0
    for _ in range(3):
        device.send(telemetry())
    await eventually(lambda: adapter.telemetry.rate_limited == 6)
    assert len(adapter.telemetry.samples) == 12
    assert len(warnings_about(caplog, "beyond its rate")) == 1
    assert not the_stream(adapter, device).ended
    # Each stream has its own budget.
    other = Device(adapter)
    await other.connect()
    other.send(telemetry())
    await eventually(lambda: len(adapter.telemetry.samples) == 13)
    for each in (device, other):
        each.send(None)
        await each.closes_normally()


async def test_a_frame_of_several_samples_counts_each_and_is_capped() -> None:
    adapter = Adapter(samples_per_second=1000)
    device = Device(adapter)
    await device.connect()
    samples = [pb.Telemetry(temperature_celsius=20.0 + i / 100) for i in range(150)]
    device.send(pb.ConnectRequest(samples=pb.TelemetrySamples(telemetry=samples)))
    await eventually(lambda: len(adapter.telemetry.samples) == MAX_SAMPLES_PER_FRAME)
    taken = [s.telemetry.temperature_celsius for s in adapter.telemetry.samples]
    assert taken == [20.0 + i / 100 for i in range(MAX_SAMPLES_PER_FRAME)], "oldest first"
    # Against the same rate as single samples.
    limited = Adapter(samples_per_second=2)
    other = Device(limited)
    await other.connect()
    other.send(pb.ConnectRequest(samples=pb.TelemetrySamples(telemetry=samples[:15])))
    await eventually(lambda: limited.telemetry.rate_limited == 5)
    assert len(limited.telemetry.samples) == 10
    for each in (device, other):
        each.send(None)
        await each.closes_normally()


async def test_a_padded_telemetry_frame_is_handed_on_without_its_padding() -> None:
    adapter = Adapter()
    device = Device(adapter)
    await device.connect()
    clean = pb.Telemetry(temperature_celsius=21.0)
    padded = pb.Telemetry.FromString(clean.SerializeToString() + unknown_field(900_000))
    device.send(pb.ConnectRequest(telemetry=padded))
    (received,) = await eventually(lambda: adapter.telemetry.samples)
    assert received.telemetry.temperature_celsius == 21.0
    assert received.ByteSize() < 200
    device.send(None)
    await device.closes_normally()


def heating_status(plan_version: int = 1, target_celsius: float = 20.0) -> pb.ConnectRequest:
    return pb.ConnectRequest(
        heating_status=heating_pb2.HeatingStatus(
            plan_version=plan_version,
            mode=heating_pb2.HEAT,
            preset=heating_pb2.NONE,
            target_celsius=target_celsius,
            reason=heating_pb2.MANUAL_TARGET,
            heater_on=True,
            temperature_celsius=19.5,
        )
    )


def statuses(adapter: Adapter) -> list[pb.HeatingStatusReceived]:
    return [
        event
        for event, _ in adapter.events.published
        if isinstance(event, pb.HeatingStatusReceived)
    ]


def plan_versions(adapter: Adapter) -> list[int]:
    return [event.status.plan_version for event in statuses(adapter)]


async def test_a_heating_status_is_published_as_received_after_the_streams_connection() -> None:
    adapter = Adapter()
    device = Device(adapter)
    await device.connect()
    stream = the_stream(adapter, device)
    adapter.now += 2.0
    adapter.wall = WALL + 42
    sent = heating_status(plan_version=7)
    sent.heating_status.device_time.FromSeconds(int(WALL) + 3600)
    device.send(sent)
    (event,) = await eventually(lambda: statuses(adapter))
    assert (event.device_id, event.connection_id) == (device.device_id, stream.connection_id)
    assert event.status == sent.heating_status
    # When the adapter received it, not the device's own clock; and when its stream opened.
    assert event.occur_time.seconds == int(WALL) + 42
    assert event.connect_time.seconds == int(WALL)
    assert event.plan_version_written == 0
    (msg_id,) = [msg_id for published, msg_id in adapter.events.published if published is event]
    assert uuid.UUID(msg_id)
    assert adapter.log.index("publish DeviceConnected") < adapter.log.index(
        "publish HeatingStatusReceived"
    )
    assert stream.last_seen_monotonic == adapter.now
    device.send(None)
    await device.closes_normally()


async def test_a_heating_status_sent_before_the_connection_is_published_follows_it() -> None:
    adapter = Adapter()
    gate = adapter.events.hold(pb.DeviceConnected)
    device = Device(adapter)
    device.hello()
    device.send(heating_status())

    async def first_response() -> pb.ConnectResponse:
        return await anext(device.responses)

    welcome = asyncio.create_task(first_response())
    await eventually(lambda: adapter.events.held == 1)
    await asyncio.sleep(0.01)
    assert statuses(adapter) == []
    gate.set()
    assert (await welcome).WhichOneof("frame") == "welcome"
    await eventually(lambda: statuses(adapter))
    assert [entry for entry in adapter.log if entry.startswith("publish")] == [
        "publish DeviceConnected",
        "publish HeatingStatusReceived",
    ]
    device.send(None)
    await device.closes_normally()


async def test_a_controller_reports_heating_and_a_sensors_status_is_dropped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    adapter = Adapter()
    controller, sensor = Device(adapter), Device(adapter)
    adapter.devices.types[controller.device_id] = device_pb2.CONTROLLER
    adapter.devices.types[sensor.device_id] = device_pb2.SENSOR
    for each in (controller, sensor):
        await each.connect()
    adapter.now += 7.0
    for _ in range(2):
        sensor.send(heating_status())
    controller.send(heating_status())
    await eventually(lambda: adapter.connections.heating_statuses.not_heating == 2)
    (event,) = await eventually(lambda: statuses(adapter))
    assert event.device_id == controller.device_id
    assert len(warnings_about(caplog, "not a heating device")) == 1
    stream = the_stream(adapter, sensor)
    assert not stream.ended
    # Still a sign of life.
    assert stream.last_seen_monotonic == adapter.now
    for each in (controller, sensor):
        each.send(None)
        await each.closes_normally()


async def test_an_invalid_heating_status_is_dropped_and_the_stream_stays(
    caplog: pytest.LogCaptureFixture,
) -> None:
    adapter = Adapter()
    device = Device(adapter)
    await device.connect()
    device.send(heating_status(target_celsius=float("nan")))
    overlong = heating_status()
    overlong.heating_status.schedule_slot.day = heating_pb2.MONDAY
    overlong.heating_status.schedule_slot.start_time = "07:00:00"
    device.send(overlong)
    device.send(heating_status(plan_version=3))
    (event,) = await eventually(lambda: statuses(adapter))
    assert event.status.plan_version == 3
    assert adapter.connections.heating_statuses.rejected == 2
    (warning,) = warnings_about(caplog, "invalid heating status")
    assert "target_celsius" in warning.getMessage()
    assert not the_stream(adapter, device).ended
    device.send(None)
    await device.closes_normally()


async def test_beyond_the_streams_rate_only_the_newest_heating_status_is_kept_and_sent_later(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Ten a second sustained (a token every 0.1 s), a burst of ten.
    adapter = Adapter(heating_statuses_per_minute=600)
    device = Device(adapter)
    await device.connect()
    for version in range(13):
        device.send(heating_status(plan_version=version))
    counters = adapter.connections.heating_statuses
    await eventually(lambda: counters.rate_limited == 3)
    await eventually(lambda: len(statuses(adapter)) == 10)
    adapter.now += 0.1
    # 10 and 11 are gone; 12, the device's last word, goes out when the rate allows.
    await eventually(lambda: plan_versions(adapter) == [*range(10), 12])
    assert counters.accepted == 11
    assert len(warnings_about(caplog, "heating statuses from device")) == 1
    stream = the_stream(adapter, device)
    assert not stream.ended
    assert stream.held_heating_status is None
    device.send(None)
    await device.closes_normally()


async def test_a_streams_heating_statuses_are_published_one_at_a_time_in_order() -> None:
    adapter = Adapter()
    gate = adapter.events.hold(pb.HeatingStatusReceived)
    device, other = Device(adapter), Device(adapter)
    for each in (device, other):
        await each.connect()
    for version in range(1, 6):
        device.send(heating_status(plan_version=version))
    other.send(heating_status(plan_version=100))
    await eventually(lambda: adapter.connections.heating_statuses.accepted == 6)
    # One of each stream's at a time: the first, and the other stream's.
    await eventually(lambda: adapter.events.held == 2)
    await asyncio.sleep(0.01)
    assert adapter.events.held == 2
    gate.set()
    await eventually(lambda: len(statuses(adapter)) == 6)
    mine = [
        event.status.plan_version
        for event in statuses(adapter)
        if event.device_id == device.device_id
    ]
    assert mine == [1, 2, 3, 4, 5]
    for each in (device, other):
        each.send(None)
        await each.closes_normally()


async def test_when_too_many_statuses_wait_the_oldest_waiting_go(
    caplog: pytest.LogCaptureFixture,
) -> None:
    adapter = Adapter(max_unpublished_statuses=3)
    gate = adapter.events.hold(pb.HeatingStatusReceived)
    device = Device(adapter)
    await device.connect()
    for version in range(1, 7):
        device.send(heating_status(plan_version=version))
    await eventually(lambda: adapter.connections.heating_statuses.overflow == 2)
    assert len(warnings_about(caplog, "too many waiting")) == 1
    gate.set()
    await eventually(lambda: len(statuses(adapter)) == 4)
    # The one being published, then the newest: the device's state now.
    assert plan_versions(adapter) == [1, 4, 5, 6]
    device.send(None)
    await device.closes_normally()


def heating_plan(version: int) -> pb.ConnectResponse:
    return pb.ConnectResponse(heating_plan=heating_pb2.HeatingPlan(version=version))


async def test_a_status_carries_the_highest_plan_version_written_to_its_stream() -> None:
    adapter = Adapter()
    device = Device(adapter)
    await device.connect()
    stream = the_stream(adapter, device)

    async def status_sent() -> int:
        """What a status the device sends now says was written."""
        count = len(statuses(adapter))
        device.send(heating_status())
        await eventually(lambda: len(statuses(adapter)) > count)
        return statuses(adapter)[-1].plan_version_written

    async def next_frame() -> pb.ConnectResponse:
        return await anext(device.responses)

    queued = stream.send(heating_plan(5))
    assert await status_sent() == 0  # queued only
    assert (await anext(device.responses)).heating_plan.version == 5
    assert await status_sent() == 0  # handed to grpc, its write not yet over
    older = stream.send(heating_plan(3))
    reading = asyncio.create_task(next_frame())  # grpc asks for the next frame
    await eventually(lambda: queued.done())
    assert queued.result() is Delivery.WRITTEN
    assert await status_sent() == 5
    assert (await reading).heating_plan.version == 3
    reading = asyncio.create_task(next_frame())
    await eventually(lambda: older.done())
    # The highest written, not the last.
    assert await status_sent() == 5
    device.send(None)
    with pytest.raises(StopAsyncIteration):
        await reading


async def held_one(adapter: Adapter, device: Device, plan_version: int) -> None:
    """Spend the stream's burst (ten, with plan versions below `plan_version`), then send
    `plan_version`, which is held."""
    for version in range(plan_version - 10, plan_version):
        device.send(heating_status(plan_version=version))
    await eventually(lambda: len(statuses(adapter)) == 10)
    device.send(heating_status(plan_version=plan_version))
    await eventually(lambda: adapter.connections.heating_statuses.rate_limited == 1)


async def test_a_newer_status_never_overtakes_a_held_one_it_takes_its_place() -> None:
    # A token every 0.1 s of the adapter's clock, a burst of ten.
    adapter = Adapter(heating_statuses_per_minute=600)
    device = Device(adapter)
    await device.connect()
    stream = the_stream(adapter, device)
    await held_one(adapter, device, plan_version=10)

    # Tokens for two: one would let 11 go at once, the other the held 10 after it.
    adapter.now += 0.2
    device.send(heating_status(plan_version=11))
    await eventually(
        lambda: (
            11 in plan_versions(adapter)
            and stream.held_heating_status is None
            and stream.unpublished_statuses is None
        )
    )

    assert plan_versions(adapter) == [*range(10), 11]
    counters = adapter.connections.heating_statuses
    assert (counters.accepted, counters.rate_limited) == (11, 2)
    device.send(None)
    await device.closes_normally()


async def test_a_held_status_is_stamped_when_it_arrived_not_when_it_went_out() -> None:
    adapter = Adapter(heating_statuses_per_minute=600)
    device = Device(adapter)
    await device.connect()
    stream = the_stream(adapter, device)
    adapter.wall = WALL + 5
    await held_one(adapter, device, plan_version=10)
    adapter.wall = WALL + 9
    device.send(pb.ConnectRequest(heartbeat=pb.Heartbeat()))
    await eventually(lambda: stream.last_seen_time == WALL + 9)

    adapter.now += 0.1
    await eventually(lambda: 10 in plan_versions(adapter))

    released = statuses(adapter)[-1]
    assert released.occur_time.seconds == int(WALL) + 5
    assert released.connect_time.seconds == int(WALL)
    device.send(None)
    await device.closes_normally()


async def test_an_invalid_status_spends_no_token_and_does_not_replace_a_held_one() -> None:
    adapter = Adapter(heating_statuses_per_minute=600)
    device = Device(adapter)
    await device.connect()
    for _ in range(10):
        device.send(heating_status(plan_version=1, target_celsius=float("nan")))
    await held_one(adapter, device, plan_version=12)  # ten sent at once: the whole burst
    counters = adapter.connections.heating_statuses
    assert (counters.rejected, counters.accepted) == (10, 10)

    device.send(heating_status(plan_version=13, target_celsius=float("inf")))
    await eventually(lambda: counters.rejected == 11)
    adapter.now += 0.1

    await eventually(lambda: 12 in plan_versions(adapter))
    assert plan_versions(adapter) == [*range(2, 13)]
    device.send(None)
    await device.closes_normally()
