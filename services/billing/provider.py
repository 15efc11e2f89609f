"""The payment provider's HTTP API, as Billing calls it (the local stack and the tests
run services/payment_sandbox, which speaks it).

Charges and transfers carry our payment id twice: as the Idempotency-Key, so a
request sent again (after a timeout, a crash, by reconciliation) never
charges twice, and as `reference`, so reconciliation can ask what became of a
payment it never heard back about. Amounts are integer minor units.
"""

import asyncio
import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from services.billing.records import PaymentRecord

# The provider's statuses (lower case, unlike ours).
PROVIDER_SUCCEEDED, PROVIDER_FAILED = "succeeded", "failed"
# The ones a payment can settle on.
FINAL = frozenset({PROVIDER_SUCCEEDED, PROVIDER_FAILED})
MAX_RESPONSE_BYTES = 1 << 20
# What the provider takes in one charge or transfer, in minor units.
MAX_PROVIDER_AMOUNT_MINOR = 99_999_999
INVALID_REQUEST = "invalid_request"
# Calls in flight at once; each holds a thread (urllib blocks) of a pool of its
# own, so a hanging provider never starves the default executor (DNS lookups).
CONCURRENT_CALLS = 16


class ProviderUnavailable(Exception):
    """No usable answer (timeout, connection refused, 5xx, garbage): the payment stays
    INITIATED and reconciliation asks again later."""


@dataclass(frozen=True)
class ProviderObject:
    """A charge or a transfer as the provider reports it."""

    provider_id: str
    status: str
    failure_code: str = ""
    bank_reference: str = ""


def _object_of(body: dict[str, Any]) -> ProviderObject:
    try:
        return ProviderObject(
            provider_id=str(body["id"]),
            status=str(body["status"]),
            failure_code=str(body.get("failure_code") or ""),
            bank_reference=str(body.get("bank_reference") or ""),
        )
    except (KeyError, TypeError):
        raise ProviderUnavailable("the provider's answer lacks id or status") from None


class ProviderClient:
    def __init__(self, base_url: str, api_key: str, timeout_seconds: float = 10.0) -> None:
        self._base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._timeout = timeout_seconds
        self._threads = ThreadPoolExecutor(CONCURRENT_CALLS, thread_name_prefix="provider")

    async def charge(self, payment: PaymentRecord) -> ProviderObject:
        """Charge the card; a decline is an answer (status failed), not an error."""
        body = {
            "amount": payment.amount_minor,
            "currency": payment.currency,
            "source": payment.payment_token,
            "reference": str(payment.id),
            "description": f"WarmHouse payment {payment.id}",
        }
        answer = await self._call("POST", "/v1/charges", body, idempotency_key=str(payment.id))
        return _refusal(answer) or _object_of(answer)

    async def transfer(self, payment: PaymentRecord) -> ProviderObject:
        """Open a bank transfer; it stays pending until the money arrives (a webhook)."""
        body = {
            "amount": payment.amount_minor,
            "currency": payment.currency,
            "reference": str(payment.id),
        }
        answer = await self._call("POST", "/v1/transfers", body, idempotency_key=str(payment.id))
        return _refusal(answer) or _object_of(answer)

    async def find(self, payment: PaymentRecord, kind: str) -> ProviderObject | None:
        """What the provider knows of a payment (`kind` "charges" or "transfers"); None
        when it never received it."""
        query = urllib.parse.urlencode({"reference": str(payment.id)})
        answer = await self._call("GET", f"/v1/{kind}?{query}", None)
        found = answer.get("data")
        if not isinstance(found, list):
            raise ProviderUnavailable("the provider's list has no data")
        return _object_of(found[-1]) if found else None

    async def _call(
        self, method: str, path: str, body: dict[str, Any] | None, idempotency_key: str = ""
    ) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        call = loop.run_in_executor(
            self._threads, self._blocking_call, method, path, body, idempotency_key
        )
        try:
            # A whole-call deadline: urllib's timeout is per socket operation.
            async with asyncio.timeout(2 * self._timeout):
                return await call
        except TimeoutError:
            raise ProviderUnavailable("the provider took too long") from None

    def _blocking_call(
        self, method: str, path: str, body: dict[str, Any] | None, idempotency_key: str
    ) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self._api_key}", "Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        request = urllib.request.Request(
            self._base_url + path, data=data, headers=headers, method=method
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                return _json(response.read(MAX_RESPONSE_BYTES))
        except urllib.error.HTTPError as error:
            # A decline is 402 with a body. A payment the provider finds invalid (an
            # unknown card token) is refused for good (400 to a POST); anything else
            # (404, 401, 409, 5xx: a misconfiguration or an outage) may pass.
            if error.code == 402:
                return _json(error.read(MAX_RESPONSE_BYTES))
            if error.code == 400 and method == "POST":
                return {"error": {"code": INVALID_REQUEST}}
            raise ProviderUnavailable(f"the provider answered {error.code}") from None
        except (OSError, TimeoutError, http.client.HTTPException, ValueError) as error:
            raise ProviderUnavailable(f"the provider could not be reached: {error}") from None


def _refusal(answer: dict[str, Any]) -> ProviderObject | None:
    """A declined or refused payment, as a failed object; None for anything else."""
    error = answer.get("error")
    if error is None:
        return None
    details = error if isinstance(error, dict) else {}
    subject = details.get("charge") or ""
    return ProviderObject(str(subject), PROVIDER_FAILED, str(details.get("code") or "declined"))


def _json(raw: bytes) -> dict[str, Any]:
    try:
        decoded = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ProviderUnavailable("the provider's answer is not JSON") from None
    if not isinstance(decoded, dict):
        raise ProviderUnavailable("the provider's answer is not a JSON object")
    return decoded
