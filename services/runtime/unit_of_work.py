"""One database transaction per use case: repositories in, events out.

Handlers see only the `UnitOfWork` protocol: `transaction()` hands out the
service's repositories bound to one transaction, plus `add_event` (written to
the outbox in that transaction), `after_commit` (in-process effects that must
wait for the commit) and idempotency-key bookkeeping. `read()` hands out
repositories outside any transaction. Unit tests pass a fake with in-memory
repositories (tests/fakes.py).
"""

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Generic, Protocol, TypeVar

from google.protobuf.message import Message

from services.runtime import idempotency, outbox
from services.runtime.database import Connection, Database
from services.runtime.idempotency import IdempotencyKey
from services.runtime.outbox import OutboxRelay

R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)
ResponseT = TypeVar("ResponseT", bound=Message)


class Transaction(Protocol[R_co]):
    @property
    def repos(self) -> R_co: ...

    async def add_event(self, event: Message) -> None:
        """Publish `event` once the transaction commits (and never if it does not)."""

    def after_commit(self, action: Callable[[], None]) -> None:
        """Run `action` in this process right after a successful commit."""

    async def claim(self, key: IdempotencyKey, request: Message) -> bytes | None:
        """Claim an idempotency key; the stored response if it was already served."""

    async def remember(self, key: IdempotencyKey, response: Message) -> None:
        """Store the response a claimed key will replay."""


class UnitOfWork(Protocol[R_co]):
    def transaction(self) -> AbstractAsyncContextManager[Transaction[R_co]]: ...

    def read(self) -> AbstractAsyncContextManager[R_co]: ...


async def run_idempotently(
    uow: UnitOfWork[R],
    key: IdempotencyKey | None,
    request: Message,
    response_type: type[ResponseT],
    use_case: Callable[[Transaction[R]], Awaitable[ResponseT]],
) -> ResponseT:
    """Run `use_case` in one transaction, at most once per idempotency key."""
    async with uow.transaction() as tx:
        if key is not None:
            stored = await tx.claim(key, request)
            if stored is not None:
                return response_type.FromString(stored)
        response = await use_case(tx)
        if key is not None:
            await tx.remember(key, response)
        return response


class _DatabaseTransaction(Generic[R]):
    def __init__(self, connection: Connection, repos: R) -> None:
        self._connection = connection
        self._repos = repos
        self.committed_actions: list[Callable[[], None]] = []

    @property
    def repos(self) -> R:
        return self._repos

    async def add_event(self, event: Message) -> None:
        await outbox.add_event(self._connection, event)

    def after_commit(self, action: Callable[[], None]) -> None:
        self.committed_actions.append(action)

    async def claim(self, key: IdempotencyKey, request: Message) -> bytes | None:
        return await idempotency.claim(self._connection, key, request)

    async def remember(self, key: IdempotencyKey, response: Message) -> None:
        await idempotency.remember(self._connection, key, response)


class DatabaseUnitOfWork(Generic[R]):
    """Commits a state change and its outbox rows together, then wakes the relay."""

    def __init__(
        self, database: Database, relay: OutboxRelay, repositories: Callable[[Connection], R]
    ) -> None:
        self._database = database
        self._relay = relay
        self._repositories = repositories

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction[R]]:
        async with self._database.transaction() as connection:
            transaction = _DatabaseTransaction(connection, self._repositories(connection))
            yield transaction
        self._relay.wake()
        for action in transaction.committed_actions:
            action()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[R]:
        # Autocommit: no BEGIN and COMMIT round trips around a read.
        async with self._database.connection() as connection:
            yield self._repositories(connection)
