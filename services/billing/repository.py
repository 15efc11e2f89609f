"""Billing's queries on PostgreSQL, compiled once."""

import uuid
from dataclasses import asdict
from datetime import datetime

from sqlalchemy import bindparam, select, text, update

from services.billing.ledger import RECEIVABLE, WALLET, Entry, Totals
from services.billing.records import InvoiceRecord, PaymentRecord
from services.billing.tables import invoices, payments
from services.runtime.database import Connection, Query, Record
from services.runtime.pagination import Cursor

_ADD_INVOICE = Query(invoices.insert())
_INVOICE = invoices.c.id == bindparam("id")
_GET_INVOICE = Query(select(invoices).where(_INVOICE))
_LOCK_INVOICE = Query(select(invoices).where(_INVOICE).with_for_update())
_SAVE_INVOICE = Query(
    update(invoices)
    .where(invoices.c.id == bindparam("invoice_id"))
    .values(
        paid_minor=bindparam("paid_minor"),
        status=bindparam("status"),
        overdue_at=bindparam("overdue_at"),
        updated_at=bindparam("updated_at"),
    )
)
_ADD_PAYMENT = Query(payments.insert())
_PAYMENT = payments.c.id == bindparam("id")
_GET_PAYMENT = Query(select(payments).where(_PAYMENT))
_LOCK_PAYMENT = Query(select(payments).where(_PAYMENT).with_for_update())
_SAVE_PAYMENT = Query(
    update(payments)
    .where(payments.c.id == bindparam("payment_id"))
    .values(
        status=bindparam("status"),
        failure_reason=bindparam("failure_reason"),
        provider_id=bindparam("provider_id"),
        bank_reference=bindparam("bank_reference"),
        updated_at=bindparam("updated_at"),
        processed_at=bindparam("processed_at"),
    )
)
# Written once per cause: a repeat does nothing.
_ADD_ENTRY = Query(
    text(
        "INSERT INTO ledger_entries (user_id, account, kind, amount_minor, currency,"
        " invoice_id, payment_id, created_at, cause)"
        " VALUES (:user_id, :account, :kind, :amount_minor, :currency, :invoice_id,"
        " :payment_id, :created_at, :cause) ON CONFLICT (kind, cause) DO NOTHING"
    )
)
_TOTALS = Query(
    text(
        "SELECT account, COALESCE(sum(amount_minor), 0) AS total, min(currency) AS currency"
        " FROM ledger_entries WHERE user_id = :user_id GROUP BY account"
    )
)
# One user's money moves one at a time (wallet spending checks its credit first).
_HOLD_USER = Query(text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"))
# CARD payments on an invoice still waiting for the provider's answer (seconds):
# they reserve what they ask. A bank transfer reserves nothing: it may take days
# or never come, and money arriving for an invoice no longer owing it becomes
# wallet credit (settlement.py).
_IN_FLIGHT = Query(
    text(
        "SELECT COALESCE(sum(amount_minor), 0) FROM payments"
        " WHERE invoice_id = :invoice_id AND status = 'INITIATED' AND method = 'CARD'"
    )
)
_OPEN_TRANSFERS = Query(
    text(
        "SELECT count(*) FROM payments WHERE user_id = :user_id"
        " AND method = 'BANK_TRANSFER' AND status = 'INITIATED'"
    )
)
_OVERDUE = Query(
    text(
        "SELECT * FROM invoices WHERE status = 'PENDING' AND overdue_at IS NULL"
        " AND due_at <= :now ORDER BY due_at LIMIT :limit FOR UPDATE SKIP LOCKED"
    )
)
_STALE_INITIATED = Query(
    text(
        "SELECT * FROM payments WHERE status = 'INITIATED' AND method <> 'WALLET'"
        " AND updated_at <= :before ORDER BY updated_at LIMIT :limit"
    )
)
_REMEMBER_EVENT = Query(
    text(
        "INSERT INTO provider_events (event_id, received_at) VALUES (:event_id, :now)"
        " ON CONFLICT DO NOTHING RETURNING event_id"
    )
)
_FORGET_EVENTS = Query(
    text(
        "DELETE FROM provider_events WHERE event_id IN (SELECT event_id FROM provider_events"
        " WHERE received_at < :before LIMIT :limit)"
    )
)
_TOUCH_PAYMENT = Query(
    text("UPDATE payments SET updated_at = :now WHERE id = :id AND status = 'INITIATED'")
)


def _invoice_listing(*, by_user: bool, by_status: bool, after: bool) -> Query:
    conditions = [
        *(["user_id = :user_id"] if by_user else []),
        *(["status = :status"] if by_status else []),
        *(["(created_at, id) < (:created_at, :id)"] if after else []),
    ]
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    return Query(
        text(f"SELECT * FROM invoices{where} ORDER BY created_at DESC, id DESC LIMIT :limit")
    )


_INVOICE_LISTINGS = {
    (user, status, after): _invoice_listing(by_user=user, by_status=status, after=after)
    for user in (False, True)
    for status in (False, True)
    for after in (False, True)
}
_PAYMENT_LISTINGS = {
    after: Query(
        text(
            "SELECT * FROM payments WHERE invoice_id = :invoice_id"
            + (" AND (created_at, id) < (:created_at, :id)" if after else "")
            + " ORDER BY created_at DESC, id DESC LIMIT :limit"
        )
    )
    for after in (False, True)
}
_INVOICE_FIELDS = tuple(column.name for column in invoices.columns)
_PAYMENT_FIELDS = tuple(column.name for column in payments.columns)


def _invoice(row: Record) -> InvoiceRecord:
    return InvoiceRecord(**{name: row[name] for name in _INVOICE_FIELDS})


def _payment(row: Record) -> PaymentRecord:
    return PaymentRecord(**{name: row[name] for name in _PAYMENT_FIELDS})


class BillingRepository:
    """Every query of the service, on one connection (and its transaction)."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    # Invoices.

    async def add_invoice(self, invoice: InvoiceRecord) -> None:
        await self._connection.execute(_ADD_INVOICE, **asdict(invoice))

    async def invoice(self, invoice_id: uuid.UUID, *, lock: bool = False) -> InvoiceRecord | None:
        row = await self._connection.fetchrow(
            _LOCK_INVOICE if lock else _GET_INVOICE, id=invoice_id
        )
        return _invoice(row) if row is not None else None

    async def save_invoice(self, invoice: InvoiceRecord) -> None:
        await self._connection.execute(
            _SAVE_INVOICE,
            invoice_id=invoice.id,
            paid_minor=invoice.paid_minor,
            status=invoice.status,
            overdue_at=invoice.overdue_at,
            updated_at=invoice.updated_at,
        )

    async def invoices(
        self,
        user_id: uuid.UUID | None,
        status: str | None,
        after: Cursor | None,
        limit: int,
    ) -> list[InvoiceRecord]:
        params: dict[str, object] = {"limit": limit}
        if user_id is not None:
            params["user_id"] = user_id
        if status is not None:
            params["status"] = status
        if after is not None:
            params["created_at"], params["id"] = after.created_at, after.id
        query = _INVOICE_LISTINGS[(user_id is not None, status is not None, after is not None)]
        return [_invoice(row) for row in await self._connection.fetch(query, **params)]

    async def overdue(self, now: datetime, limit: int) -> list[InvoiceRecord]:
        """Pending invoices past due and not yet announced, row-locked (skipping locked ones)."""
        rows = await self._connection.fetch(_OVERDUE, now=now, limit=limit)
        return [_invoice(row) for row in rows]

    # Payments.

    async def add_payment(self, payment: PaymentRecord) -> None:
        await self._connection.execute(_ADD_PAYMENT, **asdict(payment))

    async def payment(self, payment_id: uuid.UUID, *, lock: bool = False) -> PaymentRecord | None:
        row = await self._connection.fetchrow(
            _LOCK_PAYMENT if lock else _GET_PAYMENT, id=payment_id
        )
        return _payment(row) if row is not None else None

    async def save_payment(self, payment: PaymentRecord) -> None:
        await self._connection.execute(
            _SAVE_PAYMENT,
            payment_id=payment.id,
            status=payment.status,
            failure_reason=payment.failure_reason,
            provider_id=payment.provider_id,
            bank_reference=payment.bank_reference,
            updated_at=payment.updated_at,
            processed_at=payment.processed_at,
        )

    async def payments(
        self, invoice_id: uuid.UUID, after: Cursor | None, limit: int
    ) -> list[PaymentRecord]:
        params: dict[str, object] = {"invoice_id": invoice_id, "limit": limit}
        if after is not None:
            params["created_at"], params["id"] = after.created_at, after.id
        rows = await self._connection.fetch(_PAYMENT_LISTINGS[after is not None], **params)
        return [_payment(row) for row in rows]

    async def in_flight_minor(self, invoice_id: uuid.UUID) -> int:
        return int(await self._connection.fetchval(_IN_FLIGHT, invoice_id=invoice_id))

    async def open_transfers(self, user_id: uuid.UUID) -> int:
        return int(await self._connection.fetchval(_OPEN_TRANSFERS, user_id=user_id))

    async def stale_initiated(self, before: datetime, limit: int) -> list[PaymentRecord]:
        rows = await self._connection.fetch(_STALE_INITIATED, before=before, limit=limit)
        return [_payment(row) for row in rows]

    async def touch_payment(self, payment_id: uuid.UUID, now: datetime) -> None:
        await self._connection.execute(_TOUCH_PAYMENT, id=payment_id, now=now)

    async def remember_event(self, event_id: str, now: datetime) -> bool:
        """Record a provider event; False when it was recorded before."""
        return (
            await self._connection.fetchval(_REMEMBER_EVENT, event_id=event_id, now=now) is not None
        )

    async def forget_events(self, before: datetime, limit: int) -> int:
        """Forget provider events received before `before`; how many were."""
        status = await self._connection.execute(_FORGET_EVENTS, before=before, limit=limit)
        return int(status.rsplit(" ", 1)[-1])

    # The ledger.

    async def hold_user(self, user_id: uuid.UUID) -> None:
        await self._connection.execute(_HOLD_USER, key=f"billing:{user_id}")

    async def record(self, entries: list[Entry]) -> None:
        for entry in entries:
            await self._connection.execute(_ADD_ENTRY, **asdict(entry))

    async def totals(self, user_id: uuid.UUID) -> tuple[Totals, str]:
        """The user's sums by account, and their currency ("" before any entry)."""
        rows = await self._connection.fetch(_TOTALS, user_id=user_id)
        sums = {row["account"]: int(row["total"]) for row in rows}
        currency = next((str(row["currency"]) for row in rows), "")
        return Totals(receivable=sums.get(RECEIVABLE, 0), wallet=sums.get(WALLET, 0)), currency
