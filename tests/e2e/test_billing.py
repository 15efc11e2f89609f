"""Billing through Envoy: invoices, payments by card, bank transfer and wallet, and the
payment provider's sandbox behind them (its charges, transfers and signed webhooks).

Every test makes its own users and invoices. What the provider recorded is read
from the sandbox itself, so "charged once" means once at the provider, not only
in Billing's own rows.
"""

import asyncio
import hashlib
import hmac
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import nats
import pytest
from google.protobuf import timestamp_pb2
from warmhouse.billing.v1 import billing_pb2, billing_pb2_grpc

from services.devstack.stack import Stack
from services.payment_sandbox.signing import signature_header
from services.runtime.internal_auth import SERVICE_TOKEN_HEADER, ServiceCredentials
from tests.e2e.billing_flows import (
    CURRENCY,
    DECLINE_TOKENS,
    Sandbox,
    balance,
    invoice,
    invoice_payments,
    issue_invoice,
    minor,
    money_of,
    paid,
    pay,
    payment,
    payment_status,
    sandbox_of,
    send_event,
    top_up,
    transfer_event,
)
from tests.e2e.homes import Person, ok, person
from tests.e2e.rest import Rest
from tests.integration.households import events_about
from tests.polling import eventually, wait_until

# Webhooks and reconciliation settle payments in the background: generous deadlines.
WEBHOOK_DEADLINE_SECONDS = 20
# tok_hang holds its answer 6 s here; Billing gives up after 2 s and reconciliation
# asks after a payment once it is 3 s old (tests/e2e/conftest.py).
HANG_DEADLINE_SECONDS = 60


@pytest.fixture(scope="module")
def sandbox(stack: Stack) -> Sandbox:
    return sandbox_of(stack)


def settled(api: Rest, reader: Person, payment_id: str, status: str) -> dict[str, Any]:
    """The payment once it reached `status` (a webhook or reconciliation settles it)."""

    def probe() -> dict[str, Any]:
        found = payment(api, reader, payment_id)
        return found if found["status"] == status else {}

    return wait_until(
        probe,
        timeout=WEBHOOK_DEADLINE_SECONDS,
        interval=0.2,
        what=f"payment {payment_id} becoming {status}",
    )


def status_and_paid(found: dict[str, Any]) -> tuple[str, float]:
    return found["status"], found["amountPaid"]


# Invoices: who issues, who reads


def test_an_admin_issues_an_invoice_only_its_user_and_admins_see(api: Rest, root: Person) -> None:
    user, stranger = person(api), person(api)
    issued = issue_invoice(api, root, user.user_id, 1234.56, "Подписка на отопление, март")
    assert issued["userId"] == user.user_id
    assert issued["amount"] == 1234.56
    assert issued["amountPaid"] == 0
    assert issued["currency"] == CURRENCY
    assert issued["status"] == "PENDING"
    assert issued["description"] == "Подписка на отопление, март"
    invoice_id = issued["invoiceId"]

    assert invoice(api, user, invoice_id) == issued
    assert invoice(api, root, invoice_id) == issued
    hidden = api.call("GET", f"/invoices/{invoice_id}", token=stranger.token)
    assert hidden.status == 404
    assert hidden.reason == "INVOICE_NOT_FOUND"

    assert balance(api, user) == {
        "userId": user.user_id,
        "amountDue": 1234.56,
        "walletCredit": 0,
        "balance": -1234.56,
        "currency": CURRENCY,
    }
    assert money_of(balance(api, root, user.user_id)) == (1234.56, 0, -1234.56)
    assert api.call("GET", f"/user/{user.user_id}/balance", token=stranger.token).status == 403


def test_a_user_may_neither_issue_nor_cancel_an_invoice(api: Rest, root: Person) -> None:
    user = person(api)
    body = {
        "userId": user.user_id,
        "amount": 10,
        "description": "free heating?",
        "dueTime": "2099-01-01T00:00:00Z",
    }
    issuing = api.call("POST", "/invoices", body, token=user.token)
    assert issuing.status == 403
    assert issuing.reason == "ADMIN_REQUIRED"

    invoice_id = issue_invoice(api, root, user.user_id, 10)["invoiceId"]
    cancelling = api.call("POST", f"/invoices/{invoice_id}:cancel", {}, token=user.token)
    assert cancelling.status == 403
    assert invoice(api, user, invoice_id)["status"] == "PENDING"
    assert ok(api.call("GET", "/invoices", token=user.token))["invoices"] == [
        invoice(api, user, invoice_id)
    ]


def test_a_user_lists_only_their_own_invoices(api: Rest, root: Person) -> None:
    user, other = person(api), person(api)
    mine = [issue_invoice(api, root, user.user_id, amount)["invoiceId"] for amount in (5, 7.5)]
    theirs = issue_invoice(api, root, other.user_id, 9)["invoiceId"]
    paid(api, user, mine[0], 5)

    listed = ok(api.call("GET", "/invoices?pageSize=100", token=user.token))["invoices"]
    assert [found["invoiceId"] for found in listed] == mine[::-1]  # newest first
    pending = ok(api.call("GET", "/invoices?status=PENDING", token=user.token))["invoices"]
    assert [found["invoiceId"] for found in pending] == [mine[1]]

    by_admin = api.call("GET", f"/invoices?userId={other.user_id}", token=root.token)
    assert [found["invoiceId"] for found in ok(by_admin)["invoices"]] == [theirs]
    prying = api.call("GET", f"/invoices?userId={other.user_id}", token=user.token)
    assert prying.status == 403


# Paying by card


def test_a_card_payment_in_full_pays_the_invoice_and_charges_once(
    api: Rest, root: Person, sandbox: Sandbox
) -> None:
    user, stranger = person(api), person(api)
    invoice_id = issue_invoice(api, root, user.user_id, 42.5)["invoiceId"]
    assert pay(api, stranger, invoice_id, 42.5).status == 404

    payment_id, status = paid(api, user, invoice_id, 42.5)
    assert status == "SUCCESS"
    done = payment(api, user, payment_id)
    assert done["invoiceId"] == invoice_id
    assert done["userId"] == user.user_id
    assert done["amount"] == 42.5
    assert done["currency"] == CURRENCY
    assert done["method"] == "CARD"
    assert done["status"] == "SUCCESS"
    assert done["failureReason"] == ""
    assert done["bankReference"] == ""
    assert done["processTime"]
    assert api.call("GET", f"/payments/{payment_id}", token=stranger.token).status == 404

    settled_invoice = invoice(api, user, invoice_id)
    assert settled_invoice["status"] == "PAID"
    assert settled_invoice["amountPaid"] == settled_invoice["amount"] == 42.5
    assert money_of(balance(api, user)) == (0, 0, 0)
    assert [found["paymentId"] for found in invoice_payments(api, user, invoice_id)] == [payment_id]

    charges = sandbox.charges_for(payment_id)
    assert len(charges) == 1
    assert charges[0]["status"] == "succeeded"
    assert charges[0]["amount"] == minor(42.5)
    assert charges[0]["currency"] == CURRENCY
    assert charges[0]["reference"] == payment_id


def test_ten_payments_of_ten_kopecks_pay_one_rouble_exactly(
    api: Rest, root: Person, sandbox: Sandbox
) -> None:
    user = person(api)
    invoice_id = issue_invoice(api, root, user.user_id, 1.0)["invoiceId"]
    payment_ids: list[str] = []
    for count in range(1, 11):
        payment_id, status = paid(api, user, invoice_id, 0.1)
        assert status == "SUCCESS"
        payment_ids.append(payment_id)
        # Each step exact: 0.30000000000000004 would be a float sum leaking out.
        assert invoice(api, user, invoice_id)["amountPaid"] == count / 10
    settled_invoice = invoice(api, user, invoice_id)
    assert settled_invoice["status"] == "PAID"
    assert settled_invoice["amountPaid"] == 1.0
    assert money_of(balance(api, user)) == (0, 0, 0)
    for payment_id in payment_ids:
        assert [charge["amount"] for charge in sandbox.charges_for(payment_id)] == [10]


def test_paying_more_than_is_still_owed_is_refused_and_charges_nothing(
    api: Rest, root: Person, sandbox: Sandbox
) -> None:
    user = person(api)
    invoice_id = issue_invoice(api, root, user.user_id, 1.0)["invoiceId"]
    paid(api, user, invoice_id, 0.1)
    paid(api, user, invoice_id, 0.2)
    assert invoice(api, user, invoice_id)["amountPaid"] == 0.3
    assert money_of(balance(api, user)) == (0.7, 0, -0.7)

    charges_before = len(sandbox.all_charges())
    too_much = pay(api, user, invoice_id, 0.71)
    assert too_much.status == 400
    assert too_much.reason == "AMOUNT_EXCEEDS_OWED"
    assert len(sandbox.all_charges()) == charges_before
    assert len(invoice_payments(api, user, invoice_id)) == 2
    assert money_of(balance(api, user)) == (0.7, 0, -0.7)

    _, status = paid(api, user, invoice_id, 0.7)
    assert status == "SUCCESS"
    assert invoice(api, user, invoice_id)["status"] == "PAID"
    after_paid = pay(api, user, invoice_id, 0.01)
    assert after_paid.status == 400
    assert after_paid.reason == "INVOICE_NOT_PENDING"


def test_declined_cards_fail_with_a_reason_and_leave_the_invoice_owed(
    api: Rest, root: Person, sandbox: Sandbox
) -> None:
    user = person(api)
    invoice_id = issue_invoice(api, root, user.user_id, 99.99)["invoiceId"]
    reasons: dict[str, str] = {}
    for token in DECLINE_TOKENS:
        payment_id, status = paid(api, user, invoice_id, 99.99, payment_token=token)
        assert status == "FAILED", token
        failed = payment(api, user, payment_id)
        assert failed["status"] == "FAILED"
        assert failed["processTime"]
        reasons[token] = failed["failureReason"]
        charges = sandbox.charges_for(payment_id)
        assert [charge["status"] for charge in charges] == ["failed"], token
        # Meant for people: words, not the provider's code (e.g. "expired_card").
        assert charges[0]["failure_code"] not in failed["failureReason"]
        assert " " in failed["failureReason"]
    assert len(set(reasons.values())) == len(DECLINE_TOKENS), reasons

    still_owed = invoice(api, user, invoice_id)
    assert still_owed["status"] == "PENDING"
    assert still_owed["amountPaid"] == 0
    assert money_of(balance(api, user)) == (99.99, 0, -99.99)
    assert len(invoice_payments(api, user, invoice_id)) == len(DECLINE_TOKENS)


# Idempotency


def test_fifty_concurrent_retries_with_one_key_make_one_payment_and_one_charge(
    api: Rest, root: Person, sandbox: Sandbox
) -> None:
    user = person(api)
    invoice_id = issue_invoice(api, root, user.user_id, 300)["invoiceId"]
    key = f"pay-{invoice_id}"
    callers = 50
    start = threading.Barrier(callers)

    def attempt(_: int) -> tuple[int, Any]:
        start.wait(timeout=30)
        reply = pay(api, user, invoice_id, 300, idempotency_key=key)
        return reply.status, reply.body

    with ThreadPoolExecutor(max_workers=callers) as pool:
        replies = list(pool.map(attempt, range(callers)))

    assert [status for status, _ in replies] == [200] * callers, replies
    payment_ids = {body["paymentId"] for _, body in replies}
    assert len(payment_ids) == 1
    (payment_id,) = payment_ids
    assert {body["status"] for _, body in replies} <= {"INITIATED", "SUCCESS"}
    assert settled(api, user, payment_id, "SUCCESS")["amount"] == 300

    assert [found["paymentId"] for found in invoice_payments(api, user, invoice_id)] == [payment_id]
    assert len(sandbox.charges_for(payment_id)) == 1
    assert invoice(api, user, invoice_id)["status"] == "PAID"
    assert money_of(balance(api, user)) == (0, 0, 0)

    again = pay(api, user, invoice_id, 300, idempotency_key=key)
    assert again.status == 200
    assert again.body == {"paymentId": payment_id, "status": "SUCCESS"}
    other_amount = pay(api, user, invoice_id, 150, idempotency_key=key)
    assert other_amount.status == 409
    assert other_amount.reason == "IDEMPOTENCY_KEY_REUSED"
    assert len(sandbox.charges_for(payment_id)) == 1


# The wallet


def test_the_wallet_pays_only_with_credit_topped_up_first(
    api: Rest, root: Person, sandbox: Sandbox
) -> None:
    user = person(api)
    invoice_id = issue_invoice(api, root, user.user_id, 80)["invoiceId"]
    empty = pay(api, user, invoice_id, 30, method="WALLET")
    assert empty.status == 400
    assert empty.reason == "INSUFFICIENT_CREDIT"
    assert invoice_payments(api, user, invoice_id) == []

    topped = ok(top_up(api, user, 50))
    assert topped["status"] == "SUCCESS"
    top_up_charges = sandbox.charges_for(topped["paymentId"])
    assert [(charge["amount"], charge["status"]) for charge in top_up_charges] == [
        (minor(50), "succeeded")
    ]
    assert money_of(balance(api, user)) == (80, 50, -30)

    charges_before = len(sandbox.all_charges())
    payment_id, status = paid(api, user, invoice_id, 30, method="WALLET")
    assert status == "SUCCESS"
    from_wallet = payment(api, user, payment_id)
    assert from_wallet["method"] == "WALLET"
    assert from_wallet["status"] == "SUCCESS"
    assert sandbox.charges_for(payment_id) == []
    assert len(sandbox.all_charges()) == charges_before
    assert invoice(api, user, invoice_id)["amountPaid"] == 30
    assert money_of(balance(api, user)) == (50, 20, -30)

    more_than_left = pay(api, user, invoice_id, 20.01, method="WALLET")
    assert more_than_left.status == 400
    assert more_than_left.reason == "INSUFFICIENT_CREDIT"
    assert money_of(balance(api, user)) == (50, 20, -30)


def test_only_the_owner_tops_up_a_wallet(api: Rest) -> None:
    user, stranger = person(api), person(api)
    body = {"amount": 10, "method": "CARD", "paymentToken": "tok_visa"}
    reply = api.call("POST", f"/user/{user.user_id}/wallet/top-ups", body, token=stranger.token)
    assert reply.status == 403
    assert money_of(balance(api, user)) == (0, 0, 0)


# Bank transfers and the provider's webhooks


def test_a_bank_transfer_is_paid_when_the_providers_webhook_says_the_money_arrived(
    api: Rest, root: Person, sandbox: Sandbox
) -> None:
    user = person(api)
    invoice_id = issue_invoice(api, root, user.user_id, 250)["invoiceId"]
    payment_id, status = paid(api, user, invoice_id, 250, method="BANK_TRANSFER")
    assert status == "INITIATED"
    waiting = payment(api, user, payment_id)
    transfer = sandbox.transfer_for(payment_id)
    assert waiting["bankReference"] == transfer["bank_reference"]
    assert waiting["bankReference"].startswith("WH-")
    assert transfer["amount"] == minor(250)
    assert invoice(api, user, invoice_id)["status"] == "PENDING"

    sandbox.arrive(payment_id)
    done = settled(api, user, payment_id, "SUCCESS")
    assert done["bankReference"] == transfer["bank_reference"]
    settled_invoice = invoice(api, user, invoice_id)
    assert settled_invoice["status"] == "PAID"
    assert settled_invoice["amountPaid"] == 250
    assert money_of(balance(api, user)) == (0, 0, 0)
    (event,) = sandbox.events_for({payment_id})
    assert event["type"] == "transfer.succeeded"
    # Billing took the signed webhook through Envoy on the first try.
    assert event["delivery"]["delivered"] is True
    assert event["delivery"]["last_status"] == 200


def test_webhooks_duplicated_shuffled_and_replayed_settle_each_payment_once(
    api: Rest, root: Person, sandbox: Sandbox
) -> None:
    user = person(api)
    in_full, returned, in_part = (
        issue_invoice(api, root, user.user_id, amount)["invoiceId"] for amount in (100, 50, 30)
    )
    copies = 4
    sandbox.set_webhook_mode(duplicates=copies - 1, delay_seconds=1, shuffle=True)
    try:
        payments = {
            invoice_id: paid(api, user, invoice_id, amount, method="BANK_TRANSFER")[0]
            for invoice_id, amount in ((in_full, 100), (returned, 50), (in_part, 10))
        }
        sandbox.arrive(payments[in_full])
        sandbox.fail(payments[returned])
        sandbox.arrive(payments[in_part])
        ours = set(payments.values())

        def delivered(times: int) -> bool:
            """Each event sent `times` times or more, and taken (2xx) the last time."""
            events = sandbox.events_for(ours)
            return len(events) == len(ours) and all(
                event["delivery"]["attempts"] >= times and event["delivery"]["last_status"] == 200
                for event in events
            )

        def state() -> dict[str, Any]:
            return {
                "payments": {
                    invoice_id: payment_status(api, user, payment_id)
                    for invoice_id, payment_id in payments.items()
                },
                "invoices": {
                    invoice_id: status_and_paid(invoice(api, user, invoice_id))
                    for invoice_id in payments
                },
                "payments made": {
                    invoice_id: len(invoice_payments(api, user, invoice_id))
                    for invoice_id in payments
                },
                "balance": money_of(balance(api, user)),
            }

        single_delivery = {
            "payments": {in_full: "SUCCESS", returned: "FAILED", in_part: "SUCCESS"},
            "invoices": {
                in_full: ("PAID", 100),
                returned: ("PENDING", 0),
                in_part: ("PENDING", 10),
            },
            "payments made": {in_full: 1, returned: 1, in_part: 1},
            "balance": (70, 0, -70),
        }
        wait_until(
            lambda: delivered(copies),
            timeout=WEBHOOK_DEADLINE_SECONDS,
            interval=0.2,
            what="every copy of every event delivered",
        )
        assert state() == single_delivery
        failed = payment(api, user, payments[returned])
        assert failed["failureReason"]
        assert "transfer_returned" not in failed["failureReason"]

        assert sandbox.replay_webhooks() >= len(ours)
        wait_until(
            lambda: delivered(copies + 1),
            timeout=WEBHOOK_DEADLINE_SECONDS,
            interval=0.2,
            what="the replayed events delivered",
        )
        assert state() == single_delivery
    finally:
        sandbox.set_webhook_mode()


def test_a_webhook_with_a_bad_or_stale_signature_is_refused_and_changes_nothing(
    api: Rest, root: Person, sandbox: Sandbox
) -> None:
    user = person(api)
    invoice_id = issue_invoice(api, root, user.user_id, 60)["invoiceId"]
    payment_id, _ = paid(api, user, invoice_id, 60, method="BANK_TRANSFER")
    body = transfer_event(sandbox.transfer_for(payment_id))
    now = int(time.time())
    secret = sandbox.webhook_secret
    tampered = body.replace(b'"transfer.succeeded"', b'"transfer.failed"')
    assert tampered != body

    forged = {
        "no signature": None,
        "another secret": signature_header(b"not the webhook secret at all, nope", now, body),
        "another body": signature_header(secret, now, tampered),
        "no timestamp": signature_header(secret, now, body).split(",", 1)[1],
        "garbage": "t=now,v1=zz",
        "ten minutes old": signature_header(secret, now - 600, body),
        "ten minutes ahead": signature_header(secret, now + 600, body),
    }
    for what, signature in forged.items():
        refused = send_event(api, body, signature)
        assert refused.status == 400, what
        assert refused.reason == "INVALID_SIGNATURE", what
    assert payment_status(api, user, payment_id) == "INITIATED"
    assert invoice(api, user, invoice_id)["status"] == "PENDING"
    assert money_of(balance(api, user)) == (60, 0, -60)

    # The same event, signed now: the refusals above were about the signature
    # alone, and none of them used up the event's id.
    accepted = send_event(api, body, signature_header(secret, int(time.time()), body))
    assert accepted.status == 200, accepted
    assert payment_status(api, user, payment_id) == "SUCCESS"
    assert invoice(api, user, invoice_id)["status"] == "PAID"


def test_a_signature_header_with_several_v1_is_accepted_when_any_matches(
    api: Rest, root: Person, sandbox: Sandbox
) -> None:
    # The provider's format (services/payment_sandbox/__init__.py): "take t and every v1
    # ... accept if any v1 equals it", as while a webhook secret is being rolled over.
    user = person(api)
    invoice_id = issue_invoice(api, root, user.user_id, 12)["invoiceId"]
    payment_id, _ = paid(api, user, invoice_id, 12, method="BANK_TRANSFER")
    body = transfer_event(sandbox.transfer_for(payment_id))
    now = int(time.time())
    valid = signature_header(sandbox.webhook_secret, now, body)
    stale_secret = signature_header(b"the secret before the roll-over, x", now, body)
    header = f"{valid},{stale_secret.split(',', 1)[1]}"
    accepted = send_event(api, body, header)
    assert accepted.status == 200, accepted
    assert payment_status(api, user, payment_id) == "SUCCESS"


def test_a_signature_timestamp_of_non_ascii_digits_is_400_not_500(
    api: Rest, root: Person, sandbox: Sandbox
) -> None:
    user = person(api)
    invoice_id = issue_invoice(api, root, user.user_id, 12)["invoiceId"]
    payment_id, _ = paid(api, user, invoice_id, 12, method="BANK_TRANSFER")
    body = transfer_event(sandbox.transfer_for(payment_id))
    digest = signature_header(sandbox.webhook_secret, int(time.time()), body).split(",", 1)[1]
    # "\u00b2" (superscript two) is a digit to str.isdigit() but not to int().
    refused = send_event(api, body, f"t=\u00b2,{digest}")
    assert refused.status == 400, refused
    assert refused.reason == "INVALID_SIGNATURE"
    assert payment_status(api, user, payment_id) == "INITIATED"


# Cancelling


def test_an_admin_cancels_a_pending_invoice_but_not_a_paid_one(api: Rest, root: Person) -> None:
    user = person(api)
    kept = issue_invoice(api, root, user.user_id, 15)["invoiceId"]
    mistaken = issue_invoice(api, root, user.user_id, 40)["invoiceId"]
    assert money_of(balance(api, user)) == (55, 0, -55)

    cancelled = ok(api.call("POST", f"/invoices/{mistaken}:cancel", {}, token=root.token))
    assert cancelled["invoice"]["status"] == "CANCELLED"
    assert invoice(api, user, mistaken)["status"] == "CANCELLED"
    assert money_of(balance(api, user)) == (15, 0, -15)
    twice = api.call("POST", f"/invoices/{mistaken}:cancel", {}, token=root.token)
    assert twice.status == 400
    assert twice.reason == "INVOICE_NOT_PENDING"
    assert pay(api, user, mistaken, 40).reason == "INVOICE_NOT_PENDING"

    paid(api, user, kept, 15)
    paid_one = api.call("POST", f"/invoices/{kept}:cancel", {}, token=root.token)
    assert paid_one.status == 400
    assert paid_one.reason == "INVOICE_NOT_PENDING"
    assert invoice(api, user, kept)["status"] == "PAID"
    assert money_of(balance(api, user)) == (0, 0, 0)


def test_cancelling_a_partly_paid_invoice_moves_what_was_paid_to_the_wallet(
    api: Rest, root: Person
) -> None:
    user = person(api)
    partly_paid = issue_invoice(api, root, user.user_id, 100)["invoiceId"]
    next_one = issue_invoice(api, root, user.user_id, 25)["invoiceId"]
    paid(api, user, partly_paid, 30.15)
    assert money_of(balance(api, user)) == (94.85, 0, -94.85)

    cancelled = ok(api.call("POST", f"/invoices/{partly_paid}:cancel", {}, token=root.token))
    assert cancelled["invoice"]["status"] == "CANCELLED"
    assert cancelled["invoice"]["amountPaid"] == 30.15
    assert money_of(balance(api, user)) == (25, 30.15, 5.15)

    # The credit is real money: it pays the next invoice.
    _, status = paid(api, user, next_one, 25, method="WALLET")
    assert status == "SUCCESS"
    assert money_of(balance(api, user)) == (0, 5.15, 5.15)


# A provider that does not answer


def test_a_charge_the_provider_never_answered_is_settled_by_reconciliation(
    api: Rest, root: Person, sandbox: Sandbox
) -> None:
    user = person(api)
    invoice_id = issue_invoice(api, root, user.user_id, 77.7)["invoiceId"]
    # The provider's webhook is held for an hour: only reconciliation can settle it.
    sandbox.set_webhook_mode(delay_seconds=3600)
    try:
        started = time.monotonic()
        payment_id, status = paid(api, user, invoice_id, 77.7, payment_token="tok_hang")
        # Billing gives up on the provider after 2 s; tok_hang would hold it 6 s.
        assert time.monotonic() - started < 5
        assert status == "INITIATED"
        assert invoice(api, user, invoice_id)["status"] == "PENDING"
        assert [charge["status"] for charge in sandbox.charges_for(payment_id)] == ["pending"]

        wait_until(
            lambda: payment_status(api, user, payment_id) == "SUCCESS",
            timeout=HANG_DEADLINE_SECONDS,
            interval=0.5,
            what="the hanging charge settling",
        )
        (event,) = sandbox.events_for({payment_id})
        assert event["type"] == "charge.succeeded"
        assert event["delivery"]["attempts"] == 0
    finally:
        sandbox.set_webhook_mode()
    assert invoice(api, user, invoice_id)["status"] == "PAID"
    assert money_of(balance(api, user)) == (0, 0, 0)
    charges = sandbox.charges_for(payment_id)
    assert [(charge["status"], charge["amount"]) for charge in charges] == [
        ("succeeded", minor(77.7))
    ]


def test_a_charge_that_timed_out_and_was_then_declined_fails_with_nothing_charged(
    api: Rest, root: Person, sandbox: Sandbox
) -> None:
    user = person(api)
    invoice_id = issue_invoice(api, root, user.user_id, 12.5)["invoiceId"]
    payment_id, status = paid(api, user, invoice_id, 12.5, payment_token="tok_hangDeclined")
    assert status == "INITIATED"
    wait_until(
        lambda: payment_status(api, user, payment_id) == "FAILED",
        timeout=HANG_DEADLINE_SECONDS,
        interval=0.5,
        what="the timed-out charge failing",
    )
    failed = ok(api.call("GET", f"/payments/{payment_id}", token=user.token))["payment"]
    assert failed["failureReason"] == "the provider could not process the card; try again"
    assert (
        invoice(api, user, invoice_id)["status"],
        invoice(api, user, invoice_id)["amountPaid"],
    ) == (
        "PENDING",
        0,
    )
    assert money_of(balance(api, user)) == (12.5, 0, -12.5)
    assert [charge["status"] for charge in sandbox.charges_for(payment_id)] == ["failed"]


def test_a_retried_cancellation_with_its_key_gets_the_same_answer(api: Rest, root: Person) -> None:
    user = person(api)
    invoice_id = issue_invoice(api, root, user.user_id, 9.99)["invoiceId"]
    path = f"/invoices/{invoice_id}:cancel"
    key = {"Idempotency-Key": str(uuid.uuid4())}
    first = api.call("POST", path, {}, root.token, headers=key)
    again = api.call("POST", path, {}, root.token, headers=key)
    assert (first.status, again.status) == (200, 200)
    assert again.body == first.body
    assert first.body["invoice"]["status"] == "CANCELLED"
    without_key = api.call("POST", path, {}, root.token)
    assert without_key.status == 400
    assert without_key.body["details"][0]["reason"] == "INVOICE_NOT_PENDING"


async def test_another_service_issues_an_invoice_with_its_credential(
    api: Rest, root: Person, stack: Stack
) -> None:
    user = person(api)
    secret = stack.layout.service_secret_file.read_bytes().strip()
    key = hmac.new(secret, b"warmhouse:service-credentials", hashlib.sha256).digest()
    credential = ((SERVICE_TOKEN_HEADER, ServiceCredentials(key, "support").token()),)
    request = billing_pb2.IssueInvoiceRequest(
        user_id=user.user_id,
        amount=19.9,
        description="Подписка, декабрь",
        due_time=timestamp_pb2.Timestamp(seconds=1_900_000_000),
        request_id=str(uuid.uuid4()),
    )
    async with grpc.aio.insecure_channel(stack.grpc_address("billing")) as channel:
        stub = billing_pb2_grpc.BillingServiceStub(channel)
        issued = await stub.IssueInvoice(request, metadata=credential)
        again = await stub.IssueInvoice(request, metadata=credential)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.IssueInvoice(request, metadata=(("authorization", f"Bearer {user.token}"),))
    assert again.invoice.invoice_id == issued.invoice.invoice_id
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    seen = invoice(api, user, issued.invoice.invoice_id)
    assert (seen["amount"], seen["status"]) == (19.9, "PENDING")
    assert money_of(balance(api, user)) == (19.9, 0, -19.9)


async def test_an_unpaid_invoice_past_due_is_announced_overdue_once(
    api: Rest, root: Person, stack: Stack
) -> None:
    user = person(api)
    due = datetime.now(UTC) + timedelta(seconds=2)
    unpaid = _due_invoice(api, root, user, due)
    settled = _due_invoice(api, root, user, due)
    paid(api, user, settled, 5)
    client = await nats.connect(stack.nats.url)
    try:
        jetstream = client.jetstream()

        async def overdue(invoice_id: str) -> list[billing_pb2.InvoiceOverdue]:
            return await events_about(
                jetstream, "WARMHOUSE_BILLING", billing_pb2.InvoiceOverdue, "invoice_id", invoice_id
            )

        await eventually(lambda: overdue(unpaid), within=20, what="InvoiceOverdue")
        # The sweep runs every second: several more turns, no second notice.
        await asyncio.sleep(3)
        [event] = await overdue(unpaid)
        assert (event.user_id, event.amount, event.currency) == (user.user_id, 5, "RUB")
        assert await overdue(settled) == []
    finally:
        await client.close()


def _due_invoice(api: Rest, root: Person, user: Person, due: datetime) -> str:
    body = {
        "userId": user.user_id,
        "amount": 5,
        "description": "Отопление",
        "dueTime": due.isoformat().replace("+00:00", "Z"),
    }
    return str(ok(api.call("POST", "/invoices", body, root.token))["invoice"]["invoiceId"])


def test_two_card_payments_at_once_cannot_pay_more_than_is_owed(api: Rest, root: Person) -> None:
    user = person(api)
    invoice_id = issue_invoice(api, root, user.user_id, 100)["invoiceId"]
    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(lambda _: pay(api, user, invoice_id, 60), range(8)))
    statuses = sorted(reply.status for reply in replies)
    assert statuses == [200] + [400] * 7
    assert invoice(api, user, invoice_id)["amountPaid"] == 60


def test_two_wallet_payments_at_once_cannot_spend_the_same_credit(api: Rest, root: Person) -> None:
    user = person(api)
    ok(top_up(api, user, 50))
    invoices = [issue_invoice(api, root, user.user_id, 40)["invoiceId"] for _ in range(6)]
    with ThreadPoolExecutor(6) as pool:
        replies = list(
            pool.map(lambda invoice_id: pay(api, user, invoice_id, 40, method="WALLET"), invoices)
        )
    assert sorted(reply.status for reply in replies) == [200] + [400] * 5
    assert money_of(balance(api, user))[1] == 10


def test_a_transfer_arriving_after_the_invoice_was_paid_becomes_wallet_credit(
    api: Rest, root: Person, sandbox: Sandbox
) -> None:
    user = person(api)
    invoice_id = issue_invoice(api, root, user.user_id, 30)["invoiceId"]
    transfer_id, status = paid(api, user, invoice_id, 30, method="BANK_TRANSFER")
    assert status == "INITIATED"
    # The user changes their mind and pays by card: a pending transfer reserves nothing.
    assert paid(api, user, invoice_id, 30)[1] == "SUCCESS"
    assert invoice(api, user, invoice_id)["status"] == "PAID"
    sandbox.arrive(transfer_id)
    wait_until(
        lambda: payment_status(api, user, transfer_id) == "SUCCESS",
        timeout=WEBHOOK_DEADLINE_SECONDS,
        what="the late transfer settled",
    )
    assert invoice(api, user, invoice_id)["amountPaid"] == 30
    assert money_of(balance(api, user)) == (0, 30, 30)


def test_at_most_ten_bank_transfers_wait_at_once_per_user(api: Rest) -> None:
    user = person(api)
    path = f"/user/{user.user_id}/wallet/top-ups"
    body = {"amount": 1, "method": "BANK_TRANSFER"}
    replies = [api.call("POST", path, body, token=user.token) for _ in range(11)]
    assert [reply.status for reply in replies] == [200] * 10 + [429]
    assert replies[-1].body["details"][0]["reason"] == "TOO_MANY_OPEN_TRANSFERS"


async def test_the_events_tell_what_was_paid_and_what_was_cancelled(
    api: Rest, root: Person, stack: Stack
) -> None:
    user = person(api)
    paid_invoice = issue_invoice(api, root, user.user_id, 42.5)["invoiceId"]
    payment_id, _ = paid(api, user, paid_invoice, 42.5)
    cancelled_invoice = issue_invoice(api, root, user.user_id, 30)["invoiceId"]
    paid(api, user, cancelled_invoice, 10)
    ok(api.call("POST", f"/invoices/{cancelled_invoice}:cancel", {}, root.token))
    client = await nats.connect(stack.nats.url)
    try:
        jetstream = client.jetstream()

        async def published() -> tuple[
            list[billing_pb2.InvoicePaid], list[billing_pb2.InvoiceCancelled]
        ]:
            return (
                await events_about(
                    jetstream,
                    "WARMHOUSE_BILLING",
                    billing_pb2.InvoicePaid,
                    "invoice_id",
                    paid_invoice,
                ),
                await events_about(
                    jetstream,
                    "WARMHOUSE_BILLING",
                    billing_pb2.InvoiceCancelled,
                    "invoice_id",
                    cancelled_invoice,
                ),
            )

        async def both() -> bool:
            found = await published()
            return bool(found[0] and found[1])

        await eventually(both, what="InvoicePaid and InvoiceCancelled")
        [paid_event], [cancelled_event] = await published()
    finally:
        await client.close()
    assert (paid_event.payment_id, paid_event.amount, paid_event.currency) == (
        payment_id,
        42.5,
        "RUB",
    )
    assert (cancelled_event.amount, cancelled_event.refunded_to_wallet) == (30, 10)
