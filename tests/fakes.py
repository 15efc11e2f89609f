"""Fakes for unit tests of use cases: no database, no broker."""

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Generic, TypeVar

import pytest
from google.protobuf.message import Message

from services.runtime.errors import Conflict, DomainError
from services.runtime.idempotency import IdempotencyKey
from services.runtime.unit_of_work import Transaction

R = TypeVar("R")
E = TypeVar("E", bound=DomainError)
# An idempotency key's request (serialized) and the response it got.
Served = dict[IdempotencyKey, tuple[bytes, bytes]]


class _RecordedTransaction(Generic[R]):
    def __init__(self, repos: R, served: Served) -> None:
        self._repos = repos
        self._served = served
        self._claimed: dict[IdempotencyKey, bytes] = {}
        self.events: list[Message] = []
        self.committed_actions: list[Callable[[], None]] = []
        self.remembered: Served = {}

    @property
    def repos(self) -> R:
        return self._repos

    async def add_event(self, event: Message) -> None:
        self.events.append(event)

    def after_commit(self, action: Callable[[], None]) -> None:
        self.committed_actions.append(action)

    async def claim(self, key: IdempotencyKey, request: Message) -> bytes | None:
        serialized = request.SerializeToString(deterministic=True)
        stored = self._served.get(key)
        if stored is None:
            self._claimed[key] = serialized
            return None
        if stored[0] != serialized:
            raise Conflict("IDEMPOTENCY_KEY_REUSED", "key used for a different request")
        return stored[1]

    async def remember(self, key: IdempotencyKey, response: Message) -> None:
        self.remembered[key] = (self._claimed[key], response.SerializeToString())


class FakeUnitOfWork(Generic[R]):
    """Hands out in-memory repositories and records the events of committed
    transactions. In-memory repositories do not roll back: tests of a failing
    use case should check what it raised and that no event was committed."""

    def __init__(self, repos: R) -> None:
        self.repos = repos
        self.events: list[Message] = []
        self.commits = 0
        self.served: Served = {}

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction[R]]:
        transaction = _RecordedTransaction(self.repos, self.served)
        yield transaction
        self.commits += 1
        self.events.extend(transaction.events)
        self.served.update(transaction.remembered)
        for action in transaction.committed_actions:
            action()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[R]:
        yield self.repos

    def events_of(self, kind: type[Message]) -> list[Message]:
        return [event for event in self.events if isinstance(event, kind)]


T0 = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class FakeClock:
    """A clock the test moves; with a `tick`, every reading is that much later
    than the one before (records made one after another then sort in order)."""

    now: datetime = T0
    tick: timedelta = timedelta(0)

    def __call__(self) -> datetime:
        self.now += self.tick
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


async def raises(call: Awaitable[object], kind: type[E]) -> E:
    """Await a use case, expecting the domain error `kind`; the error."""
    with pytest.raises(kind) as refused:
        await call
    return refused.value


@dataclass
class Delivery:
    """What EventConsumer.process reads of a JetStream message, delivered
    `num_delivered` times; `acks` records True for ack, False for nak."""

    subject: str
    data: bytes
    headers: dict[str, str]
    num_delivered: int = 1
    acks: list[bool] = field(default_factory=list)

    @property
    def metadata(self) -> SimpleNamespace:
        return SimpleNamespace(num_delivered=self.num_delivered)

    async def ack(self) -> None:
        self.acks.append(True)

    async def nak(self, delay: float | None = None) -> None:
        self.acks.append(False)
