"""The provider's webhooks: signatures checked over the raw body, events parsed safely."""

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.billing.provider_events import describes, parse, verify
from services.billing.records import BANK_TRANSFER, CARD, WALLET, PaymentRecord
from services.payment_sandbox.signing import signature_header
from services.runtime.errors import InvalidArgument

SECRET = b"a webhook secret of at least thirty-two bytes"
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def signed(body: bytes, at: datetime = NOW, secret: bytes = SECRET) -> str:
    """The header the provider sends (its own signer) for `body` at `at`."""
    return signature_header(secret, int(at.timestamp()), body)


def event(kind: str = "charge.succeeded", reference: object = None, **extra: object) -> bytes:
    """A provider event's body; `extra` fields go into the charge or transfer."""
    subject = {"id": "ch_1", "reference": str(reference or uuid.uuid4()), **extra}
    return json.dumps({"id": "evt_1", "type": kind, "data": {"object": subject}}).encode()


def test_a_signed_body_passes_within_five_minutes_either_way() -> None:
    body = event()
    verify(SECRET, signed(body), body, NOW)
    verify(SECRET, signed(body, NOW - timedelta(minutes=5)), body, NOW)
    verify(SECRET, signed(body, NOW + timedelta(minutes=5)), body, NOW)


@pytest.mark.parametrize(
    "header",
    [
        "",
        "t=abc,v1=00",
        "v1=00",
        "t=1",
        "t=" + "9" * 20 + ",v1=00",
        "garbage",
        "t=\u00b2,v1=00",
        "t=1,t=2,v1=00",
        "t=1764244800,v1=\u00e9",
    ],
)
def test_malformed_signatures_are_refused(header: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        verify(SECRET, header, event(), NOW)
    assert refused.value.reason == "INVALID_SIGNATURE"


def test_any_of_several_signatures_may_match_while_the_secret_rotates() -> None:
    body = event()
    current = signed(body)
    old = signed(body, secret=b"the previous secret, thirty-two bytes")
    stamp = current.split(",")[0]
    both = f"{stamp},{old.split(',')[1]},{current.split(',')[1]}"
    verify(SECRET, both, body, NOW)


def test_a_changed_body_a_wrong_secret_or_an_old_timestamp_is_refused() -> None:
    body = event()
    for header, sent in (
        (signed(body), body + b" "),
        (signed(body, secret=b"another secret of thirty-two bytes!!"), body),
        (signed(body, NOW - timedelta(minutes=6)), body),
        (signed(body, NOW + timedelta(minutes=6)), body),
    ):
        with pytest.raises(InvalidArgument):
            verify(SECRET, header, sent, NOW)


def test_an_event_names_our_payment_and_the_outcome() -> None:
    payment = uuid.uuid4()
    parsed = parse(event("charge.failed", payment, failure_code="card_declined"))
    assert (parsed.event_id, parsed.type, parsed.payment_id, parsed.failure_code) == (
        "evt_1",
        "charge.failed",
        payment,
        "card_declined",
    )
    assert parse(event(reference="not ours")).payment_id is None


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"[]",
        b"{",
        b"\xff",
        b'{"id": "evt"}',
        b'{"id": 5, "type": "x", "data": {"object": {}}}',
        json.dumps({"id": "e" * 300, "type": "x", "data": {"object": {}}}).encode(),
        json.dumps({"id": "evt\x00", "type": "x", "data": {"object": {}}}).encode(),
        b'{"id": "evt\\ud800", "type": "x", "data": {"object": {}}}',
        b"[" * 30_000 + b"]" * 30_000,
        b'{"id": "e", "type": "x", "data": {"object": {"amount": ' + b"9" * 5000 + b"}}}",
    ],
)
def test_what_is_not_an_event_is_refused(body: bytes) -> None:
    with pytest.raises(InvalidArgument) as refused:
        parse(body)
    assert refused.value.reason == "INVALID_EVENT"


def _payment(method: str, amount: int = 1250) -> PaymentRecord:
    return PaymentRecord(
        uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), amount, "RUB", method, "INITIATED", NOW, NOW
    )


def _about(payment: PaymentRecord, kind: str, amount: int, currency: str = "RUB") -> bytes:
    return event(kind, payment.id, amount=amount, currency=currency)


def test_an_event_settles_only_the_payment_it_describes() -> None:
    card, transfer = _payment(CARD), _payment(BANK_TRANSFER)
    assert describes(parse(_about(card, "charge.succeeded", 1250)), card)
    assert describes(parse(_about(transfer, "transfer.failed", 1250)), transfer)
    # A transfer's event for a card payment, a short transfer, another currency.
    assert not describes(parse(_about(card, "transfer.succeeded", 1250)), card)
    assert not describes(parse(_about(transfer, "transfer.succeeded", 1000)), transfer)
    assert not describes(parse(_about(card, "charge.succeeded", 1250, "EUR")), card)
    assert not describes(parse(_about(card, "charge.succeeded", True)), card)
    assert not describes(
        parse(_about(_payment(WALLET), "charge.succeeded", 1250)), _payment(WALLET)
    )
