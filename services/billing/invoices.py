"""Invoices and balances: issue, read, list, cancel; what a user owes; overdue notices.

An invoice and its ledger entries are written in one transaction, with its
event in the outbox. Who may: an ADMIN issues and cancels; a user reads only
their own invoices and balance (another's invoice is "not found", so ids
cannot be probed); an ADMIN reads all.
"""

import uuid
from dataclasses import replace
from datetime import datetime
from typing import Protocol, TypeVar

from warmhouse.billing.v1 import billing_pb2

from services.billing import ledger, money
from services.billing.ledger import Totals
from services.billing.records import CANCELLED, PENDING, InvoiceRecord
from services.billing.repository import BillingRepository
from services.runtime.auth import Caller
from services.runtime.clock import Clock, utc_now
from services.runtime.errors import (
    Conflict,
    DomainError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from services.runtime.idempotency import IdempotencyKey
from services.runtime.pagination import Cursor, PageTokens, page_size
from services.runtime.request import parse_uuid
from services.runtime.text import display_name
from services.runtime.timestamps import moment, timestamp
from services.runtime.unit_of_work import Transaction, UnitOfWork, run_idempotently
from services.runtime.user_status import user_not_available

DESCRIPTION_MAX_LENGTH = 500
IssuedT = TypeVar("IssuedT", billing_pb2.CreateInvoiceResponse, billing_pb2.IssueInvoiceResponse)
# Overdue invoices announced per sweep.
OVERDUE_BATCH = 500


def invoice_not_found() -> NotFound:
    # Also for another user's invoice: ids cannot be probed.
    return NotFound("INVOICE_NOT_FOUND", "no such invoice")


def invoice_message(invoice: InvoiceRecord) -> billing_pb2.Invoice:
    return billing_pb2.Invoice(
        invoice_id=str(invoice.id),
        user_id=str(invoice.user_id),
        amount=money.major_units(invoice.amount_minor),
        amount_paid=money.major_units(invoice.paid_minor),
        currency=invoice.currency,
        description=invoice.description,
        status=billing_pb2.InvoiceStatus.Value(invoice.status),
        due_time=timestamp(invoice.due_at),
        create_time=timestamp(invoice.created_at),
        update_time=timestamp(invoice.updated_at),
    )


def may_see(caller: Caller, user_id: uuid.UUID) -> bool:
    return caller.is_admin or caller.user_id == str(user_id)


class UserDirectory(Protocol):
    async def is_active(self, user_id: uuid.UUID) -> bool: ...


class InvoiceHandlers:
    def __init__(
        self,
        uow: UnitOfWork[BillingRepository],
        users: UserDirectory,
        page_tokens: PageTokens,
        currency: str,
        clock: Clock = utc_now,
    ) -> None:
        self._uow = uow
        # Asked before billing someone: only an active account is invoiced.
        self._users = users
        self._page_tokens = page_tokens
        # The one currency invoices are issued in.
        self._currency = currency
        self._clock = clock

    async def create(
        self,
        caller: Caller,
        key: IdempotencyKey | None,
        request: billing_pb2.CreateInvoiceRequest,
    ) -> billing_pb2.CreateInvoiceResponse:
        caller.require_admin()
        return await self._issue(key, request, billing_pb2.CreateInvoiceResponse)

    async def issue_for_service(
        self, key: IdempotencyKey | None, request: billing_pb2.IssueInvoiceRequest
    ) -> billing_pb2.IssueInvoiceResponse:
        """Another service's invoice (the internal-call check has let only services in)."""
        return await self._issue(key, request, billing_pb2.IssueInvoiceResponse)

    async def _issue(
        self,
        key: IdempotencyKey | None,
        request: billing_pb2.CreateInvoiceRequest | billing_pb2.IssueInvoiceRequest,
        response_type: type[IssuedT],
    ) -> IssuedT:
        user_id = parse_uuid(request.user_id, "userId")
        amount = money.minor_units(request.amount)
        currency = self._requested_currency(request.currency)
        description = display_name(request.description, "description", DESCRIPTION_MAX_LENGTH)
        if not request.HasField("due_time"):
            raise InvalidArgument("DUE_TIME_REQUIRED", "dueTime is required", field="dueTime")
        due_at = moment(request.due_time, "dueTime")
        if not await self._users.is_active(user_id):
            raise user_not_available("userId")

        async def issue(tx: Transaction[BillingRepository]) -> IssuedT:
            now = self._clock()
            invoice = InvoiceRecord(
                id=uuid.uuid4(),
                user_id=user_id,
                amount_minor=amount,
                currency=currency,
                description=description,
                status=PENDING,
                due_at=due_at,
                created_at=now,
                updated_at=now,
            )
            await tx.repos.add_invoice(invoice)
            await tx.repos.record(ledger.invoice_issued(invoice.id, user_id, amount, currency, now))
            await tx.add_event(
                billing_pb2.InvoiceIssued(
                    invoice_id=str(invoice.id),
                    user_id=str(user_id),
                    amount=money.major_units(amount),
                    currency=currency,
                    due_time=timestamp(due_at),
                    occur_time=timestamp(now),
                )
            )
            return response_type(invoice=invoice_message(invoice))

        return await run_idempotently(self._uow, key, request, response_type, issue)

    def _requested_currency(self, requested: str) -> str:
        if not requested:
            return self._currency
        if money.currency_code(requested) != self._currency:
            raise DomainError(
                "CURRENCY_NOT_SUPPORTED", f"invoices are issued in {self._currency} only"
            )
        return requested

    async def get(self, caller: Caller, invoice_id: str) -> InvoiceRecord:
        invoice_uuid = parse_uuid(invoice_id, "invoiceId")
        async with self._uow.read() as repos:
            invoice = await repos.invoice(invoice_uuid)
        if invoice is None or not may_see(caller, invoice.user_id):
            raise invoice_not_found()
        return invoice

    async def list_invoices(
        self,
        caller: Caller,
        user_id: str,
        status: str | None,
        requested_size: int,
        page_token: str,
    ) -> tuple[list[InvoiceRecord], str]:
        owner = parse_uuid(user_id, "userId") if user_id else None
        if not caller.is_admin:
            if owner is not None and str(owner) != caller.user_id:
                raise PermissionDenied("NOT_OWNER", "you may only list your own invoices")
            owner = caller.user_uuid
        limit = page_size(requested_size)
        listing = f"invoices:{owner}:{status}"
        cursor = self._page_tokens.decode(page_token, listing=listing)
        async with self._uow.read() as repos:
            rows = await repos.invoices(owner, status, cursor, limit + 1)
        return self._page_tokens.page(
            rows, limit, lambda i: Cursor(i.created_at, i.id), listing=listing
        )

    async def cancel(
        self,
        caller: Caller,
        key: IdempotencyKey | None,
        request: billing_pb2.CancelInvoiceRequest,
    ) -> billing_pb2.CancelInvoiceResponse:
        """Cancel a PENDING invoice; with an idempotency key, a retry of a cancellation
        that went through gets its answer again instead of INVOICE_NOT_PENDING."""
        caller.require_admin()
        invoice_uuid = parse_uuid(request.invoice_id, "invoiceId")

        async def cancel(tx: Transaction[BillingRepository]) -> billing_pb2.CancelInvoiceResponse:
            invoice = await tx.repos.invoice(invoice_uuid, lock=True)
            if invoice is None:
                raise invoice_not_found()
            if invoice.status != PENDING:
                raise DomainError(
                    "INVOICE_NOT_PENDING",
                    f"only a PENDING invoice cancels; this one is {invoice.status}",
                )
            if await tx.repos.in_flight_minor(invoice.id):
                raise Conflict(
                    "PAYMENT_IN_PROGRESS",
                    "a card payment on this invoice is being charged; retry in a moment",
                )
            now = self._clock()
            cancelled = replace(invoice, status=CANCELLED, updated_at=now)
            await tx.repos.save_invoice(cancelled)
            await tx.repos.record(
                ledger.invoice_cancelled(
                    invoice.id,
                    invoice.user_id,
                    invoice.amount_minor,
                    invoice.paid_minor,
                    invoice.currency,
                    now,
                )
            )
            await tx.add_event(
                billing_pb2.InvoiceCancelled(
                    invoice_id=str(invoice.id),
                    user_id=str(invoice.user_id),
                    occur_time=timestamp(now),
                    amount=money.major_units(invoice.amount_minor),
                    currency=invoice.currency,
                    refunded_to_wallet=money.major_units(invoice.paid_minor),
                )
            )
            return billing_pb2.CancelInvoiceResponse(invoice=invoice_message(cancelled))

        return await run_idempotently(
            self._uow, key, request, billing_pb2.CancelInvoiceResponse, cancel
        )

    async def balance(self, caller: Caller, user_id: str) -> billing_pb2.GetBalanceResponse:
        owner = parse_uuid(user_id, "userId")
        caller.require_self_or_admin(str(owner))
        async with self._uow.read() as repos:
            totals, currency = await repos.totals(owner)
        return balance_message(owner, totals, currency)


def balance_message(
    user_id: uuid.UUID, totals: Totals, currency: str
) -> billing_pb2.GetBalanceResponse:
    return billing_pb2.GetBalanceResponse(
        user_id=str(user_id),
        amount_due=money.major_units(totals.amount_due),
        currency=currency,
        wallet_credit=money.major_units(totals.wallet),
        balance=money.major_units(totals.balance),
    )


async def announce_overdue(uow: UnitOfWork[BillingRepository], clock: Clock = utc_now) -> int:
    """PENDING invoices past due get their InvoiceOverdue, once each; how many did."""
    async with uow.transaction() as tx:
        now = clock()
        due = await tx.repos.overdue(now, OVERDUE_BATCH)
        for invoice in due:
            await tx.repos.save_invoice(replace(invoice, overdue_at=now, updated_at=now))
            await tx.add_event(_overdue_event(invoice, now))
        return len(due)


def _overdue_event(invoice: InvoiceRecord, now: datetime) -> billing_pb2.InvoiceOverdue:
    return billing_pb2.InvoiceOverdue(
        invoice_id=str(invoice.id),
        user_id=str(invoice.user_id),
        amount=money.major_units(invoice.owed_minor),
        currency=invoice.currency,
        due_time=timestamp(invoice.due_at),
        occur_time=timestamp(now),
    )
