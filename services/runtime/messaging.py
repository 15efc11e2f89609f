"""NATS JetStream: connection, streams, and idempotent durable consumers."""

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit, urlunsplit

import nats
import nats.errors
import nats.js.errors
from google.protobuf.message import Message
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, StorageType, StreamConfig
from opentelemetry import trace
from sqlalchemy import text

from services.runtime.database import Connection, Database, Query
from services.runtime.loops import keep_running, raise_if_stopping
from services.runtime.outbox import MSG_ID_HEADER, OutboxRelay
from services.runtime.tracing import extract_context

log = logging.getLogger(__name__)
_tracer = trace.get_tracer("warmhouse.events")
EventT = TypeVar("EventT", bound=Message)


# How long events stay in their stream unless the publisher says otherwise
# (ServiceDescription.event_retention); consumers remember the ids they
# processed a day longer, so a redelivery of anything still in the stream is
# recognised.
EVENT_RETENTION = timedelta(days=30)
REMEMBERED_BEYOND_RETENTION = timedelta(days=1)
_PRUNE_PROCESSED_EVERY_SECONDS = 3600.0


def stream_config(
    service: str,
    retention: timedelta = EVENT_RETENTION,
    max_bytes: int = -1,
    *,
    replicas: int = 1,
) -> StreamConfig:
    """Every service publishes on one stream, `WARMHOUSE_<SERVICE>`, the
    subjects of its proto package (device-adapter: warmhouse.device_adapter.v1),
    kept in `replicas` copies (WARMHOUSE_NATS_STREAM_REPLICAS: 3 on a 3-node
    cluster, so a stream survives losing one node)."""
    package = service.replace("-", "_")
    return StreamConfig(
        name=f"WARMHOUSE_{package.upper()}",
        subjects=[f"warmhouse.{package}.v1.>"],
        storage=StorageType.FILE,
        # Long enough to cover a relay retrying after a crash-restart.
        duplicate_window=min(3600.0, retention.total_seconds()),
        max_age=retention.total_seconds(),
        max_bytes=max_bytes,
        num_replicas=replicas,
    )


async def connect(url: str, name: str, attempts: int = 30) -> NatsClient:
    """Connect, retrying for a while: the broker may be starting alongside us."""
    for attempt in range(1, attempts + 1):
        try:
            return await nats.connect(
                url,
                name=name,
                connect_timeout=2,
                reconnect_time_wait=0.5,
                max_reconnect_attempts=-1,
            )
        except (OSError, nats.errors.NoServersError, TimeoutError):
            if attempt == attempts:
                raise
            log.info("waiting for NATS at %s", _without_credentials(url))
            await asyncio.sleep(1.0)
    raise AssertionError("unreachable")


def _without_credentials(url: str) -> str:
    """The URL as logs may show it: no token, user or password."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


async def ensure_stream(jetstream: JetStreamContext, config: StreamConfig, *, owned: bool) -> None:
    """Make sure the stream exists. Only its owner (the publishing service)
    brings an existing stream to this configuration; a consumer that starts
    first may create it, but never rewrites a stream it does not own."""
    try:
        await jetstream.add_stream(config)
    except nats.js.errors.BadRequestError:
        if owned:
            await jetstream.update_stream(config)


async def pull_batches(
    pull: JetStreamContext.PullSubscription, batch_size: int, liveness_every: int = 5
) -> AsyncIterator[list[Msg]]:
    """Batches from a pull consumer, forever.

    A consumer can vanish while idle (an ephemeral one on a broker restart)
    and fetches then just time out, so every few idle seconds its existence is
    checked; a missing consumer raises, and the caller subscribes anew.
    """
    idle = 0
    while True:
        # nats-py's fetch may swallow a cancellation and simply return.
        raise_if_stopping()
        try:
            messages = await pull.fetch(batch_size, timeout=1.0)
        # nats-py raises its own TimeoutError or asyncio's; both are the builtin.
        except TimeoutError:
            idle += 1
            if idle % liveness_every == 0:
                await pull.consumer_info()
            continue
        idle = 0
        yield messages


@dataclass(frozen=True)
class EventContext:
    event_id: str
    subject: str
    # 1 on the first delivery, counting up on each redelivery.
    delivery_attempt: int = 1
    # In-process effects that must wait until the event's transaction commits
    # (e.g. start delivering to a device that has just connected).
    committed_actions: list[Callable[[], None]] = field(default_factory=list)

    def after_commit(self, action: Callable[[], None]) -> None:
        self.committed_actions.append(action)


Handler = Callable[[Connection, EventT, EventContext], Awaitable[None]]


def event_uuid(value: str, what: str, context: EventContext) -> uuid.UUID | None:
    """An id an event names; None (logged) when it is no UUID: redelivering the
    event would not make it readable, so its handler skips it."""
    try:
        return uuid.UUID(value)
    except ValueError:
        log.error("event %s names no %s; ignored", context.event_id, what)
        return None


STRICT_ACK_WAIT_SECONDS = 10.0


@dataclass(frozen=True)
class EventRoute(Generic[EventT]):
    """One more event type a consumer reads, parsed as what, handled how."""

    event_type: type[EventT]
    handle: Handler[EventT]

    @property
    def subject(self) -> str:
        return str(self.event_type.DESCRIPTOR.full_name)


@dataclass(frozen=True)
class Subscription(Generic[EventT]):
    """One durable consumer: which events, parsed as what, handled how."""

    durable: str
    stream: str
    subject: str
    event_type: type[EventT]
    handle: Handler[EventT]
    # How long its stream keeps events (the publisher's event_retention).
    retention: timedelta = EVENT_RETENTION
    # More event types of the same stream this consumer reads, all in the
    # order they were published: an alarm and its all-clear must not overtake
    # each other, as two consumers' events may.
    more: tuple[EventRoute[Any], ...] = ()
    # Events delivered and not yet acknowledged. 1 keeps the order even
    # through a redelivery (an event that failed comes again before the next).
    max_ack_pending: int = 1000
    # How long an event delivered and not acknowledged waits before it is
    # delivered again; also how long one handed to a replica that died
    # stays with it.
    ack_wait_seconds: float = 30.0

    @property
    def subjects(self) -> list[str]:
        return [self.subject, *(route.subject for route in self.more)]

    def route(self, subject: str) -> EventRoute[Any]:
        if subject == self.subject:
            return EventRoute(self.event_type, self.handle)
        return next(route for route in self.more if route.subject == subject)

    @classmethod
    def of_event(
        cls,
        durable: str,
        publisher: str,
        event_type: type[EventT],
        handle: Handler[EventT],
        retention: timedelta = EVENT_RETENTION,
    ) -> "Subscription[EventT]":
        """Every event of one type `publisher` (a service name) publishes."""
        return cls(
            durable=durable,
            stream=str(stream_config(publisher).name),
            subject=str(event_type.DESCRIPTOR.full_name),
            event_type=event_type,
            handle=handle,
            retention=retention,
        )

    @classmethod
    def of_events(
        cls,
        durable: str,
        publisher: str,
        first: EventRoute[EventT],
        *more: EventRoute[Any],
        strictly_ordered: bool = False,
        ack_wait_seconds: float | None = None,
    ) -> "Subscription[EventT]":
        """Several event types `publisher` publishes, read in publication order;
        `strictly_ordered`: one at a time, so not even a redelivery overtakes,
        with a short ack wait (an event held by a replica that died holds up
        every one behind it until it is delivered again)."""
        return cls(
            durable=durable,
            stream=str(stream_config(publisher).name),
            subject=first.subject,
            event_type=first.event_type,
            handle=first.handle,
            more=more,
            max_ack_pending=1 if strictly_ordered else 1000,
            ack_wait_seconds=ack_wait_seconds
            or (STRICT_ACK_WAIT_SECONDS if strictly_ordered else 30.0),
        )


class EventConsumer(Generic[EventT]):
    """Pulls from a durable consumer; each event's effect and its id are
    committed in one transaction, so a redelivery has no second effect."""

    def __init__(
        self,
        database: Database,
        jetstream: JetStreamContext,
        subscription: Subscription[EventT],
        batch_size: int = 32,
        *,
        relay: OutboxRelay | None = None,
    ) -> None:
        # Woken after an event's transaction wrote events of this service's own.
        self._relay = relay
        self._database = database
        self._jetstream = jetstream
        self._subscription = subscription
        self._batch_size = batch_size
        self.name = f"consumer {subscription.durable}"

    async def run(self) -> None:
        await keep_running(self.name, self._consume)

    async def _consume(self) -> None:
        sub = self._subscription
        subjects = sub.subjects
        config = ConsumerConfig(
            ack_wait=sub.ack_wait_seconds,
            max_ack_pending=sub.max_ack_pending,
            filter_subjects=subjects if len(subjects) > 1 else None,
        )
        pull = await self._jetstream.pull_subscribe(
            sub.subject, durable=sub.durable, stream=sub.stream, config=config
        )
        next_prune = 0.0
        try:
            # More than may be pending would keep each fetch waiting its whole timeout.
            batch_size = min(self._batch_size, sub.max_ack_pending)
            async for messages in pull_batches(pull, batch_size):
                for message in messages:
                    await self.process(message)
                if time.monotonic() >= next_prune:
                    await self.forget_processed()
                    next_prune = time.monotonic() + _PRUNE_PROCESSED_EVERY_SECONDS
        finally:
            # A pull answer arriving after cancellation would sit unread and
            # make the connection's drain wait its whole timeout at stop. This
            # closes only the reply inbox; the durable consumer stays.
            with contextlib.suppress(Exception):
                await pull.unsubscribe()

    async def forget_processed(self) -> None:
        """Forget the ids of events no longer in the stream: none can come again."""
        age = self._subscription.retention + REMEMBERED_BEYOND_RETENTION
        async with self._database.connection() as connection:
            await connection.execute(
                _FORGET_PROCESSED, consumer=self._subscription.durable, age=age.total_seconds()
            )

    async def process(self, message: Msg) -> None:
        sub = self._subscription
        headers = message.headers or {}
        context = EventContext(
            event_id=headers.get(MSG_ID_HEADER, ""),
            subject=message.subject,
            delivery_attempt=message.metadata.num_delivered or 1,
        )
        with _tracer.start_as_current_span(
            f"consume {message.subject}",
            context=extract_context(headers),
            kind=trace.SpanKind.CONSUMER,
            attributes={"messaging.message.id": context.event_id},
        ):
            try:
                route = sub.route(message.subject)
                event = route.event_type.FromString(message.data)
                async with self._database.transaction() as connection:
                    if await _first_time(connection, sub.durable, context.event_id):
                        await route.handle(connection, event, context)
                events_written = connection.events_written
            except Exception:
                log.exception("event %s failed; will be redelivered", context.event_id)
                await message.nak(delay=2.0)
                return
            await message.ack()
            if events_written and self._relay is not None:
                self._relay.wake()
            for action in context.committed_actions:
                action()


_RECORD_PROCESSED = Query(
    text(
        "INSERT INTO processed_events (consumer, event_id) VALUES (:consumer, :event_id)"
        " ON CONFLICT DO NOTHING RETURNING 1"
    )
)


_FORGET_PROCESSED = Query(
    text(
        "DELETE FROM processed_events WHERE consumer = :consumer"
        " AND processed_at < now() - make_interval(secs => :age)"
    )
)


async def _first_time(connection: Connection, consumer: str, event_id: str) -> bool:
    if not event_id:
        raise ValueError("event without a Nats-Msg-Id header cannot be de-duplicated")
    inserted = await connection.fetchval(_RECORD_PROCESSED, consumer=consumer, event_id=event_id)
    return inserted is not None


# How long after (re)connecting a service waits before trusting its projections.
SETTLE_SECONDS = 2.0


class BrokerSettled:
    """Whether events from the broker can be trusted to have arrived.

    A projection fed by events may be missing some while the broker is
    unreachable, and for a moment after the connection returns (its consumers
    still fetching the backlog). Until `settle_seconds` after the connection
    last came (back), a service asks the owner of the data instead. Run it as
    a worker: it watches the connection, so an idle service does not start the
    wait only at its next request.
    """

    name = "broker-settled"

    def __init__(
        self,
        nats: NatsClient,
        settle_seconds: float = SETTLE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        watch_every: float = 0.1,
    ) -> None:
        self._nats = nats
        self._settle_seconds = settle_seconds
        self._clock = clock
        self._watch_every = watch_every
        # From start: the consumers are fetching what was published meanwhile.
        self._connected_since: float | None = clock() if nats.is_connected else None
        self._reconnects = int(nats.stats["reconnects"])

    def _observe(self) -> None:
        if not self._nats.is_connected:
            self._connected_since = None
            return
        # A disconnection between two looks shows only in the reconnect count.
        reconnects = int(self._nats.stats["reconnects"])
        if self._connected_since is None or reconnects != self._reconnects:
            self._connected_since, self._reconnects = self._clock(), reconnects

    def __call__(self) -> bool:
        self._observe()
        since = self._connected_since
        return since is not None and self._clock() - since >= self._settle_seconds

    async def run(self) -> None:
        while True:
            raise_if_stopping()
            self._observe()
            await asyncio.sleep(self._watch_every)
