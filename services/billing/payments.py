"""Payments: on an invoice, or topping up the wallet; by CARD, BANK_TRANSFER or WALLET.

The payment is written INITIATED (reserving its amount on the invoice, so two
payments at once cannot pay more than is owed) before the provider hears of
it; the provider's answer settles it (settlement.py). A crash or a timeout in
between leaves it INITIATED, and reconciliation asks the provider, by our
payment id, what became of it. The provider takes our payment id as its
idempotency key, so asking again never charges twice.

- CARD: charged at once; the answer is usually final (SUCCESS or FAILED).
- BANK_TRANSFER: opened at once, INITIATED until the provider's webhook says
  the money arrived; the payment shows the bank reference to write on it.
- WALLET: taken from the user's prepaid credit in the same transaction; no
  provider; not enough credit is refused.
"""

import logging
import uuid
from dataclasses import replace

from warmhouse.billing.v1 import billing_pb2

from services.billing import money, settlement
from services.billing.invoices import invoice_not_found, may_see
from services.billing.provider import (
    FINAL,
    MAX_PROVIDER_AMOUNT_MINOR,
    PROVIDER_SUCCEEDED,
    ProviderClient,
    ProviderObject,
    ProviderUnavailable,
)
from services.billing.records import BANK_TRANSFER, CARD, INITIATED, PENDING, WALLET, PaymentRecord
from services.billing.repository import BillingRepository
from services.runtime.auth import Caller
from services.runtime.clock import Clock, utc_now
from services.runtime.errors import (
    DomainError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Throttled,
)
from services.runtime.idempotency import IdempotencyKey
from services.runtime.pagination import Cursor, PageTokens, page_size
from services.runtime.request import parse_uuid
from services.runtime.timestamps import timestamp
from services.runtime.unit_of_work import Transaction, UnitOfWork, run_idempotently

log = logging.getLogger(__name__)
METHODS = frozenset({CARD, BANK_TRANSFER, WALLET})
TOKEN_MAX_LENGTH = 100
OPEN_TRANSFERS_PER_USER = 10


def payment_not_found() -> NotFound:
    return NotFound("PAYMENT_NOT_FOUND", "no such payment")


def payment_method(name: str, allowed: frozenset[str] = METHODS) -> str:
    if name not in allowed:
        raise InvalidArgument(
            "INVALID_PAYMENT_METHOD",
            f"method must be {' or '.join(sorted(allowed))}",
            field="method",
        )
    return name


def payment_token(method: str, token: str) -> str:
    if method != CARD:
        if token:
            raise InvalidArgument(
                "UNEXPECTED_PAYMENT_TOKEN", "paymentToken goes only with CARD", field="paymentToken"
            )
        return ""
    if not token or len(token) > TOKEN_MAX_LENGTH or not token.isascii() or not token.isprintable():
        raise InvalidArgument(
            "INVALID_PAYMENT_TOKEN",
            "a CARD payment needs the paymentToken the provider's checkout gave",
            field="paymentToken",
        )
    return token


def within_provider_limit(method: str, amount: int) -> None:
    """The provider takes at most so much in one charge or transfer: pay more in parts."""
    if method != WALLET and amount > MAX_PROVIDER_AMOUNT_MINOR:
        raise InvalidArgument(
            "AMOUNT_OVER_PROVIDER_LIMIT",
            f"one {method} payment may be at most {money.major_units(MAX_PROVIDER_AMOUNT_MINOR)};"
            " pay in parts",
            field="amount",
        )


def payment_message(payment: PaymentRecord) -> billing_pb2.Payment:
    message = billing_pb2.Payment(
        payment_id=str(payment.id),
        invoice_id=str(payment.invoice_id or ""),
        user_id=str(payment.user_id),
        amount=money.major_units(payment.amount_minor),
        currency=payment.currency,
        method=billing_pb2.PaymentMethod.Value(payment.method),
        status=billing_pb2.PaymentStatus.Value(payment.status),
        failure_reason=payment.failure_reason,
        create_time=timestamp(payment.created_at),
        bank_reference=payment.bank_reference,
    )
    if payment.processed_at is not None:
        message.process_time.CopyFrom(timestamp(payment.processed_at))
    return message


class PaymentHandlers:
    def __init__(
        self,
        uow: UnitOfWork[BillingRepository],
        provider: ProviderClient,
        page_tokens: PageTokens,
        currency: str,
        clock: Clock = utc_now,
    ) -> None:
        self._uow = uow
        self._provider = provider
        self._page_tokens = page_tokens
        self._currency = currency
        self._clock = clock

    async def pay(
        self,
        caller: Caller,
        key: IdempotencyKey | None,
        request: billing_pb2.CreatePaymentRequest,
        method_name: str,
    ) -> billing_pb2.CreatePaymentResponse:
        invoice_id = parse_uuid(request.invoice_id, "invoiceId")
        amount = money.minor_units(request.amount)
        method = payment_method(method_name)
        within_provider_limit(method, amount)
        token = payment_token(method, request.payment_token)
        if request.currency:
            money.currency_code(request.currency)
        created: list[PaymentRecord] = []

        async def reserve(tx: Transaction[BillingRepository]) -> billing_pb2.CreatePaymentResponse:
            invoice = await tx.repos.invoice(invoice_id, lock=True)
            if invoice is None or invoice.user_id != caller.user_uuid:
                raise invoice_not_found()
            if invoice.status != PENDING:
                raise DomainError("INVOICE_NOT_PENDING", f"this invoice is {invoice.status}")
            if request.currency and request.currency != invoice.currency:
                raise DomainError("CURRENCY_MISMATCH", f"this invoice is in {invoice.currency}")
            open_minor = invoice.owed_minor - await tx.repos.in_flight_minor(invoice.id)
            if amount > open_minor:
                raise InvalidArgument(
                    "AMOUNT_EXCEEDS_OWED",
                    f"at most {money.major_units(max(open_minor, 0))} {invoice.currency}"
                    " is still to pay on this invoice",
                    field="amount",
                )
            payment = self._new_payment(
                invoice.user_id, invoice.id, amount, invoice.currency, method, token
            )
            return await self._start(tx, payment, created)

        response = await run_idempotently(
            self._uow, key, request, billing_pb2.CreatePaymentResponse, reserve
        )
        return await self._finish(response.payment_id, created)

    async def top_up(
        self,
        caller: Caller,
        key: IdempotencyKey | None,
        request: billing_pb2.TopUpWalletRequest,
        method_name: str,
    ) -> billing_pb2.TopUpWalletResponse:
        user_id = parse_uuid(request.user_id, "userId")
        if caller.user_id != str(user_id):
            raise PermissionDenied("NOT_OWNER", "only the wallet's owner tops it up")
        amount = money.minor_units(request.amount)
        method = payment_method(method_name, frozenset({CARD, BANK_TRANSFER}))
        within_provider_limit(method, amount)
        token = payment_token(method, request.payment_token)
        currency = request.currency or self._currency
        if money.currency_code(currency) != self._currency:
            raise DomainError("CURRENCY_NOT_SUPPORTED", f"wallets hold {self._currency} only")
        created: list[PaymentRecord] = []

        async def reserve(tx: Transaction[BillingRepository]) -> billing_pb2.TopUpWalletResponse:
            payment = self._new_payment(user_id, None, amount, currency, method, token)
            started = await self._start(tx, payment, created)
            return billing_pb2.TopUpWalletResponse(
                payment_id=started.payment_id, status=started.status
            )

        response = await run_idempotently(
            self._uow, key, request, billing_pb2.TopUpWalletResponse, reserve
        )
        finished = await self._finish(response.payment_id, created)
        return billing_pb2.TopUpWalletResponse(
            payment_id=finished.payment_id, status=finished.status
        )

    def _new_payment(
        self,
        user_id: uuid.UUID,
        invoice_id: uuid.UUID | None,
        amount: int,
        currency: str,
        method: str,
        token: str,
    ) -> PaymentRecord:
        now = self._clock()
        return PaymentRecord(
            id=uuid.uuid4(),
            invoice_id=invoice_id,
            user_id=user_id,
            amount_minor=amount,
            currency=currency,
            method=method,
            status=INITIATED,
            created_at=now,
            updated_at=now,
            payment_token=token,
        )

    async def _start(
        self,
        tx: Transaction[BillingRepository],
        payment: PaymentRecord,
        created: list[PaymentRecord],
    ) -> billing_pb2.CreatePaymentResponse:
        """Write the payment; a WALLET one is settled at once from the user's credit."""
        if payment.method == BANK_TRANSFER:
            # Each open transfer is asked after until it settles: a bounded number.
            await tx.repos.hold_user(payment.user_id)
            if await tx.repos.open_transfers(payment.user_id) >= OPEN_TRANSFERS_PER_USER:
                raise Throttled(
                    "TOO_MANY_OPEN_TRANSFERS",
                    f"at most {OPEN_TRANSFERS_PER_USER} bank transfers may be on their way"
                    " at once; pay one of them first",
                )
        await tx.repos.add_payment(payment)
        if payment.method == WALLET:
            await tx.repos.hold_user(payment.user_id)
            totals, _ = await tx.repos.totals(payment.user_id)
            if totals.wallet < payment.amount_minor:
                raise DomainError(
                    "INSUFFICIENT_CREDIT",
                    f"the wallet holds {money.major_units(max(totals.wallet, 0))}"
                    f" {payment.currency}: top it up first",
                )
            payment = await settlement.succeed(tx, payment, self._clock())
        else:
            created.append(payment)
        return billing_pb2.CreatePaymentResponse(
            payment_id=str(payment.id), status=billing_pb2.PaymentStatus.Value(payment.status)
        )

    async def _finish(
        self, payment_id: str, created: list[PaymentRecord]
    ) -> billing_pb2.CreatePaymentResponse:
        """Ask the provider for a payment this call wrote; a replay only reads it."""
        if created:
            await self.send_to_provider(created[0])
        async with self._uow.read() as repos:
            payment = await repos.payment(uuid.UUID(payment_id))
        assert payment is not None
        return billing_pb2.CreatePaymentResponse(
            payment_id=payment_id, status=billing_pb2.PaymentStatus.Value(payment.status)
        )

    async def send_to_provider(self, payment: PaymentRecord) -> None:
        """Charge the card or open the transfer, and record what the provider said; when it
        says nothing usable the payment stays INITIATED for reconciliation."""
        try:
            if payment.method == CARD:
                answer = await self._provider.charge(payment)
            else:
                answer = await self._provider.transfer(payment)
        except ProviderUnavailable as error:
            log.warning("payment %s left for reconciliation: %s", payment.id, error)
            return
        await self.apply(payment.id, answer)

    async def apply(self, payment_id: uuid.UUID, answer: ProviderObject) -> None:
        """What the provider reports of a payment, applied: a final status settles it; a
        pending one records the provider's ids (a transfer's bank reference)."""
        async with self._uow.transaction() as tx:
            now = self._clock()
            payment = await tx.repos.payment(payment_id, lock=True)
            if payment is None or payment.status != INITIATED:
                return
            if answer.status in FINAL:
                succeeded = answer.status == PROVIDER_SUCCEEDED
                await settlement.settle(
                    tx, payment, succeeded, answer.failure_code, now, answer.provider_id
                )
                return
            await tx.repos.save_payment(
                replace(
                    payment,
                    provider_id=answer.provider_id or payment.provider_id,
                    bank_reference=answer.bank_reference or payment.bank_reference,
                    updated_at=now,
                )
            )

    async def get(self, caller: Caller, payment_id: str) -> PaymentRecord:
        payment_uuid = parse_uuid(payment_id, "paymentId")
        async with self._uow.read() as repos:
            payment = await repos.payment(payment_uuid)
        if payment is None or not may_see(caller, payment.user_id):
            raise payment_not_found()
        return payment

    async def list_payments(
        self, caller: Caller, invoice_id: str, requested_size: int, page_token: str
    ) -> tuple[list[PaymentRecord], str]:
        invoice_uuid = parse_uuid(invoice_id, "invoiceId")
        limit = page_size(requested_size)
        listing = f"payments:{invoice_uuid}"
        cursor = self._page_tokens.decode(page_token, listing=listing)
        async with self._uow.read() as repos:
            invoice = await repos.invoice(invoice_uuid)
            if invoice is None or not may_see(caller, invoice.user_id):
                raise invoice_not_found()
            rows = await repos.payments(invoice_uuid, cursor, limit + 1)
        return self._page_tokens.page(
            rows, limit, lambda p: Cursor(p.created_at, p.id), listing=listing
        )
