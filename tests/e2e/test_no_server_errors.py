"""Whatever a client sends, a mistake is a 4xx, never a 5xx."""

import uuid

import pytest

from tests.e2e.rest import Rest

ENDPOINTS = [
    ("POST", "/users"),
    ("POST", "/auth/login"),
    ("POST", "/auth/refresh"),
    ("POST", "/auth/logout"),
    ("GET", "/users"),
    ("GET", "/users/{id}"),
    ("PUT", "/users/{id}"),
    ("DELETE", "/users/{id}"),
]
BODIES = [
    b"",
    b"null",
    b"[]",
    b'"text"',
    b"{",
    b'{"email": 123, "password": ["x"], "phone": {}}',
    b'{"email": "' + b"x" * 5000 + b'@example.com", "password": "p", "phone": "+1"}',
    b'{"authMethod": "TELEPATHY"}',
    b'{"authMethod": "OAUTH", "email": "a@example.com", "password": "whatever!"}',
    b'{"role": "ROLE_UNSPECIFIED"}',
    b'{"role": "ROOT", "isActive": "yes"}',
    b'{"refreshToken": "' + b"r" * 3000 + b'"}',
    '{"email": "ünïcødé@exämple.com", "password": "pässwörd long", "phone": "+1555"}'.encode(),
]
IDS = ["not-a-uuid", str(uuid.uuid4()), "%00", "..", "00000000-0000-0000-0000-000000000000"]
QUERIES = ["", "?pageSize=-5", "?pageSize=abc", "?pageToken=%%%", "?pageToken=bm9wZQ", "?bogus=1"]


@pytest.fixture
def token(api: Rest) -> str:
    email = f"fuzz-{uuid.uuid4().hex[:8]}@example.com"
    password = "correct horse battery staple"
    api.call("POST", "/users", {"email": email, "password": password, "phone": "+15551234567"})
    login = api.call("POST", "/auth/login", {"email": email, "password": password})
    return str(login.body["accessToken"])


@pytest.mark.parametrize(("method", "template"), ENDPOINTS)
def test_malformed_requests_are_client_errors(
    api: Rest, token: str, method: str, template: str
) -> None:
    for user_id in IDS if "{id}" in template else [""]:
        path = template.replace("{id}", user_id)
        for query in QUERIES if method == "GET" else [""]:
            for body in BODIES if method in ("POST", "PUT") else [None]:
                for bearer in (token, None):
                    reply = api.call(method, path + query, raw=body, token=bearer)
                    assert 200 <= reply.status < 500, (method, path + query, body, reply)
