"""Charges and transfers, the rules for how their status may change, and new ids."""

import secrets
from dataclasses import dataclass
from enum import StrEnum

from services.payment_sandbox.answers import JsonObject
from services.payment_sandbox.tokens import Decline

# Letters and digits a payer cannot misread when copying onto a bank form.
BANK_REFERENCE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
BANK_REFERENCE_LENGTH = 8
TRANSFER_RETURNED = "transfer_returned"


class Status(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def new_bank_reference() -> str:
    code = "".join(secrets.choice(BANK_REFERENCE_ALPHABET) for _ in range(BANK_REFERENCE_LENGTH))
    return f"WH-{code}"


@dataclass
class Charge:
    id: str
    amount: int
    currency: str
    reference: str
    description: str
    created: int
    status: Status = Status.PENDING
    failure_code: str | None = None
    failure_message: str | None = None

    def to_json(self) -> JsonObject:
        return {
            "id": self.id,
            "object": "charge",
            "amount": self.amount,
            "currency": self.currency,
            "reference": self.reference,
            "description": self.description,
            "status": str(self.status),
            "failure_code": self.failure_code,
            "failure_message": self.failure_message,
            "created": self.created,
        }


@dataclass
class Transfer:
    id: str
    amount: int
    currency: str
    reference: str
    bank_reference: str
    created: int
    status: Status = Status.PENDING
    failure_code: str | None = None

    def to_json(self) -> JsonObject:
        return {
            "id": self.id,
            "object": "transfer",
            "amount": self.amount,
            "currency": self.currency,
            "reference": self.reference,
            "bank_reference": self.bank_reference,
            "status": str(self.status),
            "failure_code": self.failure_code,
            "created": self.created,
        }


def settle_charge(charge: Charge, decline: Decline | None) -> bool:
    """Succeed or decline a pending charge; False (and no change) once it is settled."""
    if charge.status is not Status.PENDING:
        return False
    if decline is None:
        charge.status = Status.SUCCEEDED
    else:
        charge.status = Status.FAILED
        charge.failure_code = decline.code
        charge.failure_message = decline.message
    return True


def settle_transfer(transfer: Transfer, arrived: bool) -> bool:
    """The money arrived or was returned; False (and no change) once it is settled."""
    if transfer.status is not Status.PENDING:
        return False
    if arrived:
        transfer.status = Status.SUCCEEDED
    else:
        transfer.status = Status.FAILED
        transfer.failure_code = TRANSFER_RETURNED
    return True


def event_type(document: JsonObject) -> str:
    """`charge.succeeded`, `transfer.failed`, ...: what a settled object's event is called."""
    return f"{document['object']}.{document['status']}"
