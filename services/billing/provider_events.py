"""The provider's webhooks: checked by their signature, applied once each.

The provider signs `<unix seconds>.<raw body>` with HMAC-SHA256 under the
shared secret and sends `Sandbox-Signature: t=<seconds>,v1=<hex>`. A
signature that does not match, or a timestamp more than TOLERANCE away from
our clock, is refused and changes nothing (a captured delivery replayed later
fails the timestamp). An event is recorded by its id in the same transaction
that applies it, so a redelivery (the provider retries until it hears 2xx,
and may send duplicates, late and out of order) changes nothing; a payment
settles once whichever of the answer, a webhook or reconciliation comes first.
"""

import hashlib
import hmac
import json
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from services.billing import settlement
from services.billing.records import BANK_TRANSFER, CARD, PaymentRecord
from services.billing.repository import BillingRepository
from services.runtime.clock import Clock, utc_now
from services.runtime.errors import InvalidArgument
from services.runtime.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)
SIGNATURE_HEADER = "sandbox-signature"
TOLERANCE = timedelta(minutes=5)
# How long an event id is remembered: far beyond the provider's retries (an
# hour) and a signature's life (minutes), so no repeat can still arrive.
REMEMBER_EVENTS = timedelta(days=7)
FORGET_BATCH = 10_000
MAX_EVENT_ID_LENGTH = 255
# Event types that settle a payment, and how.
OUTCOMES = {
    "charge.succeeded": True,
    "transfer.succeeded": True,
    "charge.failed": False,
    "transfer.failed": False,
}


def invalid_signature() -> InvalidArgument:
    return InvalidArgument(
        "INVALID_SIGNATURE", "the event's signature is missing, wrong or too old"
    )


def verify(secret: bytes, header: str, body: bytes, now: datetime) -> None:
    """Raise INVALID_SIGNATURE unless a `v1` of `header` signs `body` with `secret` within
    TOLERANCE (several v1 values: one per secret while the provider rotates its secret)."""
    if not header.isascii():
        raise invalid_signature()
    parts = [part.split("=", 1) for part in header.split(",") if "=" in part]
    stamps = [value for key, value in parts if key == "t"]
    signatures = [value.encode() for key, value in parts if key == "v1"]
    if len(stamps) != 1 or not stamps[0].isdigit() or len(stamps[0]) > 12:
        raise invalid_signature()
    stamp = stamps[0]
    if abs(now.timestamp() - int(stamp)) > TOLERANCE.total_seconds():
        raise invalid_signature()
    expected = hmac.new(secret, stamp.encode() + b"." + body, hashlib.sha256).hexdigest().encode()
    if not any(hmac.compare_digest(expected, signature) for signature in signatures):
        raise invalid_signature()


@dataclass(frozen=True)
class ProviderEvent:
    event_id: str
    type: str
    # Our payment id, from the charge's or transfer's reference; None when it is not ours.
    payment_id: uuid.UUID | None
    failure_code: str
    # The charge's or transfer's id, amount (minor units) and currency.
    provider_id: str
    amount: int | None
    currency: str


def parse(body: bytes) -> ProviderEvent:
    """The event a verified body carries; INVALID_ARGUMENT when it is not one."""
    try:
        decoded: Any = json.loads(body)
        event_id, kind = decoded["id"], decoded["type"]
        subject = decoded["data"]["object"]
        reference, code = subject.get("reference"), subject.get("failure_code")
        provider_id, amount, currency = (
            subject.get("id"),
            subject.get("amount"),
            subject.get("currency"),
        )
    except (KeyError, TypeError, AttributeError, ValueError, RecursionError):
        # ValueError covers undecodable or malformed JSON and over-long integers.
        raise InvalidArgument("INVALID_EVENT", "the body is not a provider event") from None
    if not (
        isinstance(event_id, str)
        and 0 < len(event_id) <= MAX_EVENT_ID_LENGTH
        and event_id.isascii()
        and event_id.isprintable()
    ):
        raise InvalidArgument("INVALID_EVENT", "the event has no usable id")
    return ProviderEvent(
        event_id,
        str(kind),
        _uuid_or_none(reference),
        str(code or ""),
        str(provider_id or ""),
        amount if isinstance(amount, int) and not isinstance(amount, bool) else None,
        str(currency or ""),
    )


def _uuid_or_none(value: object) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


class ProviderEvents:
    def __init__(
        self, uow: UnitOfWork[BillingRepository], secret: bytes, clock: Clock = utc_now
    ) -> None:
        self._uow = uow
        self._secret = secret
        self._clock = clock

    async def receive(self, signature: str, body: bytes) -> None:
        verify(self._secret, signature, body, self._clock())
        event = parse(body)
        async with self._uow.transaction() as tx:
            if not await tx.repos.remember_event(event.event_id, self._clock()):
                return  # applied before
            succeeded = OUTCOMES.get(event.type)
            if succeeded is None or event.payment_id is None:
                return  # nothing of ours to settle (acknowledged, so not sent again)
            payment = await tx.repos.payment(event.payment_id, lock=True)
            if payment is None:
                return
            if not describes(event, payment):
                log.error(
                    "provider event %s does not match payment %s (method, amount or currency);"
                    " not applied",
                    event.event_id,
                    payment.id,
                )
                return
            await settlement.settle(
                tx, payment, succeeded, event.failure_code, self._clock(), event.provider_id
            )


def describes(event: ProviderEvent, payment: PaymentRecord) -> bool:
    """Whether the event is about this payment as we made it: a charge for a CARD one, a
    transfer for a BANK_TRANSFER one, for its very amount and currency (a bank transfer
    may arrive short: that is not the payment)."""
    expected_kind = {CARD: "charge.", BANK_TRANSFER: "transfer."}.get(payment.method)
    return (
        expected_kind is not None
        and event.type.startswith(expected_kind)
        and event.amount == payment.amount_minor
        and event.currency == payment.currency
    )


async def forget_old_events(uow: UnitOfWork[BillingRepository], clock: Clock = utc_now) -> int:
    """Drop event ids no repeat can still come for; how many were dropped."""
    async with uow.transaction() as tx:
        return await tx.repos.forget_events(clock() - REMEMBER_EVENTS, FORGET_BATCH)
