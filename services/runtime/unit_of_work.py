"""One database transaction per use case: repositories in, events out.

Handlers see only the `UnitOfWork` protocol: `transaction()` hands out the
service's repositories bound to one transaction, plus `add_event` (written to
the outbox in that transaction) and `after_commit` (in-process effects that
must wait for the commit). `read()` hands out repositories outside any
transaction. Unit tests pass a fake with in-memory repositories.
"""

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Generic, Protocol, TypeVar

from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.runtime import outbox
from services.runtime.outbox import OutboxRelay

R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)


class Transaction(Protocol[R_co]):
    @property
    def repos(self) -> R_co: ...

    async def add_event(self, event: Message) -> None:
        """Publish `event` once the transaction commits (and never if it does not)."""

    def after_commit(self, action: Callable[[], None]) -> None:
        """Run `action` in this process right after a successful commit."""


class UnitOfWork(Protocol[R_co]):
    def transaction(self) -> AbstractAsyncContextManager[Transaction[R_co]]: ...

    def read(self) -> AbstractAsyncContextManager[R_co]: ...


class _DatabaseTransaction(Generic[R]):
    def __init__(self, conn: AsyncConnection, repos: R) -> None:
        self._conn = conn
        self._repos = repos
        self.committed_actions: list[Callable[[], None]] = []

    @property
    def repos(self) -> R:
        return self._repos

    async def add_event(self, event: Message) -> None:
        await outbox.add_event(self._conn, event)

    def after_commit(self, action: Callable[[], None]) -> None:
        self.committed_actions.append(action)


class DatabaseUnitOfWork(Generic[R]):
    """Commits a state change and its outbox rows together, then wakes the relay."""

    def __init__(
        self,
        engine: AsyncEngine,
        relay: OutboxRelay,
        repositories: Callable[[AsyncConnection], R],
    ) -> None:
        self._engine = engine
        # Reads need no transaction: autocommit spares the BEGIN and ROLLBACK
        # round trips the driver would otherwise wrap around every query.
        self._reader = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._relay = relay
        self._repositories = repositories

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction[R]]:
        async with self._engine.begin() as conn:
            transaction = _DatabaseTransaction(conn, self._repositories(conn))
            yield transaction
        self._relay.wake()
        for action in transaction.committed_actions:
            action()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[R]:
        async with self._reader.connect() as conn:
            yield self._repositories(conn)
