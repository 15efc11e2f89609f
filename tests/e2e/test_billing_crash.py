"""Billing killed (-9) while the provider is charging the card: after the restart,
reconciliation finds the charge and the payment ends SUCCESS, charged once."""

import asyncio
import threading

from services.devstack.stack import Stack
from tests.e2e.billing_flows import (
    balance,
    invoice,
    invoice_payments,
    issue_invoice,
    money_of,
    pay,
    sandbox_of,
)
from tests.e2e.homes import admin, person
from tests.e2e.rest import Rest
from tests.polling import eventually

# tok_hang holds the provider's answer 6 s here; reconciliation asks after 3 s.
SETTLED_WITHIN_SECONDS = 60.0


async def test_a_crash_during_the_charge_is_reconciled_to_one_success(
    api: Rest, stack: Stack
) -> None:
    payer, root = person(api), admin(api)
    invoice_id = issue_invoice(api, root, payer.user_id, 25)["invoiceId"]
    sandbox = sandbox_of(stack)
    billing = stack.services["billing"]
    # Webhooks held for an hour: only reconciliation can learn the outcome.
    sandbox.set_webhook_mode(delay_seconds=3600)
    try:
        paying = threading.Thread(
            target=pay, args=(api, payer, invoice_id, 25), kwargs={"payment_token": "tok_hang"}
        )
        paying.start()

        async def statuses() -> list[str]:
            found = await asyncio.to_thread(invoice_payments, api, payer, invoice_id)
            return [p["status"] for p in found]

        assert await eventually(statuses, what="the payment written INITIATED") == ["INITIATED"]
        [written] = await asyncio.to_thread(invoice_payments, api, payer, invoice_id)
        payment_id = written["paymentId"]

        async def charging() -> bool:
            found = await asyncio.to_thread(sandbox.charges_for, payment_id)
            return [c["status"] for c in found] == ["pending"]

        await eventually(charging, what="the charge under way at the provider")
        # The provider has the charge, Billing has not heard back: it dies now.
        billing.process.kill()
        await asyncio.to_thread(paying.join)
        await asyncio.to_thread(billing.start)

        async def settled() -> bool:
            return await statuses() == ["SUCCESS"]

        await eventually(settled, within=SETTLED_WITHIN_SECONDS, interval=0.5, what="SUCCESS")
        assert [c["status"] for c in sandbox.charges_for(payment_id)] == ["succeeded"]
        paid = invoice(api, payer, invoice_id)
        assert (paid["status"], paid["amountPaid"]) == ("PAID", 25)
        assert money_of(balance(api, payer))[2] == 0
    finally:
        sandbox.set_webhook_mode()
        if billing.process.exit_code is not None:
            await asyncio.to_thread(billing.start)
