"""The outbox, the relay and idempotent consumers against real Postgres and JetStream."""

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import nats
import nats.errors
import pytest
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy import text
from warmhouse.user.v1 import user_pb2

from services.devstack.nats_process import NatsProcess
from services.runtime import database as db
from services.runtime import messaging
from services.runtime.database import Connection, Database, Query
from services.runtime.messaging import EventConsumer, EventContext, Subscription
from services.runtime.outbox import MSG_ID_HEADER, OutboxRelay, add_event
from tests.polling import eventually

STREAM = messaging.stream_config("user")
STREAM_NAME = str(STREAM.name)
UNPUBLISHED = Query(text("SELECT count(*) FROM outbox WHERE published_at IS NULL"))


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[Database]:
    engine = await Database.connect(database_url)
    await db.apply_migrations(engine, "runtime", db.RUNTIME_MIGRATIONS)
    yield engine
    await engine.close()


@contextlib.asynccontextmanager
async def connected(nats_url: str) -> AsyncIterator[JetStreamContext]:
    client = await messaging.connect(nats_url, "test")
    jetstream = client.jetstream()
    await messaging.ensure_stream(jetstream, STREAM, owned=True)
    try:
        yield jetstream
    finally:
        await client.close()


@pytest.fixture
async def jetstream(nats_server: NatsProcess) -> AsyncIterator[JetStreamContext]:
    async with connected(nats_server.url) as jetstream:
        yield jetstream


@pytest.fixture
async def private_jetstream(private_nats: NatsProcess) -> AsyncIterator[JetStreamContext]:
    """JetStream on this test's own broker, which the test may stop and restart."""
    async with connected(private_nats.url) as jetstream:
        yield jetstream


def registered(email: str) -> user_pb2.UserRegistered:
    return user_pb2.UserRegistered(user_id=str(uuid.uuid4()), email=email, role=user_pb2.USER)


async def write_event(engine: Database, event: user_pb2.UserRegistered) -> str:
    async with engine.transaction() as conn:
        return str(await add_event(conn, event))


async def stored_with_id(jetstream: JetStreamContext, event_id: str) -> list[bytes]:
    """Every message on the stream whose Nats-Msg-Id is `event_id`."""
    subscription = await jetstream.subscribe(
        "warmhouse.user.v1.UserRegistered", stream=STREAM_NAME, ordered_consumer=True
    )
    found, info = [], await jetstream.stream_info(STREAM_NAME)
    try:
        for _ in range(info.state.messages):
            message = await subscription.next_msg(timeout=2)
            if (message.headers or {}).get(MSG_ID_HEADER) == event_id:
                found.append(message.data)
    except nats.errors.TimeoutError:
        pass
    finally:
        await subscription.unsubscribe()
    return found


async def unpublished(engine: Database) -> int:
    async with engine.connection() as conn:
        return int(await conn.fetchval(UNPUBLISHED))


async def test_an_event_written_before_a_restart_is_published_after_it(
    engine: Database, jetstream: JetStreamContext
) -> None:
    # The service committed the change and its event, then died before relaying.
    event = registered("before-crash@example.com")
    event_id = await write_event(engine, event)
    assert await unpublished(engine) == 1
    # A restarted service's relay finds the row and publishes it.
    assert await OutboxRelay(engine, jetstream).publish_pending() == 1
    assert await unpublished(engine) == 0
    stored = await stored_with_id(jetstream, event_id)
    assert [user_pb2.UserRegistered.FromString(data) for data in stored] == [event]


async def test_a_broker_restart_loses_and_duplicates_nothing(
    engine: Database, private_jetstream: JetStreamContext, private_nats: NatsProcess
) -> None:
    jetstream = private_jetstream
    relay = OutboxRelay(engine, jetstream, poll_seconds=0.1)
    running = asyncio.create_task(relay.run())

    async def all_published() -> bool:
        return await unpublished(engine) == 0

    try:
        private_nats.stop()
        event_id = await write_event(engine, registered("during-outage@example.com"))
        relay.wake()
        # Deliberate: ten relay polls' time in which nothing may be marked published.
        await asyncio.sleep(1.0)
        assert await unpublished(engine) == 1, (
            "nothing can be acknowledged while the broker is down"
        )
        private_nats.start()
        await eventually(all_published, within=15, what="the relay publishing after the restart")
    finally:
        running.cancel()
    # A retried publish carries the same Nats-Msg-Id, so JetStream stores it once.
    assert len(await stored_with_id(jetstream, event_id)) == 1


async def test_republishing_an_event_id_is_deduplicated_by_the_broker(
    jetstream: JetStreamContext,
) -> None:
    event_id = str(uuid.uuid4())
    payload = registered("twice@example.com").SerializeToString()
    first = await jetstream.publish(
        "warmhouse.user.v1.UserRegistered", payload, headers={MSG_ID_HEADER: event_id}
    )
    again = await jetstream.publish(
        "warmhouse.user.v1.UserRegistered", payload, headers={MSG_ID_HEADER: event_id}
    )
    assert not first.duplicate
    assert again.duplicate


async def test_a_redelivered_event_has_no_second_effect(
    engine: Database, jetstream: JetStreamContext
) -> None:
    async with engine.transaction() as conn:
        await conn.execute(Query(text("CREATE TABLE welcome_emails (user_id text, event_id text)")))

    async def send_welcome(
        conn: Connection, event: user_pb2.UserRegistered, context: EventContext
    ) -> None:
        await conn.execute(
            Query(text("INSERT INTO welcome_emails VALUES (:u, :e)")),
            u=event.user_id,
            e=context.event_id,
        )

    durable = f"test-{uuid.uuid4().hex[:8]}"
    consumer = EventConsumer(
        engine,
        jetstream,
        Subscription(
            durable,
            STREAM_NAME,
            "warmhouse.user.v1.UserRegistered",
            user_pb2.UserRegistered,
            send_welcome,
        ),
    )
    event = registered("redelivered@example.com")
    await jetstream.publish(
        "warmhouse.user.v1.UserRegistered",
        event.SerializeToString(),
        headers={MSG_ID_HEADER: str(uuid.uuid4())},
    )
    pull = await jetstream.pull_subscribe(
        "warmhouse.user.v1.UserRegistered",
        durable=durable,
        stream=STREAM_NAME,
        config=ConsumerConfig(ack_wait=1.0),
    )

    async def delivery_of_the_event() -> Msg | None:
        for message in await pull.fetch(100, timeout=1):
            if user_pb2.UserRegistered.FromString(message.data) == event:
                return message
            await message.ack()
        return None

    async def next_delivery() -> Msg:
        message = await eventually(delivery_of_the_event, what="a delivery of the event")
        assert message is not None  # eventually() returns only what is truthy
        return message

    first = await next_delivery()

    async def crash_before_ack() -> None:
        return None

    first.ack = crash_before_ack  # type: ignore[method-assign]
    await consumer.process(first)  # effect committed, ack lost
    redelivered = await next_delivery()  # JetStream redelivers after ack_wait
    assert redelivered.metadata.num_delivered == 2
    await consumer.process(redelivered)
    async with engine.connection() as conn:
        rows = await conn.fetch(Query(text("SELECT user_id FROM welcome_emails")))
        effects = [row["user_id"] for row in rows]
    assert effects == [event.user_id]


async def test_migrations_apply_once(engine: Database) -> None:
    assert await db.apply_migrations(engine, "runtime", db.RUNTIME_MIGRATIONS) == []


async def test_a_consumers_span_joins_the_producers_trace(
    engine: Database, jetstream: JetStreamContext, spans: InMemorySpanExporter
) -> None:
    async def ignore(conn: Connection, event: user_pb2.UserRegistered, _: EventContext) -> None:
        return None

    durable = f"trace-{uuid.uuid4().hex[:8]}"
    subject = "warmhouse.user.v1.UserRegistered"
    consumer = EventConsumer(
        engine,
        jetstream,
        Subscription(durable, STREAM_NAME, subject, user_pb2.UserRegistered, ignore),
    )
    pull = await jetstream.pull_subscribe(subject, durable=durable, stream=STREAM_NAME)
    for stale in await pull.fetch(1000, timeout=2):
        await stale.ack()
    with trace.get_tracer("test").start_as_current_span("register") as producer:
        event_id = await write_event(engine, registered("traced@example.com"))
    await OutboxRelay(engine, jetstream).publish_pending()
    [message] = await pull.fetch(1, timeout=5)
    assert (message.headers or {}).get(MSG_ID_HEADER) == event_id
    await consumer.process(message)
    consumed = [s for s in spans.get_finished_spans() if s.name == f"consume {subject}"]
    assert consumed
    assert consumed[-1].context.trace_id == producer.get_span_context().trace_id


async def test_a_consumer_keeps_consuming_after_a_broker_restart(
    engine: Database, private_jetstream: JetStreamContext, private_nats: NatsProcess
) -> None:
    jetstream = private_jetstream
    async with engine.transaction() as conn:
        await conn.execute(Query(text("CREATE TABLE seen (email text)")))

    async def remember(conn: Connection, event: user_pb2.UserRegistered, _: EventContext) -> None:
        await conn.execute(Query(text("INSERT INTO seen VALUES (:e)")), e=event.email)

    subject = "warmhouse.user.v1.UserRegistered"
    consumer = EventConsumer(
        engine,
        jetstream,
        Subscription(
            f"restart-{uuid.uuid4().hex[:8]}",
            STREAM_NAME,
            subject,
            user_pb2.UserRegistered,
            remember,
        ),
    )

    async def publish_until_acknowledged(email: str) -> None:
        payload = registered(email).SerializeToString()
        headers = {MSG_ID_HEADER: str(uuid.uuid4())}
        # Errors (the client still reconnecting) are retried; one Nats-Msg-Id, one message.
        await eventually(
            lambda: jetstream.publish(subject, payload, headers=headers, timeout=1),
            within=20,
            interval=0.2,
            what=f"JetStream acknowledging {email}",
        )

    async def seen(email: str) -> bool:
        async with engine.connection() as conn:
            found = await conn.fetchval(Query(text("SELECT 1 FROM seen WHERE email = :e")), e=email)
            return found is not None

    running = asyncio.create_task(consumer.run())
    try:
        await publish_until_acknowledged("before-restart@example.com")
        await eventually(lambda: seen("before-restart@example.com"), within=20, what="consuming")
        private_nats.stop()
        private_nats.start()
        await publish_until_acknowledged("after-restart@example.com")
        await eventually(
            lambda: seen("after-restart@example.com"), within=20, what="consuming after restart"
        )
    finally:
        running.cancel()


async def test_the_broker_refuses_clients_without_its_token(nats_server: NatsProcess) -> None:
    # Else any local process could publish a forged membership event.
    with pytest.raises(nats.errors.Error, match=r"[Aa]uthorization"):
        await nats.connect(nats_server.address, allow_reconnect=False, connect_timeout=2)
    wrong_url = nats_server.address.replace("nats://", "nats://not-the-token@")
    with pytest.raises(nats.errors.Error, match=r"[Aa]uthorization"):
        await nats.connect(wrong_url, allow_reconnect=False, connect_timeout=2)
    client = await nats.connect(nats_server.url, allow_reconnect=False, connect_timeout=2)
    assert client.is_connected
    await client.close()


async def test_a_consumer_forgets_the_ids_of_events_its_stream_no_longer_holds(
    engine: Database, jetstream: JetStreamContext
) -> None:
    async def nothing(conn: Connection, event: user_pb2.UserRegistered, _: EventContext) -> None:
        return None

    durable = f"test-{uuid.uuid4().hex[:8]}"
    subscription = Subscription(
        durable,
        STREAM_NAME,
        "warmhouse.user.v1.UserRegistered",
        user_pb2.UserRegistered,
        nothing,
        retention=timedelta(days=1),
    )
    remember = Query(
        text(
            "INSERT INTO processed_events (consumer, event_id, processed_at)"
            " VALUES (:consumer, :event_id, now() - make_interval(hours => :hours))"
        )
    )
    async with engine.transaction() as conn:
        # Older than the stream's day plus the day of margin, and within it.
        for event_id, hours in (("gone", 49), ("kept", 47)):
            await conn.execute(remember, consumer=durable, event_id=event_id, hours=hours)
        # Another consumer's old id is not this one's to forget.
        await conn.execute(remember, consumer=f"{durable}-other", event_id="gone", hours=49)
    await EventConsumer(engine, jetstream, subscription).forget_processed()
    async with engine.connection() as conn:
        rows = await conn.fetch(
            Query(text("SELECT consumer, event_id FROM processed_events WHERE consumer LIKE :c")),
            c=f"{durable}%",
        )
    assert sorted((row["consumer"], row["event_id"]) for row in rows) == [
        (durable, "kept"),
        (f"{durable}-other", "gone"),
    ]


def test_a_stream_keeps_events_as_long_as_its_publisher_says() -> None:
    config = messaging.stream_config("device-adapter", timedelta(hours=2), max_bytes=1024)
    assert (config.name, config.subjects) == (
        "WARMHOUSE_DEVICE_ADAPTER",
        ["warmhouse.device_adapter.v1.>"],
    )
    assert (config.max_age, config.max_bytes) == (7200.0, 1024)
    # A duplicate window beyond the stream's age is refused by the broker.
    assert config.duplicate_window == 3600.0


async def test_events_a_consumer_writes_are_published_at_once_not_at_the_relays_next_poll(
    engine: Database, jetstream: JetStreamContext
) -> None:
    written: list[str] = []

    async def welcome(conn: Connection, event: user_pb2.UserRegistered, _: EventContext) -> None:
        written.append(str(await add_event(conn, registered(f"echo-{event.email}"))))

    # A poll long past the test's patience: only a wake-up publishes in time.
    relay = OutboxRelay(engine, jetstream, poll_seconds=300.0)
    relaying = asyncio.create_task(relay.run())
    durable = f"test-{uuid.uuid4().hex[:8]}"
    subject = "warmhouse.user.v1.UserRegistered"
    consumer = EventConsumer(
        engine,
        jetstream,
        Subscription(durable, STREAM_NAME, subject, user_pb2.UserRegistered, welcome),
        relay=relay,
    )
    try:
        await asyncio.sleep(0.5)  # the relay's first round is over; it waits for its poll
        await jetstream.publish(
            subject,
            registered("woken@example.com").SerializeToString(),
            headers={MSG_ID_HEADER: str(uuid.uuid4())},
        )
        pull = await jetstream.pull_subscribe(
            subject, durable=durable, stream=STREAM_NAME, config=ConsumerConfig()
        )
        for message in await pull.fetch(1000, timeout=2):
            if user_pb2.UserRegistered.FromString(message.data).email == "woken@example.com":
                await consumer.process(message)
        [event_id] = written
        await eventually(lambda: stored_with_id(jetstream, event_id), within=5, what="published")
    finally:
        relaying.cancel()
        await asyncio.gather(relaying, return_exceptions=True)
