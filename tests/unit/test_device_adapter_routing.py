"""Live subjects: the holder's answers and the asker's reading of them, with a fake broker."""

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import cast

import nats.errors
import pytest
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from warmhouse.device_adapter.v1 import device_adapter_pb2 as pb
from warmhouse.heating.v1 import heating_pb2

from services.device_adapter import routing
from services.device_adapter.routing import (
    EXPIRED,
    MALFORMED_COMMAND,
    MALFORMED_PLAN,
    QUEUE_FULL,
    DeviceNotConnected,
    LiveClient,
    LiveRoutes,
)
from services.device_adapter.streams import MAX_QUEUED_FRAMES, Delivery, Stream
from services.device_adapter.validation import stamp
from services.runtime.device_links import (
    ERROR_HEADER,
    NOT_CONNECTED,
    LiveAction,
    live_subject,
    live_wildcard,
)
from services.runtime.errors import InvalidArgument, Unavailable

DEVICE = str(uuid.uuid4())
Callback = Callable[[Msg], Awaitable[None]]


class FakeSubscription:
    def __init__(self) -> None:
        self.unsubscribed = False

    async def unsubscribe(self, limit: int = 0) -> None:
        self.unsubscribed = True


class FakeNats:
    def __init__(self) -> None:
        self.callbacks: dict[str, Callback] = {}
        self.flushed = 0
        self.published: list[tuple[str, bytes, dict[str, str] | None]] = []
        self.answer: Msg | Exception = nats.errors.NoRespondersError()
        self.requested: list[tuple[str, bytes]] = []

    async def subscribe(self, subject: str, cb: Callback) -> FakeSubscription:
        self.callbacks[subject] = cb
        return FakeSubscription()

    async def flush(self, timeout: int) -> None:  # noqa: ASYNC109 - the signature we fake
        self.flushed += 1

    async def publish(
        self, subject: str, payload: bytes = b"", headers: dict[str, str] | None = None
    ) -> None:
        self.published.append((subject, payload, headers))

    async def request(
        self,
        subject: str,
        payload: bytes,
        timeout: float,  # noqa: ASYNC109 - the signature we fake
    ) -> Msg:
        self.requested.append((subject, payload))
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer

    async def deliver(self, action: LiveAction, data: bytes, reply: str = "") -> None:
        message = Msg(
            _client=cast(NatsClient, self),
            subject=live_subject(DEVICE, action),
            reply=reply,
            data=data,
        )
        await self.callbacks[live_wildcard(DEVICE)](message)

    def replies(self, inbox: str) -> list[tuple[bytes, dict[str, str] | None]]:
        return [(data, headers) for subject, data, headers in self.published if subject == inbox]


def new_stream(connection_id: str = "c1") -> Stream:
    return Stream(DEVICE, connection_id, "2.0", monotonic=0.0, wall=1_800_000_000.0)


async def followed(broker: FakeNats, stream: Stream) -> LiveRoutes:
    routes = LiveRoutes(cast(NatsClient, broker))
    await routes.follow(stream)
    return routes


def command(command_id: str | None = None) -> pb.Command:
    return pb.Command(command_id=command_id or str(uuid.uuid4()), kind=pb.TURN_ON)


def plan(version: int = 1) -> heating_pb2.HeatingPlan:
    return heating_pb2.HeatingPlan(
        version=version, mode=heating_pb2.HEAT, target_celsius=20.0, time_zone="UTC"
    )


# What a command request and a plan request ask to write: the same way.
WRITES = [
    pytest.param(LiveAction.COMMAND, lambda: pb.ConnectResponse(command=command()), id="command"),
    pytest.param(LiveAction.PLAN, lambda: pb.ConnectResponse(heating_plan=plan()), id="plan"),
]
FrameMaker = Callable[[], pb.ConnectResponse]


def body(frame: pb.ConnectResponse) -> bytes:
    """The live request's body that asks to write `frame`."""
    kind = frame.WhichOneof("frame")
    assert kind is not None
    sent = getattr(frame, kind)
    assert isinstance(sent, pb.Command | heating_pb2.HeatingPlan)
    return sent.SerializeToString()


async def test_following_takes_the_devices_subjects_before_announcing() -> None:
    broker, stream = FakeNats(), new_stream()
    routes = await followed(broker, stream)
    assert list(broker.callbacks) == [live_wildcard(DEVICE)]
    assert broker.flushed == 1
    await routes.announce(stream)
    assert broker.published == [(live_subject(DEVICE, LiveAction.REPLACE), b"c1", None)]
    subscription = stream.subscription
    await routes.unfollow(stream)
    assert isinstance(subscription, FakeSubscription)
    assert subscription.unsubscribed
    assert stream.subscription is None


@pytest.mark.parametrize(("action", "make_frame"), WRITES)
async def test_a_request_is_answered_once_written_with_the_stream_it_went_to(
    action: LiveAction, make_frame: FrameMaker
) -> None:
    broker, stream = FakeNats(), new_stream()
    routes = await followed(broker, stream)
    sent = make_frame()
    await broker.deliver(action, body(sent), reply="inbox.1")
    queued = await stream.next_outgoing()
    assert queued is not None
    frame, written = queued
    assert frame == sent
    for _ in range(5):
        await asyncio.sleep(0)
    assert broker.replies("inbox.1") == []
    written.set_result(Delivery.WRITTEN)
    await routes.replies_sent()
    assert broker.replies("inbox.1") == [(stream.connection_id.encode(), None)]


@pytest.mark.parametrize(("action", "make_frame"), WRITES)
async def test_a_request_for_an_ended_stream_is_answered_not_connected(
    action: LiveAction, make_frame: FrameMaker
) -> None:
    broker, stream = FakeNats(), new_stream()
    routes = await followed(broker, stream)
    stream.end(pb.CLOSED_BY_DEVICE)
    await broker.deliver(action, body(make_frame()), reply="inbox.2")
    await routes.replies_sent()
    assert broker.replies("inbox.2") == [(b"", {ERROR_HEADER: NOT_CONNECTED})]


@pytest.mark.parametrize(("action", "make_frame"), WRITES)
async def test_a_request_whose_write_times_out_is_withdrawn(
    monkeypatch: pytest.MonkeyPatch, action: LiveAction, make_frame: FrameMaker
) -> None:
    monkeypatch.setattr(routing, "WRITE_TIMEOUT_SECONDS", 0.01)
    broker, stream = FakeNats(), new_stream()
    routes = await followed(broker, stream)
    await broker.deliver(action, body(make_frame()), reply="inbox.5")
    await routes.replies_sent()
    assert broker.replies("inbox.5") == [(b"", {ERROR_HEADER: NOT_CONNECTED})]
    # The writer, once it gets going, writes what still waits, not the withdrawn one.
    following = command()
    stream.send(pb.ConnectResponse(command=following))
    queued = await stream.next_outgoing()
    assert queued is not None
    assert queued[0].command == following


async def test_a_command_that_expired_before_it_could_be_written_is_answered_expired() -> None:
    broker, stream = FakeNats(), new_stream()
    routes = await followed(broker, stream)
    stale = command()
    stale.expire_time.CopyFrom(stamp(1_000_000_000.0))
    await broker.deliver(LiveAction.COMMAND, stale.SerializeToString(), reply="inbox.6")
    writer = asyncio.create_task(stream.next_outgoing())
    await routes.replies_sent()
    assert broker.replies("inbox.6") == [(b"", {ERROR_HEADER: EXPIRED})]
    assert not writer.done()
    writer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await writer


@pytest.mark.parametrize(("action", "make_frame"), WRITES)
async def test_a_request_for_a_full_queue_is_refused_at_once(
    action: LiveAction, make_frame: FrameMaker
) -> None:
    broker, stream = FakeNats(), new_stream()
    routes = await followed(broker, stream)
    for _ in range(MAX_QUEUED_FRAMES):
        stream.send(pb.ConnectResponse(command=command()))
    await broker.deliver(action, body(make_frame()), reply="inbox.7")
    await routes.replies_sent()
    assert broker.replies("inbox.7") == [(b"", {ERROR_HEADER: QUEUE_FULL})]
    assert stream.queued == MAX_QUEUED_FRAMES


@pytest.mark.parametrize(
    ("action", "malformed"),
    [(LiveAction.COMMAND, MALFORMED_COMMAND), (LiveAction.PLAN, MALFORMED_PLAN)],
)
async def test_a_malformed_request_is_answered_as_such(action: LiveAction, malformed: str) -> None:
    broker, stream = FakeNats(), new_stream()
    routes = await followed(broker, stream)
    await broker.deliver(action, b"\xff\xff\xff", reply="inbox.3")
    await routes.replies_sent()
    assert broker.replies("inbox.3") == [(b"", {ERROR_HEADER: malformed})]
    assert stream.queued == 0
    assert not stream.ended


async def test_plans_and_commands_are_written_in_the_order_they_arrive() -> None:
    broker, stream = FakeNats(), new_stream("c3")
    routes = await followed(broker, stream)
    first, then, last = command(), plan(version=4), command()
    await broker.deliver(LiveAction.COMMAND, first.SerializeToString(), reply="inbox.a")
    await broker.deliver(LiveAction.PLAN, then.SerializeToString(), reply="inbox.b")
    await broker.deliver(LiveAction.COMMAND, last.SerializeToString(), reply="inbox.c")
    frames: list[pb.ConnectResponse] = []
    for _ in range(3):
        queued = await stream.next_outgoing()
        assert queued is not None
        frames.append(queued[0])
        queued[1].set_result(Delivery.WRITTEN)
    assert frames == [
        pb.ConnectResponse(command=first),
        pb.ConnectResponse(heating_plan=then),
        pb.ConnectResponse(command=last),
    ]
    await routes.replies_sent()
    for inbox in ("inbox.a", "inbox.b", "inbox.c"):
        assert broker.replies(inbox) == [(b"c3", None)]


async def test_a_plan_however_old_is_never_expired() -> None:
    # Only a command carries an expire_time; a plan waits for the writer.
    broker, stream = FakeNats(), new_stream()
    routes = await followed(broker, stream)
    await broker.deliver(LiveAction.PLAN, plan().SerializeToString(), reply="inbox.d")
    queued = await stream.next_outgoing(wall_clock=lambda: 4_000_000_000.0)
    assert queued is not None
    queued[1].set_result(Delivery.WRITTEN)
    await routes.replies_sent()
    assert broker.replies("inbox.d") == [(stream.connection_id.encode(), None)]


async def test_a_replacement_ends_only_other_connections() -> None:
    broker, stream = FakeNats(), new_stream("mine")
    await followed(broker, stream)
    await broker.deliver(LiveAction.REPLACE, b"mine")
    assert not stream.ended
    await broker.deliver(LiveAction.REPLACE, b"newer")
    assert stream.reason == pb.REPLACED


async def test_a_revocation_ends_the_stream() -> None:
    broker, stream = FakeNats(), new_stream()
    await followed(broker, stream)
    await broker.deliver(LiveAction.REVOKE, b"")
    assert stream.reason == pb.CREDENTIALS_REVOKED


async def test_the_holder_describes_its_connection() -> None:
    broker, stream = FakeNats(), new_stream("c9")
    stream.saw_frame(5.0, 1_800_000_042.0)
    await followed(broker, stream)
    await broker.deliver(LiveAction.CONNECTION, b"", reply="inbox.4")
    ((data, headers),) = broker.replies("inbox.4")
    described = pb.GetConnectionResponse.FromString(data)
    assert described.connected
    assert (described.connection_id, described.firmware_version) == ("c9", "2.0")
    assert described.connect_time.seconds == 1_800_000_000
    assert described.last_seen_time.seconds == 1_800_000_042
    assert headers is None


def client(broker: FakeNats) -> LiveClient:
    return LiveClient(cast(NatsClient, broker))


def reply(data: bytes = b"", headers: dict[str, str] | None = None) -> Msg:
    return Msg(_client=cast(NatsClient, None), data=data, headers=headers)


async def test_sending_to_a_device_nobody_holds_fails_its_precondition() -> None:
    broker = FakeNats()
    with pytest.raises(DeviceNotConnected) as refused:
        await client(broker).send_command(DEVICE, command())
    assert refused.value.reason == "DEVICE_NOT_CONNECTED"
    assert broker.requested[0][0] == live_subject(DEVICE, LiveAction.COMMAND)


async def test_a_holder_that_could_not_write_means_not_connected() -> None:
    broker = FakeNats()
    broker.answer = reply(headers={ERROR_HEADER: NOT_CONNECTED})
    with pytest.raises(DeviceNotConnected):
        await client(broker).send_command(DEVICE, command())


async def test_a_written_command_returns() -> None:
    broker = FakeNats()
    broker.answer = reply()
    sent = command()
    await client(broker).send_command(DEVICE.upper(), sent)
    assert broker.requested == [
        (live_subject(DEVICE, LiveAction.COMMAND), sent.SerializeToString())
    ]


async def test_a_broker_that_does_not_answer_is_unavailable() -> None:
    broker = FakeNats()
    broker.answer = nats.errors.TimeoutError()
    with pytest.raises(Unavailable):
        await client(broker).send_command(DEVICE, command())


@pytest.mark.parametrize(
    ("device_id", "sent"),
    [
        ("not-a-device", command()),
        (DEVICE, command("not-a-command")),
        (DEVICE, pb.Command(command_id=str(uuid.uuid4()))),
    ],
)
async def test_malformed_requests_are_refused_before_asking(
    device_id: str, sent: pb.Command
) -> None:
    broker = FakeNats()
    with pytest.raises(InvalidArgument):
        await client(broker).send_command(device_id, sent)
    assert broker.requested == []


async def test_a_device_nobody_holds_is_not_connected() -> None:
    broker = FakeNats()
    assert not (await client(broker).connection(DEVICE)).connected


async def test_the_holders_description_is_passed_on() -> None:
    broker = FakeNats()
    described = pb.GetConnectionResponse(connected=True, connection_id="c1")
    broker.answer = reply(described.SerializeToString())
    assert await client(broker).connection(DEVICE) == described
