"""The ledger: what each money event writes, and what a user's entries add up to. Pure.

Two accounts per user. RECEIVABLE: an invoice issued is a debit (-), a
payment on it a credit (+); so its sum is minus what the user still owes.
WALLET: top-ups are credits, WALLET payments debits. A user's balance is the
sum of both: credits minus debits, negative when the user owes. Every entry
names its cause (kind + the invoice's or payment's id), unique in the
table, so an event applied twice writes nothing the second time.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime

RECEIVABLE, WALLET = "RECEIVABLE", "WALLET"
INVOICE_ISSUED = "INVOICE_ISSUED"
INVOICE_CANCELLED = "INVOICE_CANCELLED"
# A cancelled invoice's partial payments move to the wallet.
REFUNDED_TO_WALLET = "REFUNDED_TO_WALLET"
PAYMENT_RECEIVED = "PAYMENT_RECEIVED"
# Money that arrived for an invoice no longer owing it (paid meanwhile, or
# cancelled): it becomes wallet credit rather than vanishing.
OVERPAID_TO_WALLET = "OVERPAID_TO_WALLET"
WALLET_SPENT = "WALLET_SPENT"
WALLET_TOPPED_UP = "WALLET_TOPPED_UP"


@dataclass(frozen=True)
class Entry:
    user_id: uuid.UUID
    account: str
    kind: str
    amount_minor: int
    currency: str
    cause: str
    created_at: datetime
    invoice_id: uuid.UUID | None = None
    payment_id: uuid.UUID | None = None


@dataclass(frozen=True)
class Totals:
    """A user's sums by account, in minor units."""

    receivable: int = 0
    wallet: int = 0

    @property
    def amount_due(self) -> int:
        return -self.receivable

    @property
    def balance(self) -> int:
        return self.receivable + self.wallet


def invoice_issued(
    invoice_id: uuid.UUID, user_id: uuid.UUID, amount: int, currency: str, at: datetime
) -> list[Entry]:
    return [
        Entry(
            user_id,
            RECEIVABLE,
            INVOICE_ISSUED,
            -amount,
            currency,
            str(invoice_id),
            at,
            invoice_id=invoice_id,
        )
    ]


def invoice_cancelled(
    invoice_id: uuid.UUID, user_id: uuid.UUID, amount: int, paid: int, currency: str, at: datetime
) -> list[Entry]:
    """The debit reversed; what was already paid on it becomes wallet credit."""
    cause = str(invoice_id)
    entries = [
        Entry(
            user_id,
            RECEIVABLE,
            INVOICE_CANCELLED,
            amount,
            currency,
            cause,
            at,
            invoice_id=invoice_id,
        )
    ]
    if paid:
        entries += [
            Entry(
                user_id,
                RECEIVABLE,
                REFUNDED_TO_WALLET,
                -paid,
                currency,
                cause,
                at,
                invoice_id=invoice_id,
            ),
            Entry(
                user_id,
                WALLET,
                REFUNDED_TO_WALLET,
                paid,
                currency,
                f"{cause}:wallet",
                at,
                invoice_id=invoice_id,
            ),
        ]
    return entries


def payment_succeeded(
    payment_id: uuid.UUID,
    invoice_id: uuid.UUID | None,
    user_id: uuid.UUID,
    amount: int,
    applied: int,
    currency: str,
    from_wallet: bool,
    at: datetime,
) -> list[Entry]:
    """A top-up (no invoice) credits the wallet. A payment credits the receivable with
    what the invoice still owed (`applied`) and the wallet with the rest; paid from the
    wallet, the wallet gives the whole amount."""
    cause = str(payment_id)
    if invoice_id is None:
        return [
            Entry(
                user_id,
                WALLET,
                WALLET_TOPPED_UP,
                amount,
                currency,
                cause,
                at,
                payment_id=payment_id,
            )
        ]
    entries = []
    if applied:
        entries.append(
            Entry(
                user_id,
                RECEIVABLE,
                PAYMENT_RECEIVED,
                applied,
                currency,
                cause,
                at,
                invoice_id=invoice_id,
                payment_id=payment_id,
            )
        )
    if amount > applied:
        entries.append(
            Entry(
                user_id,
                WALLET,
                OVERPAID_TO_WALLET,
                amount - applied,
                currency,
                cause,
                at,
                invoice_id=invoice_id,
                payment_id=payment_id,
            )
        )
    if from_wallet:
        entries.append(
            Entry(
                user_id,
                WALLET,
                WALLET_SPENT,
                -amount,
                currency,
                cause,
                at,
                invoice_id=invoice_id,
                payment_id=payment_id,
            )
        )
    return entries
