"""The streams this replica holds: one `Stream` per connected device.

A `Stream` is the state of one connection, kept small (10,000 of them per
process is the target): who, since when, last heard, the commands waiting to
be written, and why it ended. It does no I/O; the connection's handler writes
what `next_outgoing` hands it, and whoever ends the stream first (the device,
the liveness sweeper, a newer stream, a revocation, shutdown) calls `end`.
"""

import asyncio
from collections import deque
from collections.abc import Callable, Iterator
from typing import Protocol, TypeAlias

from warmhouse.device_adapter.v1 import device_adapter_pb2 as pb

from services.runtime.errors import Conflict, DomainError, Unauthenticated, Unavailable

DisconnectReason: TypeAlias = pb.DisconnectReason.ValueType


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


# A command frame and whether grpc wrote it (True) or the stream ended first (False).
Outgoing = tuple[pb.ConnectResponse, "asyncio.Future[bool]"]


class Stream:
    __slots__ = (
        "_ended",
        "_on_end",
        "_outgoing",
        "_waiter",
        "announced",
        "connect_time",
        "connection_id",
        "device_id",
        "error",
        "firmware_version",
        "last_seen_monotonic",
        "last_seen_time",
        "opened",
        "reason",
        "subscription",
        "warned",
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
    ) -> None:
        self.device_id = device_id
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
        # Invalid telemetry is logged once per stream, not once per frame.
        self.warned = False
        self._on_end = on_end
        self._ended = False
        # Made on the first command: most streams never get one.
        self._outgoing: deque[Outgoing] | None = None
        self._waiter: asyncio.Future[None] | None = None

    @property
    def ended(self) -> bool:
        return self._ended

    def saw_frame(self, monotonic: float, wall: float) -> None:
        self.last_seen_monotonic = monotonic
        self.last_seen_time = wall

    def send(self, frame: pb.ConnectResponse) -> "asyncio.Future[bool]":
        """Queue `frame`; the future tells whether it was written."""
        written: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        if self._ended:
            written.set_result(False)
            return written
        if self._outgoing is None:
            self._outgoing = deque()
        self._outgoing.append((frame, written))
        self._wake()
        return written

    async def next_outgoing(self) -> Outgoing | None:
        """The next frame to write, in order; None once the stream has ended."""
        while not self._ended:
            if self._outgoing:
                return self._outgoing.popleft()
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return None

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
            settle(self._outgoing.popleft()[1], ok=False)
        self._wake()
        self._on_end(self)
        return True

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


def settle(written: "asyncio.Future[bool]", ok: bool) -> None:
    """Resolve a command's future, unless its waiter already gave up on it."""
    if not written.done():
        written.set_result(ok)


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
