"""Accounts for tests through Envoy's REST API: register, log in."""

import uuid
from typing import Any

from tests.e2e.rest import Rest

PASSWORD = "correct horse battery staple"
PHONE = "+15551234567"


def new_email() -> str:
    return f"e2e-{uuid.uuid4().hex[:10]}@example.com"


def new_phone() -> str:
    """A number of its own, so the SMS sent to one person can be told from another's."""
    return f"+1555{uuid.uuid4().int % 10**7:07d}"


def register(
    api: Rest, email: str | None = None, phone: str = PHONE, **profile: str
) -> tuple[str, str]:
    """A new account; (user id, email). `profile`: e.g. locale="ru"."""
    email = email or new_email()
    body = {"email": email, "password": PASSWORD, "phone": phone, **profile}
    reply = api.call("POST", "/users", body)
    assert reply.status == 200, reply.body
    return str(reply.body["userId"]), email


def login(api: Rest, email: str, password: str = PASSWORD, **extra: str) -> dict[str, Any]:
    """The LoginResponse as JSON (camelCase keys)."""
    reply = api.call("POST", "/auth/login", {"email": email, "password": password, **extra})
    assert reply.status == 200, reply.body
    return dict(reply.body)


def token_of(api: Rest, email: str, password: str = PASSWORD) -> str:
    return str(login(api, email, password)["accessToken"])
