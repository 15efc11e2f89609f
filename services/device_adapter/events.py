"""Publishing the adapter's events straight to JetStream, with retries.

The adapter has no database, hence no outbox: an event is published when it
happens and retried a few times with the same `Nats-Msg-Id`, so a retry of a
publish that did land is dropped by the broker's duplicate window.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

import nats.errors
from google.protobuf.message import Message
from nats.js import JetStreamContext

from services.runtime.loops import raise_if_stopping
from services.runtime.outbox import MSG_ID_HEADER, subject_of

log = logging.getLogger(__name__)
PUBLISH_TIMEOUT_SECONDS = 5.0
# Pauses between attempts: four attempts in all, the last about 1.5 s after the first.
RETRY_DELAYS_SECONDS = (0.1, 0.4, 1.0)

# Failures the same message would meet again: raised at once, never retried.
NOT_RETRIED: tuple[type[Exception], ...] = (nats.errors.MaxPayloadError,)

# (subject, payload, msg id) → acknowledged by the broker, or raises.
PublishFunction = Callable[[str, bytes, str], Awaitable[None]]


def jetstream_publisher(
    jetstream: JetStreamContext, timeout: float = PUBLISH_TIMEOUT_SECONDS
) -> PublishFunction:
    async def publish(subject: str, payload: bytes, msg_id: str) -> None:
        await jetstream.publish(subject, payload, timeout=timeout, headers={MSG_ID_HEADER: msg_id})

    return publish


async def publish_with_retries(
    publish: PublishFunction,
    subject: str,
    payload: bytes,
    msg_id: str,
    delays: Sequence[float] = RETRY_DELAYS_SECONDS,
) -> None:
    """Publish until acknowledged, at most 1 + len(delays) times; the last failure is raised
    (a NOT_RETRIED one at once)."""
    for attempt in range(len(delays) + 1):
        try:
            await publish(subject, payload, msg_id)
            return
        except NOT_RETRIED:
            raise
        except Exception:
            raise_if_stopping()
            if attempt == len(delays):
                raise
            log.info("publishing %s failed; retrying", subject, exc_info=True)
            await asyncio.sleep(delays[attempt])


class EventPublisher:
    """Publishes one event at a time, retried."""

    def __init__(
        self, publish: PublishFunction, delays: Sequence[float] = RETRY_DELAYS_SECONDS
    ) -> None:
        self._publish = publish
        self._delays = tuple(delays)

    async def publish(self, event: Message, msg_id: str) -> None:
        await publish_with_retries(
            self._publish, subject_of(event), event.SerializeToString(), msg_id, self._delays
        )
