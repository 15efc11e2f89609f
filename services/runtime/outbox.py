"""Transactional outbox: events are rows written with the state change.

`add_event` is called inside the use case's transaction. `OutboxRelay` later
publishes unpublished rows to JetStream with `Nats-Msg-Id` = event id, so a
retry after a timeout or a crash is de-duplicated by the broker (and, beyond
its window, by consumers' processed-event records). A row is marked published
only after JetStream acknowledged it: nothing is lost if the broker or the
service restarts in between.
"""

import asyncio
import contextlib
import logging
import time
import uuid
from datetime import timedelta

from google.protobuf.message import Message
from nats.js import JetStreamContext
from sqlalchemy import (
    Column,
    DateTime,
    LargeBinary,
    MetaData,
    Table,
    Text,
    Uuid,
    bindparam,
    func,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from services.runtime.database import Connection, Database, Query
from services.runtime.loops import raise_if_stopping
from services.runtime.tracing import inject_headers

log = logging.getLogger(__name__)
MSG_ID_HEADER = "Nats-Msg-Id"
_PRUNE_EVERY_SECONDS = 600.0

outbox = Table(
    "outbox",
    MetaData(),
    Column("event_id", Uuid, primary_key=True),
    Column("subject", Text, nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("headers", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("published_at", DateTime(timezone=True)),
)
_ADD = Query(
    outbox.insert().values(
        event_id=bindparam("event_id"),
        subject=bindparam("subject"),
        payload=bindparam("payload"),
        headers=bindparam("headers"),
    )
)
_PENDING = Query(
    select(outbox.c.event_id, outbox.c.subject, outbox.c.payload, outbox.c.headers)
    .where(outbox.c.published_at.is_(None))
    .order_by(outbox.c.created_at)
    .limit(bindparam("batch"))
    .with_for_update(skip_locked=True)
)
_MARK_PUBLISHED = Query(
    text("UPDATE outbox SET published_at = now() WHERE event_id = ANY(:event_ids)")
)
_PRUNE = Query(text("DELETE FROM outbox WHERE published_at < now() - make_interval(secs => :age)"))


def subject_of(event: Message) -> str:
    """Events travel on their full proto name, e.g. warmhouse.user.v1.UserRegistered."""
    return str(event.DESCRIPTOR.full_name)


async def add_event(connection: Connection, event: Message) -> uuid.UUID:
    event_id = uuid.uuid4()
    await connection.execute(
        _ADD,
        event_id=event_id,
        subject=subject_of(event),
        payload=event.SerializeToString(),
        headers=inject_headers(),
    )
    connection.events_written += 1
    return event_id


class OutboxRelay:
    """Publishes outbox rows in commit order until acknowledged."""

    name = "outbox-relay"

    def __init__(
        self,
        database: Database,
        jetstream: JetStreamContext,
        batch_size: int = 100,
        poll_seconds: float = 1.0,
        retention: timedelta = timedelta(days=7),
    ) -> None:
        self._database = database
        self._jetstream = jetstream
        self._batch_size = batch_size
        self._poll_seconds = poll_seconds
        self._retention = retention
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Publish soon: a transaction that wrote events has committed."""
        self._wake.set()

    async def run(self) -> None:
        failures = 0
        next_prune = 0.0
        while True:
            raise_if_stopping()
            # Cleared before reading, so a commit during the read still wakes us.
            self._wake.clear()
            try:
                published = await self.publish_pending()
                if time.monotonic() >= next_prune:
                    await self.prune_published()
                    next_prune = time.monotonic() + _PRUNE_EVERY_SECONDS
                failures = 0
            except Exception:
                raise_if_stopping()
                failures += 1
                log.warning("outbox relay failed; will retry", exc_info=True)
                await asyncio.sleep(min(0.2 * 2**failures, 5.0))
                continue
            if published < self._batch_size:
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a
                # cancellation that arrives as the wait ends, and stop() would hang.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._poll_seconds):
                        await self._wake.wait()

    async def publish_pending(self) -> int:
        """Publish one batch; return how many rows were published."""
        async with self._database.transaction() as connection:
            rows = await connection.fetch(_PENDING, batch=self._batch_size)
            published: list[uuid.UUID] = []
            failure: Exception | None = None
            for row in rows:
                try:
                    await self._jetstream.publish(
                        row["subject"],
                        row["payload"],
                        timeout=5.0,
                        headers=dict(row["headers"]) | {MSG_ID_HEADER: str(row["event_id"])},
                    )
                except Exception as error:  # noqa: BLE001 - commit what went out, then raise
                    failure = error
                    break
                published.append(row["event_id"])
            if published:
                await connection.execute(_MARK_PUBLISHED, event_ids=published)
        if failure is not None:
            raise failure
        return len(published)

    async def prune_published(self) -> None:
        async with self._database.connection() as connection:
            await connection.execute(_PRUNE, age=self._retention.total_seconds())
