"""Invoices, payments and the payment provider's sandbox, for Billing's tests through Envoy.

Billing's REST API is reached as a user or an ADMIN (a `Person`); the sandbox
(services/payment_sandbox, its API in that package's docstring) through its
own HTTP API with the stack's API key, to see what the provider itself
recorded and to drive it: money arriving, webhooks duplicated or replayed.
"""

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from services.devstack.stack import Stack
from tests.e2e.homes import Person, from_now, ok
from tests.e2e.rest import Reply, Rest

CURRENCY = "RUB"
# What the sandbox's decline tokens make of a card payment.
DECLINE_TOKENS = (
    "tok_chargeDeclined",
    "tok_chargeDeclinedInsufficientFunds",
    "tok_chargeDeclinedExpiredCard",
    "tok_chargeDeclinedProcessingError",
)


def minor(amount: float) -> int:
    """An amount in major units as the sandbox counts it (integer minor units)."""
    return round(amount * 100)


@dataclass(frozen=True)
class Sandbox:
    """The payment provider's sandbox: its records and its test controls."""

    rest: Rest
    api_key: str
    webhook_secret: bytes

    def call(self, method: str, path: str, body: object = None) -> Any:
        reply = self.rest.call(method, path, body, token=self.api_key)
        assert reply.status == 200, (method, path, reply)
        return reply.body

    def charges_for(self, payment_id: str) -> list[dict[str, Any]]:
        """Every charge the provider holds for one of our payments (its `reference`)."""
        return list(self.call("GET", f"/v1/charges?reference={payment_id}")["data"])

    def all_charges(self) -> list[dict[str, Any]]:
        return list(self.call("GET", "/v1/sandbox/charges")["data"])

    def transfer_for(self, payment_id: str) -> dict[str, Any]:
        """The one bank transfer the provider opened for one of our payments."""
        transfers = self.call("GET", f"/v1/transfers?reference={payment_id}")["data"]
        assert len(transfers) == 1, transfers
        return dict(transfers[0])

    def arrive(self, payment_id: str) -> dict[str, Any]:
        """The payer's money reaches the provider: the transfer succeeds (and a webhook goes)."""
        transfer_id = self.transfer_for(payment_id)["id"]
        return dict(self.call("POST", f"/v1/sandbox/transfers/{transfer_id}/arrive"))

    def fail(self, payment_id: str) -> dict[str, Any]:
        """The bank returns the transfer: it fails (and a webhook goes)."""
        transfer_id = self.transfer_for(payment_id)["id"]
        return dict(self.call("POST", f"/v1/sandbox/transfers/{transfer_id}/fail"))

    def set_webhook_mode(self, **mode: object) -> None:
        """Duplicates, delay and shuffle for events made from now on; none resets them."""
        self.call("POST", "/v1/sandbox/webhooks/mode", mode)

    def replay_webhooks(self) -> int:
        return int(self.call("POST", "/v1/sandbox/webhooks/replay")["events"])

    def events_for(self, payment_ids: set[str]) -> list[dict[str, Any]]:
        """The provider's events about these payments, each with its `delivery` record."""
        events = self.call("GET", "/v1/sandbox/events")["data"]
        return [event for event in events if event["data"]["object"]["reference"] in payment_ids]


def sandbox_of(stack: Stack) -> Sandbox:
    provider = stack.payment_sandbox
    assert provider is not None, "the stack runs Billing, so it runs the sandbox"
    return Sandbox(Rest(provider.url), provider.api_key, provider.webhook_secret.encode())


# Billing's REST API


def issue_invoice(
    api: Rest, admin: Person, user_id: str, amount: float, description: str = "Отопление, март"
) -> dict[str, Any]:
    """A PENDING invoice, issued by an ADMIN and due in 30 days."""
    body = {
        "userId": user_id,
        "amount": amount,
        "description": description,
        "dueTime": from_now(30 * 24 * 3600),
    }
    return dict(ok(api.call("POST", "/invoices", body, token=admin.token))["invoice"])


def invoice(api: Rest, reader: Person, invoice_id: str) -> dict[str, Any]:
    return dict(ok(api.call("GET", f"/invoices/{invoice_id}", token=reader.token))["invoice"])


def invoice_payments(api: Rest, reader: Person, invoice_id: str) -> list[dict[str, Any]]:
    reply = api.call("GET", f"/invoices/{invoice_id}/payments?pageSize=100", token=reader.token)
    body = ok(reply)
    assert body["nextPageToken"] == ""
    return list(body["payments"])


def pay(
    api: Rest,
    payer: Person,
    invoice_id: str,
    amount: float,
    method: str = "CARD",
    payment_token: str = "tok_visa",
    idempotency_key: str | None = None,
) -> Reply:
    """POST /payments as it answers; a CARD needs a token, other methods none."""
    body: dict[str, object] = {"invoiceId": invoice_id, "amount": amount, "method": method}
    if method == "CARD":
        body["paymentToken"] = payment_token
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key is not None else None
    return api.call("POST", "/payments", body, token=payer.token, headers=headers)


def paid(
    api: Rest,
    payer: Person,
    invoice_id: str,
    amount: float,
    method: str = "CARD",
    payment_token: str = "tok_visa",
) -> tuple[str, str]:
    """A payment that Billing accepted: (payment id, its status in the answer)."""
    body = ok(pay(api, payer, invoice_id, amount, method, payment_token))
    return str(body["paymentId"]), str(body["status"])


def payment(api: Rest, reader: Person, payment_id: str) -> dict[str, Any]:
    return dict(ok(api.call("GET", f"/payments/{payment_id}", token=reader.token))["payment"])


def payment_status(api: Rest, reader: Person, payment_id: str) -> str:
    return str(payment(api, reader, payment_id)["status"])


def balance(api: Rest, reader: Person, user_id: str | None = None) -> dict[str, Any]:
    """GET /user/{id}/balance (the reader's own unless `user_id` is given)."""
    owner = user_id or reader.user_id
    return dict(ok(api.call("GET", f"/user/{owner}/balance", token=reader.token)))


def money_of(reply: dict[str, Any]) -> tuple[float, float, float]:
    """A balance as (amountDue, walletCredit, balance)."""
    return reply["amountDue"], reply["walletCredit"], reply["balance"]


def top_up(api: Rest, owner: Person, amount: float, payment_token: str = "tok_visa") -> Reply:
    body = {"amount": amount, "method": "CARD", "paymentToken": payment_token}
    return api.call("POST", f"/user/{owner.user_id}/wallet/top-ups", body, token=owner.token)


# The provider's webhook, as a test sends it


def transfer_event(transfer: dict[str, Any], event_type: str = "transfer.succeeded") -> bytes:
    """A provider event about `transfer` (as the sandbox shows it), settled as `event_type`."""
    settled = {
        **transfer,
        "status": "succeeded" if event_type.endswith("succeeded") else "failed",
    }
    event = {
        "id": f"evt_{uuid.uuid4().hex[:24]}",
        "object": "event",
        "type": event_type,
        "created": int(time.time()),
        "data": {"object": settled},
    }
    return json.dumps(event).encode()


def send_event(api: Rest, body: bytes, signature: str | None) -> Reply:
    """POST /billing/provider-events without a user token, as the provider does."""
    headers = {"Sandbox-Signature": signature} if signature is not None else None
    return api.call("POST", "/billing/provider-events", raw=body, headers=headers)
