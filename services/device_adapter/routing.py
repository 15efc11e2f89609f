"""Reaching a device's stream over core NATS, on whichever replica holds it.

While a replica holds a stream it subscribes to the device's live subjects
(services/runtime/device_links.py): "command" and "plan" requests are
written to the stream, in the order they arrive, "replace" and "revoke" end
it, "connection" describes it. Interest disappears with the stream, so "no
responders" means "not connected".

Cost: one nats-py subscription per stream, with its pending queue and the
task nats-py runs for a subscription with a callback: about 5 kB of the
about 18 kB of Python objects a stream costs (measured with 1,000 streams).
One wildcard subscription would save that, but every replica would then
receive, and answer, every device's requests.
"""

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

import nats.errors
from google.protobuf.message import DecodeError
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from warmhouse.device_adapter.v1 import device_adapter_pb2 as pb
from warmhouse.heating.v1 import heating_pb2

from services.device_adapter.streams import Delivery, Stream, Warned
from services.device_adapter.validation import stamp
from services.runtime.device_links import (
    ERROR_HEADER,
    NOT_CONNECTED,
    REQUEST_TIMEOUT_SECONDS,
    LiveAction,
    action_of,
    ask_holder,
    live_subject,
    live_wildcard,
)
from services.runtime.errors import DomainError, InvalidArgument, dependency_unavailable
from services.runtime.request import parse_uuid

log = logging.getLogger(__name__)
# The holder answers before an asker with the default timeout
# (device_links.REQUEST_TIMEOUT_SECONDS) gives up.
WRITE_TIMEOUT_SECONDS = 4.0
FLUSH_TIMEOUT_SECONDS = 5
# A command or a plan that does not parse: a caller's bug, answered at once.
MALFORMED_COMMAND = "malformed-command"
MALFORMED_PLAN = "malformed-plan"
# Error header values for a command or plan not written (any value means
# "not written" to the requester, who leaves a command to its own expiry): a
# command's expire_time passed while it waited; the stream's queue was full.
EXPIRED = "expired"
QUEUE_FULL = "queue-full"
_REFUSALS = {
    Delivery.NOT_WRITTEN: NOT_CONNECTED,
    Delivery.EXPIRED: EXPIRED,
    Delivery.QUEUE_FULL: QUEUE_FULL,
}
_KNOWN_KINDS = frozenset(
    value.number
    for value in pb.CommandKind.DESCRIPTOR.values
    if value.number != pb.COMMAND_KIND_UNSPECIFIED
)


def _command_frame(data: bytes) -> pb.ConnectResponse:
    return pb.ConnectResponse(command=pb.Command.FromString(data))


def _plan_frame(data: bytes) -> pb.ConnectResponse:
    return pb.ConnectResponse(heating_plan=heating_pb2.HeatingPlan.FromString(data))


# A request's body → the frame it asks to write (raises DecodeError).
FrameOf = Callable[[bytes], pb.ConnectResponse]


def connection_message(stream: Stream) -> pb.GetConnectionResponse:
    if stream.ended:
        return pb.GetConnectionResponse(connected=False)
    return pb.GetConnectionResponse(
        connected=True,
        connection_id=stream.connection_id,
        connect_time=stamp(stream.connect_time),
        last_seen_time=stamp(stream.last_seen_time),
        firmware_version=stream.firmware_version,
    )


class LiveRoutes:
    """The holder's side: one live subscription per stream."""

    def __init__(self, nats_client: NatsClient) -> None:
        self._nats = nats_client
        # Replies waiting for their command or plan to be written.
        self._replies: set[asyncio.Task[None]] = set()

    async def follow(self, stream: Stream) -> None:
        """Subscribe to the device's live subjects; return once the broker has the interest."""

        async def on_message(message: Msg) -> None:
            await self._dispatch(stream, message)

        stream.subscription = await self._nats.subscribe(
            live_wildcard(stream.device_id), cb=on_message
        )
        await self._nats.flush(timeout=FLUSH_TIMEOUT_SECONDS)

    async def announce(self, stream: Stream) -> None:
        """Tell every replica: streams of this device other than `stream` end."""
        await self._nats.publish(
            live_subject(stream.device_id, LiveAction.REPLACE), stream.connection_id.encode()
        )

    async def unfollow(self, stream: Stream) -> None:
        subscription, stream.subscription = stream.subscription, None
        if subscription is not None:
            # Closed or draining connection: the interest is gone with it.
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()

    async def replies_sent(self) -> None:
        """Until every pending write's reply has gone out (at shutdown)."""
        if self._replies:
            await asyncio.wait(set(self._replies))

    async def _dispatch(self, stream: Stream, message: Msg) -> None:
        action = action_of(message.subject)
        if action is LiveAction.COMMAND:
            self._write(stream, message, _command_frame, MALFORMED_COMMAND)
        elif action is LiveAction.PLAN:
            self._write(stream, message, _plan_frame, MALFORMED_PLAN)
        elif action is LiveAction.REPLACE:
            if message.data != stream.connection_id.encode():
                stream.end(pb.REPLACED)
        elif action is LiveAction.REVOKE:
            stream.end(pb.CREDENTIALS_REVOKED)
        elif action is LiveAction.CONNECTION and message.reply:
            await self._reply(message.reply, connection_message(stream).SerializeToString())

    def _write(self, stream: Stream, message: Msg, frame_of: FrameOf, malformed: str) -> None:
        """Queue the frame `message` asks to write; reply once it is written,
        or with the error header `malformed` when its body does not parse."""
        if not message.reply:
            return
        try:
            frame = frame_of(message.data)
        except DecodeError:
            log.warning("live request for device %s not written: %s", stream.device_id, malformed)
            self._track(self._reply(message.reply, b"", malformed))
            return
        # Queued now, commands and plans alike, in arrival order; answered once written.
        written = stream.send(frame)
        self._track(self._reply_when_written(message.reply, stream, written))

    def _track(self, reply: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(reply)
        self._replies.add(task)
        task.add_done_callback(self._replies.discard)

    async def _reply_when_written(
        self, reply: str, stream: Stream, written: "asyncio.Future[Delivery]"
    ) -> None:
        try:
            async with asyncio.timeout(WRITE_TIMEOUT_SECONDS):
                delivery = await asyncio.shield(written)
        except TimeoutError:
            # Withdrawn, so the writer skips it: written later, it would reach
            # the device after its requester was told it was not written (and
            # sends it again). Unless it was settled just now.
            written.cancel()
            delivery = Delivery.NOT_WRITTEN if written.cancelled() else written.result()
        if delivery is Delivery.QUEUE_FULL and stream.warn_once(Warned.QUEUE_FULL):
            log.warning("frames for device %s refused: its queue is full", stream.device_id)
        # Which stream it went to: a later stream of the device gets it again
        # if this one ends before the device answers.
        if delivery is Delivery.WRITTEN:
            await self._reply(reply, stream.connection_id.encode())
        else:
            await self._reply(reply, b"", _REFUSALS[delivery])

    async def _reply(self, reply: str, data: bytes, error: str | None = None) -> None:
        headers = {ERROR_HEADER: error} if error is not None else None
        try:
            await self._nats.publish(reply, data, headers=headers)
        except Exception:  # the requester times out and retries
            log.info("live reply not sent", exc_info=True)


class DeviceNotConnected(DomainError):
    # The caller may retry once the device reconnects (DeviceConnected).
    def __init__(self) -> None:
        super().__init__("DEVICE_NOT_CONNECTED", "the device has no open stream")


class LiveClient:
    """The asker's side: SendCommand and GetConnection, through the holder."""

    def __init__(
        self, nats_client: NatsClient, timeout_seconds: float = REQUEST_TIMEOUT_SECONDS
    ) -> None:
        self._nats = nats_client
        self._timeout = timeout_seconds

    async def _request(self, device_id: str, action: LiveAction, payload: bytes) -> bytes | None:
        """The holder's reply; None when no replica holds the device or it could not act."""
        device = parse_uuid(device_id, "deviceId")
        try:
            return await ask_holder(self._nats, device, action, payload, self._timeout)
        except (nats.errors.Error, TimeoutError, OSError):
            raise dependency_unavailable("NATS") from None

    async def send_command(self, device_id: str, command: pb.Command) -> None:
        """Returns once the holder wrote `command` to the stream."""
        _check_command(command)
        reply = await self._request(device_id, LiveAction.COMMAND, command.SerializeToString())
        if reply is None:
            raise DeviceNotConnected()

    async def connection(self, device_id: str) -> pb.GetConnectionResponse:
        reply = await self._request(device_id, LiveAction.CONNECTION, b"")
        if reply is None:
            return pb.GetConnectionResponse(connected=False)
        try:
            return pb.GetConnectionResponse.FromString(reply)
        except DecodeError:
            raise dependency_unavailable("NATS") from None


def _check_command(command: pb.Command) -> None:
    parse_uuid(command.command_id, "command.commandId")
    if command.kind not in _KNOWN_KINDS:
        raise InvalidArgument("INVALID_COMMAND_KIND", "command.kind is not a known kind")
