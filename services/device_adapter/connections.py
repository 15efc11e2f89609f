"""One device's stream, from Hello to its DeviceDisconnected event.

`Connections.serve` is the Connect use case: refuse a throttled client,
authenticate the Hello, register the stream and its live subscription,
announce it, then write commands while a reader task takes in frames. However
the stream ends (the device, silence, a newer stream, a revocation,
shutdown), whoever ends it first calls `Stream.end`; the clean-up (drop the
live subscription, publish DeviceDisconnected) then runs once, in a task of
its own, so a cancelled handler cannot skip it.

What a device sends costs others nothing beyond its share: samples and
heating statuses beyond its stream's rates are dropped, only the first answer
to a command written on its own stream becomes an event, with few of them in
flight per stream, and few of its heating statuses wait to be published.

Events of a stream follow its DeviceConnected: frames are read only once it
is published. Its heating statuses are published one at a time, in the
order they arrived (each is the device's whole state: the last one counts),
each stamped when it arrived with its stream's connect time and the highest
plan version written to the stream by then. Beyond the rate, the newest is
held and later ones take its place: none overtakes an older one.
"""

import asyncio
import logging
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

from google.protobuf.message import Message
from warmhouse.device_adapter.v1 import device_adapter_pb2 as pb
from warmhouse.heating.v1 import heating_pb2

from services.device_adapter.rate import TokenBucket
from services.device_adapter.streams import (
    HEATING_DEVICE_TYPES,
    Delivery,
    DeviceType,
    Stream,
    StreamRegistry,
    Warned,
    ending_error,
    settle,
)
from services.device_adapter.throttle import FailedConnectThrottle, peer_key
from services.device_adapter.validation import (
    HelloFields,
    accepted_heating_status,
    accepted_telemetry,
    check_hello,
    command_answer,
    heating_status_problem,
    stamp,
    telemetry_problem,
)
from services.runtime.errors import (
    DomainError,
    InvalidArgument,
    Throttled,
    Unauthenticated,
    dependency_unavailable,
)

log = logging.getLogger(__name__)
# Acknowledgements of one stream being published at once: per stream, so a
# device answering beyond it loses its own answers, not other devices'.
MAX_PENDING_ACKNOWLEDGEMENTS = 100
# Samples taken from one TelemetrySamples frame (see the proto).
MAX_SAMPLES_PER_FRAME = 100
SAMPLES_PER_SECOND = 20
# A stream may send this many seconds' worth of samples at once.
BURST_SECONDS = 5
# A heating device reports when its state changes: at most about once a
# second on average, with room for a burst of this many (a plan applied, a
# window opened, a slot started, all at once).
HEATING_STATUSES_PER_MINUTE = 60
HEATING_STATUS_BURST = 10
# A stream's heating statuses waiting while an earlier one is published (a
# slow broker retries for seconds); beyond it the oldest waiting one goes:
# the newest is the device's state now.
MAX_UNPUBLISHED_STATUSES = 20


@dataclass(frozen=True)
class AuthenticatedDevice:
    # Canonical UUID text.
    device_id: str
    device_type: DeviceType


class Authenticator(Protocol):
    async def authenticate(self, hello: HelloFields) -> AuthenticatedDevice:
        """The device the Device service confirmed; raises Unauthenticated or Unavailable."""
        ...


class Routes(Protocol):
    async def follow(self, stream: Stream) -> None: ...

    async def announce(self, stream: Stream) -> None: ...

    async def unfollow(self, stream: Stream) -> None: ...

    async def replies_sent(self) -> None: ...


class Events(Protocol):
    async def publish(self, event: Message, msg_id: str) -> None: ...


class TelemetrySink(Protocol):
    def add(self, sample: pb.TelemetryReceived) -> None: ...

    def reject(self) -> None: ...

    def rate_limit(self) -> None: ...


@dataclass(frozen=True)
class ConnectionSettings:
    heartbeat_seconds: int
    hello_seconds: float
    # How long a new stream holds before the first presence report renews it.
    lease_seconds: int = 15
    # Each stream's sustained telemetry rate; BURST_SECONDS of it at once.
    samples_per_second: float = SAMPLES_PER_SECOND
    max_pending_acknowledgements: int = MAX_PENDING_ACKNOWLEDGEMENTS
    # Each heating device's sustained status rate; HEATING_STATUS_BURST at once.
    heating_statuses_per_minute: float = HEATING_STATUSES_PER_MINUTE
    max_unpublished_statuses: int = MAX_UNPUBLISHED_STATUSES


@dataclass
class AnswerCounters:
    """Devices' CommandResult frames so far: for logs, tests and benchmarks."""

    # Published as CommandAcknowledged (or being published).
    forwarded: int = 0
    # Dropped: no command with that id was written on the stream, or it was
    # answered already.
    unexpected: int = 0
    # Dropped: too many of the stream's acknowledgements were being published.
    overflow: int = 0


@dataclass
class HeatingStatusCounters:
    """Devices' HeatingStatus frames so far: for logs, tests and benchmarks."""

    # Handed on to be published as HeatingStatusReceived (at once, or once the
    # rate allowed a held one).
    accepted: int = 0
    # Dropped: the device does not report heating (not a HEATER or CONTROLLER).
    not_heating: int = 0
    # Held beyond the stream's rate: each replaces the one held before it, and
    # only the last is published.
    rate_limited: int = 0
    # Dropped: validation refused it.
    rejected: int = 0
    # Dropped while waiting: newer statuses of its stream filled the queue.
    overflow: int = 0


def _hello_required() -> Unauthenticated:
    return Unauthenticated("HELLO_REQUIRED", "the first frame must be a Hello, sent promptly")


def _shutting_down() -> DomainError:
    error = ending_error(pb.ADAPTER_SHUTDOWN)
    assert error is not None
    return error


def _new_id() -> str:
    return str(uuid.uuid4())


class Connections:
    def __init__(
        self,
        settings: ConnectionSettings,
        authenticator: Authenticator,
        routes: Routes,
        events: Events,
        telemetry: TelemetrySink,
        throttle: FailedConnectThrottle,
        registry: StreamRegistry,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self.answers = AnswerCounters()
        self.heating_statuses = HeatingStatusCounters()
        self._authenticator = authenticator
        self._routes = routes
        self._events = events
        self._telemetry = telemetry
        self._throttle = throttle
        self._registry = registry
        self._clock = clock
        self._wall_clock = wall_clock
        self._stopping = False
        # Streams whose clean-up has not finished, so shutdown can wait for them.
        self._unclosed = 0
        self._all_closed = asyncio.Event()
        self._all_closed.set()
        self._background: set[asyncio.Task[None]] = set()
        self._awaiting_hello: set[asyncio.Timeout] = set()
        # One bound method for every stream, not one per stream.
        self._ended_callback = self._stream_ended

    def _refuse_if_throttled(self, client: str) -> None:
        if self._throttle.blocked(client):
            raise Throttled(
                "TOO_MANY_FAILED_CONNECTS", "too many failed connects from this address; wait"
            )

    async def serve(
        self, requests: AsyncIterator[pb.ConnectRequest], peer: str
    ) -> AsyncIterator[pb.ConnectResponse]:
        if self._stopping:
            raise _shutting_down()
        client = peer_key(peer)
        frames = aiter(requests)
        # The Hello is read before any refusal: a client still writing it when
        # the stream ends may see grpc's INTERNAL instead of the status sent.
        first = await self._hello(frames)
        # At most so many checks per address at once, and the throttle asked
        # once it is this one's turn: streams opened together, Hellos sent
        # together, cannot all be guesses before the first failure counts.
        async with self._throttle.turn(client):
            self._refuse_if_throttled(client)
            try:
                hello = check_hello(first)
                device = await self._authenticator.authenticate(hello)
            except Unauthenticated:
                # Only a refused credential counts (guessing secrets), not a slow
                # or silent client: many devices may share one address.
                self._throttle.record_failure(client)
                raise
        stream = self._new_stream(device, hello.firmware_version)
        reader: asyncio.Task[None] | None = None
        try:
            await self._open(stream)
            if not stream.ended:
                reader = asyncio.create_task(self._read(frames, stream))
                yield pb.ConnectResponse(
                    welcome=pb.Welcome(
                        heartbeat_interval_seconds=self._settings.heartbeat_seconds,
                        server_time=stamp(self._wall_clock()),
                    )
                )
            while (outgoing := await stream.next_outgoing(self._wall_clock)) is not None:
                frame, written = outgoing
                try:
                    yield frame
                except BaseException:
                    settle(written, Delivery.NOT_WRITTEN)
                    raise
                # grpc asks for the next frame only once it wrote this one.
                stream.delivered(frame, written)
        finally:
            # No-op when something else ended it; otherwise the device left
            # (its request stream closed, or grpc cancelled the call).
            stream.end(pb.CLOSED_BY_DEVICE)
            if reader is not None:
                reader.cancel()
        if stream.error is not None:
            raise stream.error

    async def _hello(self, frames: AsyncIterator[pb.ConnectRequest]) -> pb.Hello:
        try:
            async with asyncio.timeout(self._settings.hello_seconds) as waiting:
                # Shutdown cuts the wait short rather than let it hold the stop.
                self._awaiting_hello.add(waiting)
                try:
                    first = await anext(frames, None)
                finally:
                    self._awaiting_hello.discard(waiting)
        except TimeoutError:
            if self._stopping:
                raise _shutting_down() from None
            raise _hello_required() from None
        if first is None or first.WhichOneof("frame") != "hello":
            raise _hello_required()
        return first.hello

    def _new_stream(self, device: AuthenticatedDevice, firmware_version: str) -> Stream:
        self._unclosed += 1
        self._all_closed.clear()
        now = self._clock()
        rate = self._settings.samples_per_second
        return Stream(
            device.device_id,
            _new_id(),
            firmware_version,
            monotonic=now,
            wall=self._wall_clock(),
            on_end=self._ended_callback,
            telemetry_budget=TokenBucket(rate, rate * BURST_SECONDS, now),
            device_type=device.device_type,
            heating_status_budget=self._heating_status_budget(device.device_type, now),
        )

    def _heating_status_budget(self, device_type: DeviceType, now: float) -> TokenBucket | None:
        # Only a heating device's statuses get as far as the budget.
        if device_type not in HEATING_DEVICE_TYPES:
            return None
        per_second = self._settings.heating_statuses_per_minute / 60
        return TokenBucket(per_second, HEATING_STATUS_BURST, now)

    async def _open(self, stream: Stream) -> None:
        """Hold the stream, take over the device's live subjects, announce it.

        Until this returns, the clean-up of a stream that ends is left to it
        (an event must not overtake the DeviceConnected being published).
        """
        try:
            if self._stopping:
                stream.end(pb.ADAPTER_SHUTDOWN)
                return
            previous = self._registry.add(stream)
            if previous is not None:
                previous.end(pb.REPLACED)
            await self._routes.follow(stream)
            if stream.ended:
                return
            # Other replicas end this device's older streams.
            await self._routes.announce(stream)
            if stream.ended:
                return
            # Set before publishing: a publish that timed out may still have landed.
            stream.announced = True
            connected = pb.DeviceConnected(
                device_id=stream.device_id,
                connection_id=stream.connection_id,
                firmware_version=stream.firmware_version,
                occur_time=stamp(stream.connect_time),
                lease_seconds=self._settings.lease_seconds,
            )
            await self._events.publish(connected, _new_id())
        except Exception:
            log.warning("stream of device %s not opened", stream.device_id, exc_info=True)
            stream.end(pb.ADAPTER_SHUTDOWN, dependency_unavailable("NATS"))
        finally:
            stream.opened = True
            if stream.ended:
                self._close_later(stream)

    async def _read(self, frames: AsyncIterator[pb.ConnectRequest], stream: Stream) -> None:
        try:
            async for frame in frames:
                self._receive(stream, frame)
                if stream.ended:
                    return
        except DomainError as error:
            # A frame that does not parse (the guard's check).
            stream.end(pb.CLOSED_BY_DEVICE, error)
        except Exception:  # a broken connection is the device leaving
            log.debug("stream of device %s broke", stream.device_id, exc_info=True)
        stream.end(pb.CLOSED_BY_DEVICE)

    def _receive(self, stream: Stream, frame: pb.ConnectRequest) -> None:
        now = self._clock()
        stream.saw_frame(now, self._wall_clock())
        kind = frame.WhichOneof("frame")
        if kind == "telemetry":
            self._take_sample(stream, frame.telemetry, now)
        elif kind == "samples":
            for telemetry in frame.samples.telemetry[:MAX_SAMPLES_PER_FRAME]:
                self._take_sample(stream, telemetry, now)
        elif kind == "command_result":
            self._take_command_result(stream, frame.command_result)
        elif kind == "heating_status":
            self._take_heating_status(stream, frame.heating_status, now)
        elif kind == "hello":
            stream.end(
                pb.CLOSED_BY_DEVICE,
                InvalidArgument("HELLO_ONLY_ONCE", "Hello is the first frame, and only that"),
            )

    def _take_sample(self, stream: Stream, telemetry: pb.Telemetry, now: float) -> None:
        if stream.allow_sample(now):
            self._take_telemetry(stream, telemetry)
            return
        self._telemetry.rate_limit()
        if stream.warn_once(Warned.RATE_LIMITED):
            log.warning("telemetry from device %s beyond its rate dropped", stream.device_id)

    def _take_telemetry(self, stream: Stream, telemetry: pb.Telemetry) -> None:
        now = stream.last_seen_time
        accepted = accepted_telemetry(telemetry, now)
        if accepted is None:
            self._telemetry.reject()
            if stream.warn_once(Warned.INVALID_TELEMETRY):
                log.warning(
                    "invalid telemetry from device %s dropped: %s",
                    stream.device_id,
                    telemetry_problem(telemetry),
                )
            return
        self._telemetry.add(
            pb.TelemetryReceived(
                device_id=stream.device_id,
                connection_id=stream.connection_id,
                telemetry=accepted,
                occur_time=stamp(now),
            )
        )

    def _take_command_result(self, stream: Stream, result: pb.CommandResult) -> None:
        """Forward the first answer to each command written on this stream;
        any other answer would only cost Device a transaction."""
        answer = command_answer(result)
        if answer is None or not stream.take_answer(answer.command_id):
            self.answers.unexpected += 1
            if stream.warn_once(Warned.UNEXPECTED_ANSWER):
                log.warning(
                    "device %s answered a command not written on its stream, or twice;"
                    " such answers are dropped",
                    stream.device_id,
                )
            return
        if stream.pending_acknowledgements >= self._settings.max_pending_acknowledgements:
            self.answers.overflow += 1
            if stream.warn_once(Warned.ANSWERS_PENDING):
                log.warning(
                    "acknowledgements of device %s dropped: too many pending", stream.device_id
                )
            return
        self.answers.forwarded += 1
        event = pb.CommandAcknowledged(
            device_id=stream.device_id,
            command_id=answer.command_id,
            ok=answer.ok,
            message=answer.message,
            occur_time=stamp(stream.last_seen_time),
        )
        # The same answer to the same command is one event (a device repeats
        # its answer when a command arrives again after a reconnect).
        msg_id = f"{stream.device_id}-{answer.command_id}-acknowledged"
        stream.pending_acknowledgements += 1
        self._in_background(self._acknowledge(stream, event, msg_id))

    def _take_heating_status(
        self, stream: Stream, status: heating_pb2.HeatingStatus, now: float
    ) -> None:
        counters = self.heating_statuses
        if not stream.reports_heating:
            counters.not_heating += 1
            if stream.warn_once(Warned.NOT_A_HEATING_DEVICE):
                log.warning(
                    "heating status from device %s dropped: it is not a heating device",
                    stream.device_id,
                )
            return
        # Checked before the rate: an invalid status spends no token and never
        # replaces a valid one waiting.
        accepted = accepted_heating_status(status)
        if accepted is None:
            counters.rejected += 1
            if stream.warn_once(Warned.INVALID_HEATING_STATUS):
                log.warning(
                    "invalid heating status from device %s dropped: %s",
                    stream.device_id,
                    heating_status_problem(status),
                )
            return
        event = pb.HeatingStatusReceived(
            device_id=stream.device_id,
            connection_id=stream.connection_id,
            status=accepted,
            occur_time=stamp(stream.last_seen_time),
            connect_time=stamp(stream.connect_time),
            plan_version_written=stream.plan_version_written,
        )
        # While one is held, a newer one must not overtake it: it takes its place.
        if stream.held_heating_status is None and stream.allow_heating_status(now):
            counters.accepted += 1
            self._publish_in_order(stream, event)
            return
        counters.rate_limited += 1
        if stream.warn_once(Warned.HEATING_STATUS_RATE_LIMITED):
            log.warning(
                "heating statuses from device %s beyond its rate: only the newest is kept",
                stream.device_id,
            )
        self._hold_newest(stream, event)

    def _hold_newest(self, stream: Stream, event: pb.HeatingStatusReceived) -> None:
        """Keep the newest status beyond the rate and send it once the rate allows, so the
        last word of a burst is never the one lost."""
        releasing = stream.held_heating_status is not None
        stream.held_heating_status = event
        if not releasing:
            self._in_background(self._release_held(stream))

    async def _release_held(self, stream: Stream) -> None:
        """Publish the held status when a token comes (a newer one may replace it
        meanwhile); over once nothing is held or the stream ended."""
        interval = 60 / self._settings.heating_statuses_per_minute
        while not stream.ended and stream.held_heating_status is not None:
            await asyncio.sleep(interval)
            held = stream.held_heating_status
            if held is not None and stream.allow_heating_status(self._clock()):
                stream.held_heating_status = None
                self.heating_statuses.accepted += 1
                self._publish_in_order(stream, held)

    def _publish_in_order(self, stream: Stream, event: pb.HeatingStatusReceived) -> None:
        """Publish `event` after the stream's earlier statuses (the oldest waiting one
        goes when too many wait)."""
        waiting = stream.unpublished_statuses
        if waiting is None:
            stream.unpublished_statuses = deque()
            self._in_background(self._publish_statuses(stream, event))
            return
        if len(waiting) >= self._settings.max_unpublished_statuses:
            waiting.popleft()
            self.heating_statuses.overflow += 1
            if stream.warn_once(Warned.HEATING_STATUSES_PENDING):
                log.warning(
                    "heating statuses of device %s dropped: too many waiting to be published",
                    stream.device_id,
                )
        waiting.append(event)

    async def _publish_statuses(self, stream: Stream, first: pb.HeatingStatusReceived) -> None:
        """Publish `first`, then the stream's statuses waiting behind it, one at a time."""
        waiting = stream.unpublished_statuses
        assert waiting is not None
        try:
            await self._publish_quietly(first, _new_id())
            while waiting:
                await self._publish_quietly(waiting.popleft(), _new_id())
        finally:
            stream.unpublished_statuses = None

    async def _acknowledge(self, stream: Stream, event: Message, msg_id: str) -> None:
        try:
            await self._publish_quietly(event, msg_id)
        finally:
            stream.pending_acknowledgements -= 1

    async def _publish_quietly(self, event: Message, msg_id: str) -> None:
        try:
            await self._events.publish(event, msg_id)
        except Exception:
            log.exception("%s not published", event.DESCRIPTOR.name)

    def _in_background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _stream_ended(self, stream: Stream) -> None:
        self._registry.remove(stream)
        if stream.opened:
            self._close_later(stream)

    def _close_later(self, stream: Stream) -> None:
        self._in_background(self._close(stream))

    async def _close(self, stream: Stream) -> None:
        try:
            await self._routes.unfollow(stream)
            if stream.announced:
                assert stream.reason is not None, "an ended stream has its reason"
                disconnected = pb.DeviceDisconnected(
                    device_id=stream.device_id,
                    connection_id=stream.connection_id,
                    reason=stream.reason,
                    last_seen_time=stamp(stream.last_seen_time),
                    occur_time=stamp(self._wall_clock()),
                    connect_time=stamp(stream.connect_time),
                )
                await self._publish_quietly(disconnected, _new_id())
        finally:
            self._unclosed -= 1
            if self._unclosed == 0:
                self._all_closed.set()

    async def shut_down(self, within_seconds: float) -> None:
        """End every stream (ADAPTER_SHUTDOWN) and wait, at most `within_seconds`,
        until their DeviceDisconnected events and pending replies are out."""
        self._stopping = True
        for waiting in self._awaiting_hello:
            waiting.reschedule(asyncio.get_running_loop().time())
        streams = list(self._registry)
        for stream in streams:
            stream.end(pb.ADAPTER_SHUTDOWN)
        try:
            async with asyncio.timeout(within_seconds):
                await self._all_closed.wait()
                await self._routes.replies_sent()
                if self._background:
                    await asyncio.wait(set(self._background))
        except TimeoutError:
            log.warning(
                "shutdown: not every stream's end was published in time",
                extra={"unclosed": self._unclosed},
            )
        log.info("shutdown: streams ended", extra={"streams": len(streams)})

    @property
    def awaiting_hello(self) -> int:
        """Connections still waiting for their first frame."""
        return len(self._awaiting_hello)
