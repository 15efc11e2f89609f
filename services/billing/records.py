"""What Billing's use cases read and write: plain records, money in minor units."""

import uuid
from dataclasses import dataclass
from datetime import datetime

PENDING, PAID, CANCELLED = "PENDING", "PAID", "CANCELLED"
INITIATED, SUCCESS, FAILED = "INITIATED", "SUCCESS", "FAILED"
CARD, BANK_TRANSFER, WALLET = "CARD", "BANK_TRANSFER", "WALLET"


@dataclass(frozen=True)
class InvoiceRecord:
    id: uuid.UUID
    user_id: uuid.UUID
    amount_minor: int
    currency: str
    description: str
    status: str
    due_at: datetime
    created_at: datetime
    updated_at: datetime
    paid_minor: int = 0
    overdue_at: datetime | None = None

    @property
    def owed_minor(self) -> int:
        return self.amount_minor - self.paid_minor if self.status == PENDING else 0


@dataclass(frozen=True)
class PaymentRecord:
    id: uuid.UUID
    invoice_id: uuid.UUID | None
    user_id: uuid.UUID
    amount_minor: int
    currency: str
    method: str
    status: str
    created_at: datetime
    updated_at: datetime
    failure_reason: str = ""
    payment_token: str = ""
    provider_id: str | None = None
    bank_reference: str = ""
    processed_at: datetime | None = None
