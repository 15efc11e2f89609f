"""Request bodies and headers, checked; InvalidRequest says what is wrong, never echoing it."""

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from services.payment_sandbox.errors import InvalidRequest

MAX_IDEMPOTENCY_KEY_LENGTH = 255
MAX_REFERENCE_LENGTH = 100
MAX_DESCRIPTION_LENGTH = 500
# Stripe's own ceiling for one charge, in minor units.
MAX_AMOUNT = 99_999_999
MAX_DUPLICATES = 100
MAX_WEBHOOK_DELAY_SECONDS = 3600.0
CURRENCY = re.compile(r"[A-Z]{3}")


@dataclass(frozen=True)
class ChargeRequest:
    amount: int
    currency: str
    source: str
    reference: str
    description: str


@dataclass(frozen=True)
class TransferRequest:
    amount: int
    currency: str
    reference: str


@dataclass(frozen=True)
class WebhookMode:
    """How webhooks go out: see POST /v1/sandbox/webhooks/mode in the package docstring."""

    duplicates: int = 0
    delay_seconds: float = 0.0
    shuffle: bool = False


def charge_request(body: bytes) -> ChargeRequest:
    fields = json_fields(
        body, required={"amount", "currency", "source", "reference"}, optional={"description"}
    )
    return ChargeRequest(
        amount=_amount(fields),
        currency=_currency(fields),
        source=text_field(fields, "source", MAX_REFERENCE_LENGTH),
        reference=text_field(fields, "reference", MAX_REFERENCE_LENGTH),
        description=text_field(fields, "description", MAX_DESCRIPTION_LENGTH, default=""),
    )


def transfer_request(body: bytes) -> TransferRequest:
    fields = json_fields(body, required={"amount", "currency", "reference"}, optional=set())
    return TransferRequest(
        amount=_amount(fields),
        currency=_currency(fields),
        reference=text_field(fields, "reference", MAX_REFERENCE_LENGTH),
    )


def webhook_mode(body: bytes) -> WebhookMode:
    fields = json_fields(body, required=set(), optional={"duplicates", "delay_seconds", "shuffle"})
    duplicates = fields.get("duplicates", 0)
    if not _is_int(duplicates) or not 0 <= duplicates <= MAX_DUPLICATES:
        raise InvalidRequest(f"duplicates must be a whole number from 0 to {MAX_DUPLICATES}")
    delay = fields.get("delay_seconds", 0.0)
    if not _is_number(delay) or not 0 <= delay <= MAX_WEBHOOK_DELAY_SECONDS:
        raise InvalidRequest(
            f"delay_seconds must be a number from 0 to {MAX_WEBHOOK_DELAY_SECONDS:g}"
        )
    shuffle = fields.get("shuffle", False)
    if not isinstance(shuffle, bool):
        raise InvalidRequest("shuffle must be true or false")
    if shuffle and delay == 0:
        raise InvalidRequest("shuffle needs delay_seconds above 0: only held deliveries reorder")
    return WebhookMode(duplicates, float(delay), shuffle)


def idempotency_key(header: str | None) -> str:
    if not header:
        raise InvalidRequest("the Idempotency-Key header is required", "idempotency_key_missing")
    if len(header) > MAX_IDEMPOTENCY_KEY_LENGTH:
        raise InvalidRequest(
            f"the Idempotency-Key header must be at most {MAX_IDEMPOTENCY_KEY_LENGTH} characters",
            "idempotency_key_invalid",
        )
    return header


def reference_query(values: list[str] | None) -> str:
    """The one `reference` of a list query."""
    if not values or len(values) != 1 or not 0 < len(values[0]) <= MAX_REFERENCE_LENGTH:
        raise InvalidRequest(
            f"give exactly one reference query parameter of 1 to {MAX_REFERENCE_LENGTH} characters",
            "parameter_missing",
        )
    return values[0]


def json_fields(body: bytes, *, required: set[str], optional: set[str]) -> dict[str, Any]:
    fields = _json_object(body)
    allowed = required | optional
    if not set(fields) <= allowed:
        raise InvalidRequest(
            f"the body holds a field this endpoint does not take; it takes {_names(allowed)}",
            "parameter_unknown",
        )
    missing = required - set(fields)
    if missing:
        raise InvalidRequest(f"missing field(s): {_names(missing)}", "parameter_missing")
    return fields


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(body, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        raise InvalidRequest("the body is not valid JSON", "body_invalid") from None
    if not isinstance(document, dict):
        raise InvalidRequest("the body must be a JSON object", "body_invalid")
    return document


def _refuse_constant(name: str) -> Any:
    raise ValueError("NaN and Infinity are not JSON")


def _amount(fields: dict[str, Any]) -> int:
    amount = fields["amount"]
    if not _is_int(amount) or not 0 < amount <= MAX_AMOUNT:
        raise InvalidRequest(
            f"amount must be a whole number of minor units from 1 to {MAX_AMOUNT}",
            "amount_invalid",
        )
    return amount  # type: ignore[no-any-return]


def _currency(fields: dict[str, Any]) -> str:
    currency = fields["currency"]
    if not isinstance(currency, str) or not CURRENCY.fullmatch(currency):
        raise InvalidRequest(
            "currency must be three upper-case letters, such as RUB", "currency_invalid"
        )
    return currency


def text_field(
    fields: dict[str, Any], name: str, max_length: int, default: str | None = None
) -> str:
    value = fields.get(name, default)
    least = 0 if default is not None else 1
    if not isinstance(value, str) or not least <= len(value) <= max_length:
        raise InvalidRequest(
            f"{name} must be a string of {least} to {max_length} characters", "parameter_invalid"
        )
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    # math.isfinite would overflow on a huge int; ints are finite anyway.
    return _is_int(value) or (isinstance(value, float) and math.isfinite(value))


def _names(names: set[str]) -> str:
    return ", ".join(sorted(names))
