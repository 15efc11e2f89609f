"""The benchmark's own user: registered and logged in through the REST API."""

import json
import secrets
from dataclasses import dataclass
from typing import Any

from bench.http1 import Http1Connection

# Long and random enough to pass the service's password rules.
PASSWORD = "bench-Radiator-7391"
JSON_HEADERS = {"Content-Type": "application/json"}


class SetupError(RuntimeError):
    """Registering or logging in the benchmark's user failed."""


@dataclass(frozen=True)
class Account:
    user_id: str
    access_token: str

    @property
    def authorization(self) -> str:
        return f"Bearer {self.access_token}"


def registration_body(label: str) -> bytes:
    """A valid `POST /users` body with an email no other call of this run uses."""
    return json.dumps(
        {
            "email": f"bench-{label}-{secrets.token_hex(6)}@example.com",
            "password": PASSWORD,
            "phone": f"+1555{secrets.randbelow(10**7):07d}",
        }
    ).encode()


async def register_and_log_in(base_url: str) -> Account:
    connection = Http1Connection(base_url)
    try:
        body = registration_body("owner")
        created = await _post(connection, "/users", body)
        credentials = {"email": json.loads(body)["email"], "password": PASSWORD}
        session = await _post(connection, "/auth/login", json.dumps(credentials).encode())
    finally:
        await connection.close()
    if session.get("userId") != created.get("userId"):
        raise SetupError(f"login answered for another user: {session!r} after {created!r}")
    return Account(user_id=str(created["userId"]), access_token=str(session["accessToken"]))


async def log_in(base_url: str, email: str, password: str) -> Account:
    connection = Http1Connection(base_url)
    try:
        credentials = {"email": email, "password": password}
        session = await call_json(connection, "POST", "/auth/login", {}, credentials)
    finally:
        await connection.close()
    return Account(user_id=str(session["userId"]), access_token=str(session["accessToken"]))


async def call_json(
    connection: Http1Connection,
    method: str,
    path: str,
    headers: dict[str, str],
    body: object = None,
) -> Any:
    """The JSON answer of one REST call; SetupError unless it answered 200."""
    raw = b"" if body is None else json.dumps(body).encode()
    response = await connection.request(method, path, {**headers, **JSON_HEADERS}, raw)
    if response.status != 200:
        raise SetupError(f"{method} {path} answered {response.status}: {response.body[:200]!r}")
    return json.loads(response.body)


async def _post(connection: Http1Connection, path: str, body: bytes) -> dict[str, Any]:
    response = await connection.request("POST", path, JSON_HEADERS, body)
    if response.status != 200:
        raise SetupError(f"POST {path} answered {response.status}: {response.body[:300]!r}")
    reply: dict[str, Any] = json.loads(response.body)
    return reply
