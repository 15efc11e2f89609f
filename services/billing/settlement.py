"""A payment's end, applied exactly once: SUCCESS (ledger, invoice, events) or FAILED.

Whoever learns the outcome first (the provider's answer, a webhook,
reconciliation) settles it under the payment's row lock; the others find it
no longer INITIATED and change nothing. So a charge is counted once however
many times, and by however many paths, its outcome arrives.
"""

from dataclasses import replace
from datetime import datetime

from warmhouse.billing.v1 import billing_pb2

from services.billing import ledger, money
from services.billing.records import FAILED, INITIATED, PAID, SUCCESS, WALLET, PaymentRecord
from services.billing.repository import BillingRepository
from services.runtime.timestamps import timestamp
from services.runtime.unit_of_work import Transaction

# What a person reads when the provider gives no reason of its own.
DECLINED = "declined by the payment provider"
FAILURE_REASONS = {
    "card_declined": "the card was declined",
    "insufficient_funds": "the card has insufficient funds",
    "expired_card": "the card has expired",
    "processing_error": "the provider could not process the card; try again",
    "transfer_returned": "the bank transfer was returned",
    "invalid_request": "the provider refused the payment's details (e.g. an unknown card token)",
}


def failure_reason(code: str) -> str:
    return FAILURE_REASONS.get(code, DECLINED)


async def succeed(
    tx: Transaction[BillingRepository],
    payment: PaymentRecord,
    now: datetime,
    provider_id: str = "",
) -> PaymentRecord:
    """`payment` (row-locked, INITIATED or a new WALLET one) settled as SUCCESS. What its
    invoice no longer owed (paid meanwhile, or cancelled) becomes wallet credit."""
    done = replace(
        payment,
        status=SUCCESS,
        provider_id=provider_id or payment.provider_id,
        updated_at=now,
        processed_at=now,
    )
    await tx.repos.save_payment(done)
    applied = await _credit_invoice(tx, done, now) if payment.invoice_id is not None else 0
    await tx.repos.record(
        ledger.payment_succeeded(
            payment.id,
            payment.invoice_id,
            payment.user_id,
            payment.amount_minor,
            applied,
            payment.currency,
            payment.method == WALLET,
            now,
        )
    )
    await tx.add_event(_succeeded_event(done, now))
    return done


async def fail(
    tx: Transaction[BillingRepository],
    payment: PaymentRecord,
    code: str,
    now: datetime,
    provider_id: str = "",
) -> PaymentRecord:
    """`payment` (row-locked, INITIATED) settled as FAILED with a reason people can read."""
    done = replace(
        payment,
        status=FAILED,
        failure_reason=failure_reason(code),
        provider_id=provider_id or payment.provider_id,
        updated_at=now,
        processed_at=now,
    )
    await tx.repos.save_payment(done)
    await tx.add_event(
        billing_pb2.PaymentFailed(
            payment_id=str(done.id),
            invoice_id=str(done.invoice_id or ""),
            user_id=str(done.user_id),
            amount=money.major_units(done.amount_minor),
            currency=done.currency,
            method=billing_pb2.PaymentMethod.Value(done.method),
            failure_reason=done.failure_reason,
            occur_time=timestamp(now),
        )
    )
    return done


async def settle(
    tx: Transaction[BillingRepository],
    payment: PaymentRecord,
    succeeded: bool,
    code: str,
    now: datetime,
    provider_id: str = "",
) -> PaymentRecord:
    """`payment` (row-locked) settled unless it already was; the payment as it ends up."""
    if payment.status != INITIATED:
        return payment
    if succeeded:
        return await succeed(tx, payment, now, provider_id)
    return await fail(tx, payment, code, now, provider_id)


async def _credit_invoice(
    tx: Transaction[BillingRepository], payment: PaymentRecord, now: datetime
) -> int:
    """Add the payment to its invoice, up to what the invoice still owes; what it took."""
    assert payment.invoice_id is not None
    invoice = await tx.repos.invoice(payment.invoice_id, lock=True)
    if invoice is None:
        return 0
    applied = min(invoice.owed_minor, payment.amount_minor)
    if not applied:
        return 0
    paid = invoice.paid_minor + applied
    status = PAID if paid == invoice.amount_minor else invoice.status
    await tx.repos.save_invoice(replace(invoice, paid_minor=paid, status=status, updated_at=now))
    if status == PAID:
        await tx.add_event(
            billing_pb2.InvoicePaid(
                invoice_id=str(invoice.id),
                user_id=str(invoice.user_id),
                payment_id=str(payment.id),
                occur_time=timestamp(now),
                amount=money.major_units(invoice.amount_minor),
                currency=invoice.currency,
            )
        )
    return applied


def _succeeded_event(payment: PaymentRecord, now: datetime) -> billing_pb2.PaymentSucceeded:
    return billing_pb2.PaymentSucceeded(
        payment_id=str(payment.id),
        invoice_id=str(payment.invoice_id or ""),
        user_id=str(payment.user_id),
        amount=money.major_units(payment.amount_minor),
        currency=payment.currency,
        method=billing_pb2.PaymentMethod.Value(payment.method),
        occur_time=timestamp(now),
    )
