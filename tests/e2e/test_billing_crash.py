"""Billing killed (-9) while the provider is charging the card: after the restart,
reconciliation finds the charge and the payment ends SUCCESS, charged once."""

import asyncio
import json
import threading
import urllib.request
from typing import Any

from services.devstack.stack import Stack
from tests.e2e.homes import Person, admin, ok, person
from tests.e2e.rest import Rest
from tests.polling import eventually

# tok_hang holds the provider's answer 6 s here; reconciliation asks after 3 s.
SETTLED_WITHIN_SECONDS = 60.0


def sandbox_call(stack: Stack, method: str, path: str, body: object = None) -> Any:
    sandbox = stack.payment_sandbox
    assert sandbox is not None
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(sandbox.url + path, data=data, method=method)
    request.add_header("Authorization", f"Bearer {sandbox.api_key}")
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def charges_for(stack: Stack, reference: str) -> list[dict[str, Any]]:
    found = sandbox_call(stack, "GET", f"/v1/charges?reference={reference}")
    return list(found["data"])


async def test_a_crash_during_the_charge_is_reconciled_to_one_success(
    api: Rest, stack: Stack
) -> None:
    payer, root = person(api), admin(api)
    invoice = _invoice(api, root, payer)
    billing = stack.services["billing"]
    # Webhooks held for an hour: only reconciliation can learn the outcome.
    sandbox_call(stack, "POST", "/v1/sandbox/webhooks/mode", {"delay_seconds": 3600})
    try:
        body = {"invoiceId": invoice, "amount": 25, "method": "CARD", "paymentToken": "tok_hang"}
        paying = threading.Thread(target=api.call, args=("POST", "/payments", body, payer.token))
        paying.start()

        async def written() -> list[dict[str, Any]]:
            return await asyncio.to_thread(_payments, api, payer, invoice)

        payments = await eventually(written, what="the payment written INITIATED")
        assert [p["status"] for p in payments] == ["INITIATED"]
        payment_id = payments[0]["paymentId"]

        async def charging() -> bool:
            found = await asyncio.to_thread(charges_for, stack, payment_id)
            return [c["status"] for c in found] == ["pending"]

        await eventually(charging, what="the charge under way at the provider")
        # The provider has the charge, Billing has not heard back: it dies now.
        billing.process.kill()
        await asyncio.to_thread(paying.join)
        await asyncio.to_thread(billing.start)

        async def settled() -> bool:
            found = await asyncio.to_thread(_payments, api, payer, invoice)
            return [p["status"] for p in found] == ["SUCCESS"]

        await eventually(settled, within=SETTLED_WITHIN_SECONDS, interval=0.5, what="SUCCESS")
        assert [c["status"] for c in charges_for(stack, payment_id)] == ["succeeded"]
        paid = ok(api.call("GET", f"/invoices/{invoice}", token=payer.token))["invoice"]
        assert (paid["status"], paid["amountPaid"]) == ("PAID", 25)
        balance = ok(api.call("GET", f"/user/{payer.user_id}/balance", token=payer.token))
        assert balance["balance"] == 0
    finally:
        sandbox_call(stack, "POST", "/v1/sandbox/webhooks/mode", {})
        if billing.process.exit_code is not None:
            await asyncio.to_thread(billing.start)


def _invoice(api: Rest, root: Person, payer: Person) -> str:
    body = {
        "userId": payer.user_id,
        "amount": 25,
        "description": "Отопление",
        "dueTime": "2030-01-01T00:00:00Z",
    }
    return str(ok(api.call("POST", "/invoices", body, root.token))["invoice"]["invoiceId"])


def _payments(api: Rest, payer: Person, invoice: str) -> list[dict[str, Any]]:
    reply = ok(api.call("GET", f"/invoices/{invoice}/payments", token=payer.token))
    return list(reply.get("payments", []))
