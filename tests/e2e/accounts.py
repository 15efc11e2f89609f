"""Accounts for tests through Envoy's REST API: register, log in."""

import uuid
from typing import Any

from tests.e2e.rest import Rest

PASSWORD = "correct horse battery staple"
PHONE = "+15551234567"


def new_email() -> str:
    return f"e2e-{uuid.uuid4().hex[:10]}@example.com"


def register(api: Rest, email: str | None = None) -> tuple[str, str]:
    """A new account; (user id, email)."""
    email = email or new_email()
    reply = api.call("POST", "/users", {"email": email, "password": PASSWORD, "phone": PHONE})
    assert reply.status == 200, reply.body
    return str(reply.body["userId"]), email


def login(api: Rest, email: str, password: str = PASSWORD, **extra: str) -> dict[str, Any]:
    """The LoginResponse as JSON (camelCase keys)."""
    reply = api.call("POST", "/auth/login", {"email": email, "password": password, **extra})
    assert reply.status == 200, reply.body
    return dict(reply.body)


def token_of(api: Rest, email: str, password: str = PASSWORD) -> str:
    return str(login(api, email, password)["accessToken"])
