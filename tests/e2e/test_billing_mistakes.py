"""Every Billing route through Envoy, sent what it must refuse: the stated client error,
never a 5xx, never the input echoed, and nothing changed."""

import json
import uuid
from dataclasses import dataclass
from urllib.parse import quote

import pytest

from tests.e2e.homes import Person, admin, ok, person
from tests.e2e.rest import Rest

NUL = "nul\x00byte"
HUGE = "x" * 6000
BAD_IDS = {"NUL": NUL, "6 KB": HUGE, "not a UUID": "invoice-1"}
DUE = "2030-01-01T00:00:00Z"


@dataclass(frozen=True)
class Places:
    user: Person
    admin: Person
    invoice: str


@pytest.fixture(scope="module")
def places(base_url: str) -> Places:
    api = Rest(base_url)
    user, root = person(api), admin(api)
    body = {"userId": user.user_id, "amount": 50, "description": "Отопление", "dueTime": DUE}
    invoice = ok(api.call("POST", "/invoices", body, root.token))["invoice"]["invoiceId"]
    return Places(user, root, str(invoice))


def _fill(value: object, places: Places) -> object:
    text = (
        json.dumps(value)
        .replace("{invoice}", places.invoice)
        .replace("{user}", places.user.user_id)
    )
    return json.loads(text)


# (name, method, path, body, who, expected status)
CASES: list[tuple[str, str, str, object, str, int]] = []
for label, bad in BAD_IDS.items():
    escaped = quote(bad, safe="")
    CASES += [
        (f"get invoice id {label}", "GET", f"/invoices/{escaped}", None, "user", 400),
        (f"cancel invoice id {label}", "POST", f"/invoices/{escaped}:cancel", {}, "admin", 400),
        (
            f"payments of invoice id {label}",
            "GET",
            f"/invoices/{escaped}/payments",
            None,
            "user",
            400,
        ),
        (f"get payment id {label}", "GET", f"/payments/{escaped}", None, "user", 400),
        (f"balance user id {label}", "GET", f"/user/{escaped}/balance", None, "user", 400),
        (
            f"pay invoice id {label}",
            "POST",
            "/payments",
            {"invoiceId": bad, "amount": 1, "method": "CARD", "paymentToken": "tok_visa"},
            "user",
            400,
        ),
        (
            f"invoice for user id {label}",
            "POST",
            "/invoices",
            {"userId": bad, "amount": 1, "description": "x", "dueTime": DUE},
            "admin",
            400,
        ),
        (
            f"list invoices user id {label}",
            "GET",
            f"/invoices?userId={escaped}",
            None,
            "admin",
            400,
        ),
    ]
amount: object
for amount in ("NaN", "Infinity", "-Infinity", -1, 0, 0.001, 1e13, "abc", [], {}):
    CASES += [
        (
            f"invoice amount {amount!r}",
            "POST",
            "/invoices",
            {"userId": "{user}", "amount": amount, "description": "x", "dueTime": DUE},
            "admin",
            400,
        ),
        (
            f"payment amount {amount!r}",
            "POST",
            "/payments",
            {
                "invoiceId": "{invoice}",
                "amount": amount,
                "method": "CARD",
                "paymentToken": "tok_visa",
            },
            "user",
            400,
        ),
        (
            f"top-up amount {amount!r}",
            "POST",
            "/user/{user}/wallet/top-ups",
            {"amount": amount, "method": "CARD", "paymentToken": "tok_visa"},
            "user",
            400,
        ),
    ]
CASES += [
    (
        "invoice for nobody",
        "POST",
        "/invoices",
        {"userId": str(uuid.uuid4()), "amount": 1, "description": "x", "dueTime": DUE},
        "admin",
        400,
    ),
    (
        "invoice description NUL",
        "POST",
        "/invoices",
        {"userId": "{user}", "amount": 1, "description": NUL, "dueTime": DUE},
        "admin",
        400,
    ),
    (
        "invoice description 6 KB",
        "POST",
        "/invoices",
        {"userId": "{user}", "amount": 1, "description": HUGE, "dueTime": DUE},
        "admin",
        400,
    ),
    (
        "invoice due time garbage",
        "POST",
        "/invoices",
        {"userId": "{user}", "amount": 1, "description": "x", "dueTime": "soon"},
        "admin",
        400,
    ),
    (
        "invoice due time year 10000",
        "POST",
        "/invoices",
        {"userId": "{user}", "amount": 1, "description": "x", "dueTime": "10000-01-01T00:00:00Z"},
        "admin",
        400,
    ),
    (
        "invoice currency lower case",
        "POST",
        "/invoices",
        {"userId": "{user}", "amount": 1, "description": "x", "dueTime": DUE, "currency": "rub"},
        "admin",
        400,
    ),
    (
        "invoice currency not ours",
        "POST",
        "/invoices",
        {"userId": "{user}", "amount": 1, "description": "x", "dueTime": DUE, "currency": "USD"},
        "admin",
        400,
    ),
    (
        "payment method unknown",
        "POST",
        "/payments",
        {"invoiceId": "{invoice}", "amount": 1, "method": "CASH"},
        "user",
        400,
    ),
    (
        "payment method unspecified",
        "POST",
        "/payments",
        {"invoiceId": "{invoice}", "amount": 1, "method": "PAYMENT_METHOD_UNSPECIFIED"},
        "user",
        400,
    ),
    (
        "card without a token",
        "POST",
        "/payments",
        {"invoiceId": "{invoice}", "amount": 1, "method": "CARD"},
        "user",
        400,
    ),
    (
        "card token 6 KB",
        "POST",
        "/payments",
        {"invoiceId": "{invoice}", "amount": 1, "method": "CARD", "paymentToken": HUGE},
        "user",
        400,
    ),
    (
        "card token NUL",
        "POST",
        "/payments",
        {"invoiceId": "{invoice}", "amount": 1, "method": "CARD", "paymentToken": NUL},
        "user",
        400,
    ),
    (
        "card token unknown to the provider",
        "POST",
        "/payments",
        {"invoiceId": "{invoice}", "amount": 1, "method": "CARD", "paymentToken": "tok_nope"},
        "user",
        200,
    ),
    (
        "token with a wallet payment",
        "POST",
        "/payments",
        {"invoiceId": "{invoice}", "amount": 1, "method": "WALLET", "paymentToken": "tok_visa"},
        "user",
        400,
    ),
    (
        "more than is owed",
        "POST",
        "/payments",
        {"invoiceId": "{invoice}", "amount": 50.01, "method": "CARD", "paymentToken": "tok_visa"},
        "user",
        400,
    ),
    (
        "wallet top-up from the wallet",
        "POST",
        "/user/{user}/wallet/top-ups",
        {"amount": 1, "method": "WALLET"},
        "user",
        400,
    ),
    ("list invoices status unknown", "GET", "/invoices?status=LATE", None, "user", 400),
    (
        "list invoices page token forged",
        "GET",
        "/invoices?pageToken=" + quote(HUGE),
        None,
        "user",
        400,
    ),
    ("list invoices page size negative", "GET", "/invoices?pageSize=-1", None, "user", 400),
    (
        "webhook without a signature",
        "POST",
        "/billing/provider-events",
        {"id": "evt_1"},
        "none",
        400,
    ),
    ("webhook not JSON", "POST", "/billing/provider-events", "not json", "none", 400),
]
for method, path, body in (
    ("POST", "/invoices", {"userId": "{user}", "amount": 1, "description": "x", "dueTime": DUE}),
    ("GET", "/invoices/{invoice}", None),
    ("GET", "/invoices", None),
    ("POST", "/payments", {"invoiceId": "{invoice}", "amount": 1, "method": "WALLET"}),
    ("GET", "/user/{user}/balance", None),
    ("POST", "/user/{user}/wallet/top-ups", {"amount": 1, "method": "BANK_TRANSFER"}),
):
    CASES.append((f"{method} {path} without a token", method, path, body, "none", 401))


@pytest.mark.parametrize(
    ("name", "method", "path", "body", "who", "expected"), CASES, ids=[case[0] for case in CASES]
)
def test_billing_mistakes_are_the_stated_client_error(
    api: Rest,
    places: Places,
    name: str,
    method: str,
    path: str,
    body: object,
    who: str,
    expected: int,
) -> None:
    token = {"user": places.user.token, "admin": places.admin.token, "none": None}[who]
    filled_path = str(_fill(path, places))
    raw = body.encode() if isinstance(body, str) else None
    reply = api.call(
        method, filled_path, _fill(body, places) if raw is None else None, token, raw=raw
    )
    assert reply.status == expected, (name, reply)
    shown = json.dumps(reply.body)
    assert HUGE not in shown, "the answer repeats what was sent"
    assert "nul\\u0000byte" not in shown


def test_the_sweep_changed_nothing_but_what_it_paid(api: Rest, places: Places) -> None:
    invoice = ok(api.call("GET", f"/invoices/{places.invoice}", token=places.user.token))["invoice"]
    assert invoice["status"] == "PENDING"
    assert invoice["amountPaid"] == 0
    balance = ok(api.call("GET", f"/user/{places.user.user_id}/balance", token=places.user.token))
    assert (balance["walletCredit"], balance["amountDue"]) == (0, 50)
    payments = ok(api.call("GET", f"/invoices/{places.invoice}/payments", token=places.user.token))[
        "payments"
    ]
    # The one that reached the provider: refused for its unknown card token.
    assert [(p["status"], p["failureReason"]) for p in payments] == [
        ("FAILED", "the provider refused the payment's details (e.g. an unknown card token)")
    ]
