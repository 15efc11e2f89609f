"""run_idempotently: one effect per key, the stored response replayed."""

import pytest
from google.protobuf import wrappers_pb2

from services.runtime.errors import Conflict
from services.runtime.idempotency import IdempotencyKey
from services.runtime.unit_of_work import Transaction, run_idempotently
from tests.fakes import FakeUnitOfWork

KEY = IdempotencyKey("user-1", "key-1", "/warmhouse.test.v1.Pay/Pay")


class Ledger:
    def __init__(self) -> None:
        self.entries: list[str] = []


async def pay(uow: FakeUnitOfWork[Ledger], key: IdempotencyKey | None, amount: str) -> str:
    async def use_case(tx: Transaction[Ledger]) -> wrappers_pb2.StringValue:
        tx.repos.entries.append(amount)
        return wrappers_pb2.StringValue(value=f"entry {len(tx.repos.entries)}")

    request = wrappers_pb2.StringValue(value=amount)
    reply = await run_idempotently(uow, key, request, wrappers_pb2.StringValue, use_case)
    return reply.value


async def test_a_key_replays_its_first_response_without_a_second_effect() -> None:
    uow = FakeUnitOfWork(Ledger())
    assert await pay(uow, KEY, "10") == "entry 1"
    assert await pay(uow, KEY, "10") == "entry 1"
    assert uow.repos.entries == ["10"]
    with pytest.raises(Conflict):
        await pay(uow, KEY, "11")


async def test_without_a_key_every_request_acts() -> None:
    uow = FakeUnitOfWork(Ledger())
    assert [await pay(uow, None, "10") for _ in range(2)] == ["entry 1", "entry 2"]
