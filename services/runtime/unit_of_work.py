"""One database transaction per use case, with its events in the outbox."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.runtime.outbox import OutboxRelay


class UnitOfWork:
    """Commits a state change and its outbox rows together, then wakes the relay."""

    def __init__(self, engine: AsyncEngine, relay: OutboxRelay) -> None:
        self._engine = engine
        # Reads need no transaction: autocommit spares the BEGIN and ROLLBACK
        # round trips the driver would otherwise wrap around every query.
        self._reader = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._relay = relay

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        async with self._engine.begin() as conn:
            yield conn
        self._relay.wake()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self._reader.connect() as conn:
            yield conn
