"""The provider's webhooks on real PostgreSQL: however often, and in whatever order,
its events arrive, every payment settles once and the balance is the same."""

import asyncio
import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from services.billing import ledger
from services.billing.provider_events import ProviderEvents, forget_old_events
from services.billing.records import (
    BANK_TRANSFER,
    CARD,
    INITIATED,
    PENDING,
    InvoiceRecord,
    PaymentRecord,
)
from services.billing.repository import BillingRepository
from services.payment_sandbox.signing import signature_header
from services.runtime import database as db
from services.runtime.unit_of_work import DatabaseUnitOfWork

SECRET = b"the integration tests' webhook secret, 32+ bytes"
MIGRATIONS = Path(__file__).parents[2] / "services" / "billing" / "migrations"
# (amount in minor units, method, the provider's final word)
PAYMENTS = (
    (1_000, CARD, True),
    (2_000, BANK_TRANSFER, True),
    (3_000, CARD, False),
    (4_000, BANK_TRANSFER, True),
)
INVOICE_MINOR = 10_000


class _QuietRelay:
    """The outbox relay's place: events stay in the outbox table, which is what is checked."""

    def wake(self) -> None:
        return None


@dataclass(frozen=True)
class Outcome:
    statuses: tuple[str, ...]
    paid_minor: int
    invoice_status: str
    balance_minor: int
    received_entries: int


def _body(event_id: str, payment: PaymentRecord, succeeded: bool) -> bytes:
    kind = "charge" if payment.method == CARD else "transfer"
    status = "succeeded" if succeeded else "failed"
    subject = {
        "id": f"{kind[:2]}_{payment.id.hex[:8]}",
        "reference": str(payment.id),
        "amount": payment.amount_minor,
        "currency": payment.currency,
        "status": status,
        "failure_code": None if succeeded else "card_declined",
    }
    return json.dumps(
        {"id": event_id, "type": f"{kind}.{status}", "data": {"object": subject}}
    ).encode()


def _signature(body: bytes) -> str:
    return signature_header(SECRET, int(time.time()), body)


async def _deliver(database_url: str, order: list[int]) -> Outcome:
    """A fresh invoice with PAYMENTS on it; their events delivered in `order` (indices,
    repeats allowed); what it all comes to."""
    database = await db.Database.connect(database_url, pool_size=2)
    try:
        await db.apply_migrations(database, "runtime", db.RUNTIME_MIGRATIONS)
        await db.apply_migrations(database, "billing", MIGRATIONS)
        uow = DatabaseUnitOfWork(database, _QuietRelay(), BillingRepository)  # type: ignore[arg-type]
        user, now = uuid.uuid4(), datetime.now(UTC)
        invoice = InvoiceRecord(
            uuid.uuid4(),
            user,
            INVOICE_MINOR,
            "RUB",
            "Отопление",
            PENDING,
            now + timedelta(days=30),
            now,
            now,
        )
        payments = [
            PaymentRecord(
                uuid.uuid4(), invoice.id, user, amount, "RUB", method, INITIATED, now, now
            )
            for amount, method, _ in PAYMENTS
        ]
        async with uow.transaction() as tx:
            await tx.repos.add_invoice(invoice)
            await tx.repos.record(
                ledger.invoice_issued(invoice.id, user, INVOICE_MINOR, "RUB", now)
            )
            for payment in payments:
                await tx.repos.add_payment(payment)
        events = [
            _body(f"evt_{uuid.uuid4().hex}", payment, succeeded)
            for payment, (_, _, succeeded) in zip(payments, PAYMENTS, strict=True)
        ]
        receiver = ProviderEvents(uow, SECRET)
        for index in order:
            await receiver.receive(_signature(events[index]), events[index])
        async with uow.read() as repos:
            settled = [await repos.payment(p.id) for p in payments]
            final = await repos.invoice(invoice.id)
            totals, _ = await repos.totals(user)
        received = await database_count(database, user)
        assert final is not None
        return Outcome(
            tuple(p.status for p in settled if p is not None),
            final.paid_minor,
            final.status,
            totals.balance,
            received,
        )
    finally:
        await database.close()


async def database_count(database: db.Database, user: uuid.UUID) -> int:
    """The user's PAYMENT_RECEIVED entries: one per payment that succeeded, never two."""
    async with database.connection() as connection:
        return int(await connection.fetchval(_PAYMENT_ENTRIES, user_id=user))


_PAYMENT_ENTRIES = db.Query(
    text(
        "SELECT count(*) FROM ledger_entries WHERE user_id = :user_id AND kind = 'PAYMENT_RECEIVED'"
    )
)

EXPECTED = Outcome(
    statuses=("SUCCESS", "SUCCESS", "FAILED", "SUCCESS"),
    paid_minor=7_000,
    invoice_status=PENDING,
    balance_minor=-3_000,
    received_entries=3,
)


def test_each_event_once_in_order_settles_as_the_provider_said(database_url: str) -> None:
    assert asyncio.run(_deliver(database_url, [0, 1, 2, 3])) == EXPECTED


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    order=st.permutations(range(len(PAYMENTS))),
    repeats=st.lists(st.integers(0, len(PAYMENTS) - 1), max_size=12),
    seed=st.randoms(),
)
def test_duplicated_and_shuffled_events_come_to_the_same(
    database_url: str, order: list[int], repeats: list[int], seed: object
) -> None:
    delivery = [*order, *repeats]
    seed.shuffle(delivery)  # type: ignore[attr-defined]
    assert asyncio.run(_deliver(database_url, delivery)) == EXPECTED


async def _remembered_after_pruning(database_url: str) -> tuple[bool, bool]:
    database = await db.Database.connect(database_url, pool_size=2)
    try:
        await db.apply_migrations(database, "runtime", db.RUNTIME_MIGRATIONS)
        await db.apply_migrations(database, "billing", MIGRATIONS)
        uow = DatabaseUnitOfWork(database, _QuietRelay(), BillingRepository)  # type: ignore[arg-type]
        now = datetime.now(UTC)
        old, recent = f"evt_{uuid.uuid4().hex}", f"evt_{uuid.uuid4().hex}"
        async with uow.transaction() as tx:
            await tx.repos.remember_event(old, now - timedelta(days=8))
            await tx.repos.remember_event(recent, now - timedelta(days=6))
        assert await forget_old_events(uow, lambda: now) >= 1
        async with uow.transaction() as tx:
            # remember_event is False for an id still remembered.
            return (
                await tx.repos.remember_event(old, now),
                await tx.repos.remember_event(recent, now),
            )
    finally:
        await database.close()


def test_event_ids_are_forgotten_only_after_a_week(database_url: str) -> None:
    forgotten_again, still_remembered = asyncio.run(_remembered_after_pruning(database_url))
    assert forgotten_again is True
    assert still_remembered is False
