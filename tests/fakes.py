"""Fakes for unit tests of use cases: no database, no broker."""

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Generic, TypeVar

from google.protobuf.message import Message

from services.runtime.unit_of_work import Transaction

R = TypeVar("R")


class _RecordedTransaction(Generic[R]):
    def __init__(self, repos: R) -> None:
        self._repos = repos
        self.events: list[Message] = []
        self.committed_actions: list[Callable[[], None]] = []

    @property
    def repos(self) -> R:
        return self._repos

    async def add_event(self, event: Message) -> None:
        self.events.append(event)

    def after_commit(self, action: Callable[[], None]) -> None:
        self.committed_actions.append(action)


class FakeUnitOfWork(Generic[R]):
    """Hands out in-memory repositories and records the events of committed
    transactions. In-memory repositories do not roll back: tests of a failing
    use case should check what it raised and that no event was committed."""

    def __init__(self, repos: R) -> None:
        self.repos = repos
        self.events: list[Message] = []
        self.commits = 0

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction[R]]:
        transaction = _RecordedTransaction(self.repos)
        yield transaction
        self.commits += 1
        self.events.extend(transaction.events)
        for action in transaction.committed_actions:
            action()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[R]:
        yield self.repos

    def events_of(self, kind: type[Message]) -> list[Message]:
        return [event for event in self.events if isinstance(event, kind)]
