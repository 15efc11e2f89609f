"""run_idempotently: one effect per key, the stored response replayed."""

import pytest
from google.protobuf import wrappers_pb2

from services.runtime.errors import Conflict, InvalidArgument
from services.runtime.idempotency import IdempotencyKey, key_of
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


class Metadata:
    def __init__(self, *pairs: tuple[str, str]) -> None:
        self._pairs = pairs

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._pairs


def test_the_key_comes_from_the_request_else_from_the_idempotency_key_header() -> None:
    header = Metadata(("idempotency-key", "from-header"))
    method = "/warmhouse.test.v1.Pay/Pay"
    from_field = key_of(header, "from-field", "user-1", method)  # type: ignore[arg-type]
    assert from_field == IdempotencyKey("user-1", "from-field", method)
    from_header = key_of(header, "", "user-1", method)  # type: ignore[arg-type]
    assert from_header == IdempotencyKey("user-1", "from-header", method)
    assert key_of(Metadata(), "", "user-1", method) is None  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["k" * 256, "nul\x00byte", "line\nbreak"])
def test_an_unusable_key_is_refused_without_echoing_it(bad: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        key_of(Metadata(), bad, "user-1", "/warmhouse.test.v1.Pay/Pay")  # type: ignore[arg-type]
    assert bad not in refused.value.message
