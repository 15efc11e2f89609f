"""Payments end to end: `python -m bench.billing` (and last in `make bench`).

On a stack of its own, at CONCURRENCY in flight, each figure over PAYMENTS
requests after a warm-up:

1. Provider alone (the baseline): `POST /v1/charges` straight to the payment
   sandbox with tok_visa: what a charge costs where Billing has no part.
2. CARD via Envoy: `POST /payments` for a whole invoice; the answer comes once
   the provider charged the card and Billing committed SUCCESS (payment,
   ledger entries, invoice PAID, two events in the outbox).
3. WALLET via Envoy: the same from prepaid credit: Billing's own cost, with no
   provider in the path.

The ratio CARD / provider says what Billing and Envoy add to a charge. Timings
are figures, never failures; a payment that does not end SUCCESS fails the run.
"""

import asyncio
import json
import sys
import tempfile
import uuid
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import uvloop

from bench.account import JSON_HEADERS, Account, SetupError, call_json, log_in, register_and_log_in
from bench.closed_loop import Budget, run_closed_loop
from bench.figures import LoadFigures
from bench.http1 import Http1Connection
from services.devstack.ports import free_port
from services.devstack.stack import Stack

CONCURRENCY = 16
WARMUP = 50
PAYMENTS = 1000
SECONDS = 120.0
INVOICE_AMOUNT = 10
ADMIN_EMAIL = "bench-admin@example.com"
ADMIN_PASSWORD = "a bench admin passphrase"
Call = Callable[[], Coroutine[Any, Any, str | None]]


class _Payments:
    """Invoices issued ahead, each paid by one request."""

    def __init__(self, base_url: str, admin: str, payer: Account) -> None:
        self._base_url = base_url
        self._admin = {"Authorization": f"Bearer {admin}"}
        self._payer = {"Authorization": payer.authorization}
        self._payer_id = payer.user_id
        self._invoices: list[str] = []

    async def issue(self, count: int) -> None:
        async def issue_some(share: int) -> None:
            connection = Http1Connection(self._base_url)
            try:
                for _ in range(share):
                    body = {
                        "userId": self._payer_id,
                        "amount": INVOICE_AMOUNT,
                        "description": "bench",
                        "dueTime": "2030-01-01T00:00:00Z",
                    }
                    reply = await call_json(connection, "POST", "/invoices", self._admin, body)
                    self._invoices.append(reply["invoice"]["invoiceId"])
            finally:
                await connection.close()

        await asyncio.gather(*(issue_some(count // CONCURRENCY + 1) for _ in range(CONCURRENCY)))

    async def top_up(self, amount: int) -> None:
        connection = Http1Connection(self._base_url)
        try:
            body = {"amount": amount, "method": "CARD", "paymentToken": "tok_visa"}
            path = f"/user/{self._payer_id}/wallet/top-ups"
            reply = await call_json(connection, "POST", path, self._payer, body)
            if reply["status"] != "SUCCESS":
                raise SetupError(f"the top-up ended {reply['status']}")
        finally:
            await connection.close()

    def worker(self, method: str) -> Call:
        connection = Http1Connection(self._base_url)
        headers = {**self._payer, **JSON_HEADERS}

        async def pay() -> str | None:
            invoice = self._invoices.pop()
            body = {"invoiceId": invoice, "amount": INVOICE_AMOUNT, "method": method}
            if method == "CARD":
                body["paymentToken"] = "tok_visa"
            # As a client should send it: an idempotency key per payment.
            keyed = {**headers, "Idempotency-Key": str(uuid.uuid4())}
            response = await connection.request(
                "POST", "/payments", keyed, json.dumps(body).encode()
            )
            if response.status != 200:
                return f"POST /payments answered {response.status}"
            status = json.loads(response.body)["status"]
            return None if status == "SUCCESS" else f"the payment ended {status}"

        return pay


def _provider_worker(url: str, api_key: str) -> Call:
    connection = Http1Connection(url)
    headers = {"Authorization": f"Bearer {api_key}", **JSON_HEADERS}

    async def charge() -> str | None:
        key = str(uuid.uuid4())
        body = {
            "amount": INVOICE_AMOUNT * 100,
            "currency": "RUB",
            "source": "tok_visa",
            "reference": key,
        }
        response = await connection.request(
            "POST", "/v1/charges", {**headers, "Idempotency-Key": key}, json.dumps(body).encode()
        )
        return None if response.status == 200 else f"the provider answered {response.status}"

    return charge


async def _measured(workers: list[Call]) -> LoadFigures:
    await run_closed_loop(workers, Budget(WARMUP, SECONDS))
    return await run_closed_loop(workers, Budget(PAYMENTS, SECONDS))


async def measure(stack: Stack) -> dict[str, LoadFigures]:
    sandbox = stack.payment_sandbox
    assert sandbox is not None
    admin = (await log_in(stack.base_url, ADMIN_EMAIL, ADMIN_PASSWORD)).access_token
    payer = await register_and_log_in(stack.base_url)
    payments = _Payments(stack.base_url, admin, payer)
    await payments.issue(2 * (WARMUP + PAYMENTS))
    await payments.top_up(INVOICE_AMOUNT * (WARMUP + PAYMENTS + CONCURRENCY))
    return {
        "provider": await _measured(
            [_provider_worker(sandbox.url, sandbox.api_key) for _ in range(CONCURRENCY)]
        ),
        "card": await _measured([payments.worker("CARD") for _ in range(CONCURRENCY)]),
        "wallet": await _measured([payments.worker("WALLET") for _ in range(CONCURRENCY)]),
    }


def lines(figures: dict[str, LoadFigures]) -> list[str]:
    labels = {
        "provider": "Provider alone: POST /v1/charges to the sandbox",
        "card": "CARD payment via Envoy, until SUCCESS committed",
        "wallet": "WALLET payment via Envoy (no provider)",
    }
    out = [
        f"Payments (bench/billing.py), {CONCURRENCY} in flight,"
        f" {PAYMENTS} each after {WARMUP} warm-up:"
    ]
    for key, label in labels.items():
        f = figures[key]
        out.append(
            f"  {label}: {f.requests_per_second:.0f}/s, p50 {f.p50_ms or 0:.1f} ms,"
            f" p99 {f.p99_ms or 0:.1f} ms, errors {f.errors}"
        )
    provider, card = figures["provider"].requests_per_second, figures["card"].requests_per_second
    if provider:
        out.append(f"  CARD / provider alone: throughput {card / provider:.2f}x")
    return out


def main() -> int:
    env = {
        "WARMHOUSE_ADMIN_EMAIL": ADMIN_EMAIL,
        "WARMHOUSE_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "WARMHOUSE_ACCESS_TOKEN_TTL_SECONDS": "3600",
        "WARMHOUSE_REGISTRATIONS_PER_CLIENT": "100000",
    }
    with tempfile.TemporaryDirectory(prefix="warmhouse-bench-billing-") as data_dir:
        stack = Stack(Path(data_dir), free_port(), extra_env=env)
        try:
            with stack:
                figures = uvloop.run(measure(stack))
        finally:
            stack.postgres.remove_data()
    print("\n".join(lines(figures)))
    return 1 if any(f.errors for f in figures.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
