"""The ledger's entries for each money event, and what they add up to."""

import uuid
from datetime import UTC, datetime

from services.billing import ledger
from services.billing.ledger import Entry, Totals

NOW = datetime(2026, 11, 27, tzinfo=UTC)
USER = uuid.uuid4()


def totals(entries: list[Entry]) -> Totals:
    return Totals(
        receivable=sum(e.amount_minor for e in entries if e.account == ledger.RECEIVABLE),
        wallet=sum(e.amount_minor for e in entries if e.account == ledger.WALLET),
    )


def issued(amount: int) -> tuple[uuid.UUID, list[Entry]]:
    invoice = uuid.uuid4()
    return invoice, ledger.invoice_issued(invoice, USER, amount, "RUB", NOW)


def paid(
    invoice: uuid.UUID | None, amount: int, from_wallet: bool = False, applied: int | None = None
) -> list[Entry]:
    """A payment of `amount`, of which the invoice took `applied` (default: all of it)."""
    took = amount if applied is None else applied
    return ledger.payment_succeeded(
        uuid.uuid4(), invoice, USER, amount, took, "RUB", from_wallet, NOW
    )


def test_an_invoice_is_owed_until_paid_in_parts() -> None:
    invoice, entries = issued(10_000)
    assert (totals(entries).amount_due, totals(entries).balance) == (10_000, -10_000)
    entries += paid(invoice, 2_500) + paid(invoice, 7_500)
    assert totals(entries) == Totals(receivable=0, wallet=0)


def test_a_top_up_is_wallet_credit_and_a_wallet_payment_moves_it_to_the_invoice() -> None:
    invoice, entries = issued(3_000)
    entries += paid(None, 5_000)
    assert (totals(entries).wallet, totals(entries).balance) == (5_000, 2_000)
    entries += paid(invoice, 3_000, from_wallet=True)
    assert totals(entries) == Totals(receivable=0, wallet=2_000)
    assert totals(entries).balance == 2_000


def test_a_cancelled_invoice_owes_nothing_and_its_partial_payments_become_credit() -> None:
    invoice, entries = issued(10_000)
    entries += paid(invoice, 4_000)
    entries += ledger.invoice_cancelled(invoice, USER, 10_000, 4_000, "RUB", NOW)
    assert totals(entries) == Totals(receivable=0, wallet=4_000)


def test_every_entry_names_a_cause_unique_by_kind() -> None:
    invoice, entries = issued(10_000)
    entries += paid(invoice, 4_000)
    entries += ledger.invoice_cancelled(invoice, USER, 10_000, 4_000, "RUB", NOW)
    causes = [(e.kind, e.cause) for e in entries]
    assert len(causes) == len(set(causes))


def test_money_arriving_for_an_invoice_no_longer_owing_it_becomes_wallet_credit() -> None:
    invoice, entries = issued(5_000)
    entries += paid(invoice, 5_000)
    # A bank transfer for the same invoice arrives late: nothing is owed any more.
    entries += paid(invoice, 3_000, applied=0)
    assert totals(entries) == Totals(receivable=0, wallet=3_000)
    # One arrives for more than is left: the invoice takes what it owes.
    other, more = issued(2_000)
    entries += more + paid(other, 2_500, applied=2_000)
    assert totals(entries) == Totals(receivable=0, wallet=3_500)
