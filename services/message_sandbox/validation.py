"""Gateway request bodies and queries, checked; errors never echo what was sent.

The JSON and field checks are the payment sandbox's (services/payment_sandbox/validation.py).
"""

import re
from dataclasses import dataclass

from services.message_sandbox.store import CHANNELS, FAILURE_KINDS, MAX_PENDING_FAILURES
from services.payment_sandbox.errors import InvalidRequest
from services.payment_sandbox.validation import json_fields, text_field

# E.164: a plus, a country code not starting with 0, at most 15 digits in all.
E164 = re.compile(r"\+[1-9][0-9]{1,14}")
UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
MAX_SMS_LENGTH = 1600
MAX_TITLE_LENGTH = 200
MAX_PUSH_BODY_LENGTH = 4000
MAX_FILTER_LENGTH = 320


@dataclass(frozen=True)
class SmsRequest:
    to: str
    body: str


@dataclass(frozen=True)
class PushRequest:
    user_id: str
    title: str
    body: str


@dataclass(frozen=True)
class FailureRequest:
    channel: str
    count: int
    kind: str


def sms_request(body: bytes) -> SmsRequest:
    fields = json_fields(body, required={"to", "body"}, optional=set())
    to = fields["to"]
    if not isinstance(to, str) or not E164.fullmatch(to):
        raise InvalidRequest(
            "to must be an E.164 phone number, such as +15551234567", "phone_invalid"
        )
    return SmsRequest(to, text_field(fields, "body", MAX_SMS_LENGTH))


def push_request(body: bytes) -> PushRequest:
    fields = json_fields(body, required={"userId", "title", "body"}, optional=set())
    return PushRequest(
        _user_id(fields["userId"]),
        text_field(fields, "title", MAX_TITLE_LENGTH),
        text_field(fields, "body", MAX_PUSH_BODY_LENGTH),
    )


def failure_request(body: bytes) -> FailureRequest:
    fields = json_fields(body, required={"channel", "count", "kind"}, optional=set())
    count = fields["count"]
    if type(count) is not int or not 1 <= count <= MAX_PENDING_FAILURES:
        raise InvalidRequest(
            f"count must be a whole number from 1 to {MAX_PENDING_FAILURES}", "parameter_invalid"
        )
    return FailureRequest(
        _one_of(fields["channel"], CHANNELS, "channel"),
        count,
        _one_of(fields["kind"], FAILURE_KINDS, "kind"),
    )


def messages_query(query: dict[str, list[str]]) -> tuple[str, str | None]:
    """The channel and the optional `to` filter of GET /v1/sandbox/messages."""
    if set(query) - {"channel", "to"}:
        raise InvalidRequest("the query takes only channel and to", "parameter_unknown")
    channels = query.get("channel") or []
    if len(channels) != 1:
        raise InvalidRequest("give exactly one channel: email, sms or push", "parameter_missing")
    tos = query.get("to")
    if tos is not None and (len(tos) != 1 or not 0 < len(tos[0]) <= MAX_FILTER_LENGTH):
        raise InvalidRequest(
            f"give at most one to of 1 to {MAX_FILTER_LENGTH} characters", "parameter_invalid"
        )
    return _one_of(channels[0], CHANNELS, "channel"), tos[0] if tos else None


def _user_id(value: object) -> str:
    """The id as sent (so the `to` filter finds it), if it is a UUID in its usual form."""
    if not isinstance(value, str) or not UUID.fullmatch(value):
        raise InvalidRequest("userId must be a UUID", "user_id_invalid")
    return value


def _one_of(value: object, allowed: tuple[str, ...], name: str) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise InvalidRequest(f"{name} must be one of {', '.join(allowed)}", "parameter_invalid")
    return value
