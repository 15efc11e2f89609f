"""An HTTP answer as it goes on the wire, so an idempotent replay is byte-identical."""

import json
from dataclasses import dataclass
from typing import Any

from services.payment_sandbox.errors import ApiError

JsonObject = dict[str, Any]


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes


def json_answer(status: int, document: JsonObject) -> Answer:
    return Answer(status, json.dumps(document).encode())


def error_document(error_type: str, message: str, code: str | None, **extra: Any) -> JsonObject:
    return {"error": {"type": error_type, "code": code, "message": message, **extra}}


def error_answer(error: ApiError) -> Answer:
    return json_answer(error.status, error_document(error.type, error.message, error.code))


def list_answer(items: list[JsonObject]) -> Answer:
    return json_answer(200, {"object": "list", "data": items})
