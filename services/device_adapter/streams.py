"""The streams this replica holds: one `Stream` per connected device.

A `Stream` is the state of one connection, kept small (10,000 of them per
process is the target): who, since when, last heard, the commands and
heating plans waiting to be written (one bounded queue, so they keep their
order), the commands written lately and the highest plan version written,
its telemetry and heating status budgets, the heating statuses waiting to be
published, and why it ended. It does no I/O; the connection's handler writes
what `next_outgoing` hands it (and says when grpc wrote it: `delivered`), and
whoever ends the stream first (the device, the liveness sweeper, a newer
stream, a revocation, shutdown) calls `end`.
"""

import asyncio
import enum
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from typing import Protocol, TypeAlias

from warmhouse.device.v1 import device_pb2
from warmhouse.device_adapter.v1 import device_adapter_pb2 as pb

from services.device_adapter.rate import TokenBucket
from services.device_adapter.validation import canonical_uuid
from services.runtime import heating_model
from services.runtime.errors import Conflict, DomainError, Unauthenticated, Unavailable

DisconnectReason: TypeAlias = pb.DisconnectReason.ValueType
DeviceType: TypeAlias = device_pb2.DeviceType.ValueType
# The devices that follow a heating plan and report a HeatingStatus, as the
# Device service's enum values.
HEATING_DEVICE_TYPES = frozenset(
    device_pb2.DeviceType.Value(name) for name in heating_model.HEATING_DEVICE_TYPES
)
# Commands and plans waiting to be written; beyond this one is refused at once
# (Device sends one at a time per device, so only a stuck stream fills it).
MAX_QUEUED_FRAMES = 256
# Commands written lately, whose answers the stream accepts.
MAX_REMEMBERED_COMMANDS = 1000


class Following(Protocol):
    """A live subscription held for the stream (nats-py's Subscription is one)."""

    async def unsubscribe(self, limit: int = 0) -> None: ...


def ending_error(reason: DisconnectReason) -> DomainError | None:
    """The status the device sees when its stream ends for `reason` (None: OK).

    A silent device gets UNAVAILABLE, like a shutdown: both mean "reconnect",
    and DEADLINE_EXCEEDED would blame a deadline the device never set.
    """
    if reason == pb.HEARTBEAT_TIMEOUT:
        return Unavailable("HEARTBEAT_TIMEOUT", "no frame for three heartbeat intervals; reconnect")
    if reason == pb.ADAPTER_SHUTDOWN:
        return Unavailable("ADAPTER_SHUTDOWN", "the adapter is restarting; reconnect")
    if reason == pb.REPLACED:
        # ABORTED, not UNAVAILABLE: a device that retried would replace the
        # newer stream in turn.
        return Conflict("STREAM_REPLACED", "a newer stream of this device replaced this one")
    if reason == pb.CREDENTIALS_REVOKED:
        return Unauthenticated("CREDENTIALS_REVOKED", "the device's credentials no longer hold")
    return None


class Delivery(enum.Enum):
    """What became of a frame (a command or a plan) queued on a stream."""

    # grpc wrote it.
    WRITTEN = "written"
    # The stream ended first (or the write failed).
    NOT_WRITTEN = "not-written"
    # A command whose expire_time passed while it waited: the device would
    # only refuse it. (A plan has no expiry.)
    EXPIRED = "expired"
    # The stream's queue was full.
    QUEUE_FULL = "queue-full"


class Warned(enum.IntFlag):
    """What a stream has logged a warning about: once per stream, not per frame."""

    INVALID_TELEMETRY = enum.auto()
    RATE_LIMITED = enum.auto()
    UNEXPECTED_ANSWER = enum.auto()
    ANSWERS_PENDING = enum.auto()
    QUEUE_FULL = enum.auto()
    NOT_A_HEATING_DEVICE = enum.auto()
    HEATING_STATUS_RATE_LIMITED = enum.auto()
    INVALID_HEATING_STATUS = enum.auto()
    HEATING_STATUSES_PENDING = enum.auto()


# A frame for the device and what became of it. Its requester may cancel the future
# (it gave up waiting): the frame is then withdrawn.
Outgoing = tuple[pb.ConnectResponse, "asyncio.Future[Delivery]"]


def command_expired(frame: pb.ConnectResponse, now_seconds: float) -> bool:
    """Whether `frame` is a command whose expire_time is before `now_seconds` (wall clock)."""
    if frame.WhichOneof("frame") != "command" or not frame.command.HasField("expire_time"):
        return False
    return frame.command.expire_time.ToNanoseconds() < round(now_seconds * 1e9)


class Stream:
    __slots__ = (
        "_ended",
        "_heating_status_budget",
        "_on_end",
        "_outgoing",
        "_telemetry_budget",
        "_waiter",
        "_warned",
        "_written",
        "announced",
        "connect_time",
        "connection_id",
        "device_id",
        "device_type",
        "error",
        "firmware_version",
        "held_heating_status",
        "last_seen_monotonic",
        "last_seen_time",
        "opened",
        "pending_acknowledgements",
        "plan_version_written",
        "reason",
        "subscription",
        "unpublished_statuses",
    )

    def __init__(
        self,
        device_id: str,
        connection_id: str,
        firmware_version: str,
        *,
        monotonic: float,
        wall: float,
        on_end: Callable[["Stream"], None] = lambda stream: None,
        telemetry_budget: TokenBucket | None = None,
        device_type: DeviceType = device_pb2.DEVICE_TYPE_UNSPECIFIED,
        heating_status_budget: TokenBucket | None = None,
    ) -> None:
        """`telemetry_budget`, `heating_status_budget`: the samples and the
        heating statuses the stream may send (None: no limit)."""
        self.device_id = device_id
        # As the Device service told when it authenticated the device.
        self.device_type = device_type
        self.connection_id = connection_id
        self.firmware_version = firmware_version
        # Wall-clock seconds, for events; monotonic ones decide liveness.
        self.connect_time = wall
        self.last_seen_time = wall
        self.last_seen_monotonic = monotonic
        self.reason: DisconnectReason | None = None
        self.error: DomainError | None = None
        # Set by the connection's handler: its live subscription; whether its
        # opening is over (it then no longer owns the clean-up); whether
        # DeviceConnected went (or may have gone) out.
        self.subscription: Following | None = None
        self.opened = False
        self.announced = False
        # CommandAcknowledged events of this stream being published.
        self.pending_acknowledgements = 0
        # HeatingStatusReceived events of this stream waiting behind the one
        # being published, oldest first; None while none is being published.
        self.unpublished_statuses: deque[pb.HeatingStatusReceived] | None = None
        # The newest heating status beyond the stream's rate, as received (stamped
        # then), published when the rate allows.
        self.held_heating_status: pb.HeatingStatusReceived | None = None
        # The highest HeatingPlan version grpc wrote to the stream; 0 before any.
        self.plan_version_written = 0
        self._warned = Warned(0)
        self._telemetry_budget = telemetry_budget
        self._heating_status_budget = heating_status_budget
        self._on_end = on_end
        self._ended = False
        # Made on the first frame queued: most streams never get one.
        self._outgoing: deque[Outgoing] | None = None
        self._written: OrderedDict[str, None] | None = None
        self._waiter: asyncio.Future[None] | None = None

    @property
    def ended(self) -> bool:
        return self._ended

    def saw_frame(self, monotonic: float, wall: float) -> None:
        self.last_seen_monotonic = monotonic
        self.last_seen_time = wall

    def warn_once(self, about: Warned) -> bool:
        """True the first time it is asked `about` something on this stream."""
        if about in self._warned:
            return False
        self._warned |= about
        return True

    def allow_sample(self, monotonic: float) -> bool:
        """Whether a sample arriving at `monotonic` is within the stream's budget."""
        return self._telemetry_budget is None or self._telemetry_budget.take(monotonic)

    @property
    def reports_heating(self) -> bool:
        """Whether the device follows heating plans and reports its HeatingStatus."""
        return self.device_type in HEATING_DEVICE_TYPES

    def allow_heating_status(self, monotonic: float) -> bool:
        """Whether a heating status arriving at `monotonic` is within the stream's budget."""
        budget = self._heating_status_budget
        return budget is None or budget.take(monotonic)

    def send(self, frame: pb.ConnectResponse) -> "asyncio.Future[Delivery]":
        """Queue `frame`; the future tells what became of it (at once when refused)."""
        written: asyncio.Future[Delivery] = asyncio.get_running_loop().create_future()
        if self._ended:
            written.set_result(Delivery.NOT_WRITTEN)
            return written
        if self._outgoing is None:
            self._outgoing = deque()
        elif len(self._outgoing) >= MAX_QUEUED_FRAMES:
            self._drop_withdrawn()
            if len(self._outgoing) >= MAX_QUEUED_FRAMES:
                written.set_result(Delivery.QUEUE_FULL)
                return written
        self._outgoing.append((frame, written))
        self._wake()
        return written

    def _drop_withdrawn(self) -> None:
        assert self._outgoing is not None
        self._outgoing = deque(item for item in self._outgoing if not item[1].done())

    @property
    def queued(self) -> int:
        """Frames waiting to be written (withdrawn ones included until skipped)."""
        return len(self._outgoing) if self._outgoing is not None else 0

    async def next_outgoing(self, wall_clock: Callable[[], float] = time.time) -> Outgoing | None:
        """The next frame to write, in order; None once the stream has ended.

        Skipped: frames their requester withdrew, and commands that expired
        while they waited (settled EXPIRED). A command handed out counts as
        written from then on: its answer may arrive before grpc says so.
        """
        while not self._ended:
            while self._outgoing:
                frame, written = self._outgoing.popleft()
                if written.done():
                    continue
                if command_expired(frame, wall_clock()):
                    written.set_result(Delivery.EXPIRED)
                    continue
                self._remember_written(frame)
                return frame, written
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return None

    def delivered(self, frame: pb.ConnectResponse, written: "asyncio.Future[Delivery]") -> None:
        """grpc wrote `frame` (it asked for the next one): settle it WRITTEN, and a
        plan's version counts as written to the stream from now on.

        Recorded here, as the write completes, rather than where the requester
        learns of it a loop turn later: a plan written after its requester gave
        up waiting still reached the device."""
        if frame.WhichOneof("frame") == "heating_plan":
            self.plan_version_written = max(self.plan_version_written, frame.heating_plan.version)
        settle(written, Delivery.WRITTEN)

    def _remember_written(self, frame: pb.ConnectResponse) -> None:
        if frame.WhichOneof("frame") != "command":
            return
        # Answers are compared in canonical form; a non-UUID id gets none we accept.
        command_id = canonical_uuid(frame.command.command_id)
        if command_id is None:
            return
        if self._written is None:
            self._written = OrderedDict()
        self._written[command_id] = None
        self._written.move_to_end(command_id)
        if len(self._written) > MAX_REMEMBERED_COMMANDS:
            self._written.popitem(last=False)

    def take_answer(self, command_id: str) -> bool:
        """Whether `command_id` (canonical) was written on this stream and not yet
        answered; it then counts as answered."""
        if self._written is None or command_id not in self._written:
            return False
        del self._written[command_id]
        return True

    def end(self, reason: DisconnectReason, error: DomainError | None = None) -> bool:
        """End the stream (the first reason wins); return whether this call ended it.

        `error` is the status the device gets, by default the reason's.
        """
        if self._ended:
            return False
        self._ended = True
        self.reason = reason
        self.error = error if error is not None else ending_error(reason)
        while self._outgoing:
            settle(self._outgoing.popleft()[1], Delivery.NOT_WRITTEN)
        self._wake()
        self._on_end(self)
        return True

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


def settle(written: "asyncio.Future[Delivery]", outcome: Delivery) -> None:
    """Resolve a queued frame's future, unless its waiter already gave up on it."""
    if not written.done():
        written.set_result(outcome)


class StreamRegistry:
    """The streams this replica holds, one per device: the newest wins."""

    def __init__(self) -> None:
        self._by_device: dict[str, Stream] = {}

    def add(self, stream: Stream) -> Stream | None:
        """Hold `stream`; return the device's stream it replaces, if any."""
        previous = self._by_device.get(stream.device_id)
        self._by_device[stream.device_id] = stream
        return previous if previous is not stream else None

    def remove(self, stream: Stream) -> bool:
        """Forget `stream`, unless a newer stream of its device took its place."""
        if self._by_device.get(stream.device_id) is stream:
            del self._by_device[stream.device_id]
            return True
        return False

    def get(self, device_id: str) -> Stream | None:
        return self._by_device.get(device_id)

    def __len__(self) -> int:
        return len(self._by_device)

    def __iter__(self) -> Iterator[Stream]:
        """A snapshot: streams may end (and leave) while it is walked."""
        return iter(list(self._by_device.values()))
