"""What Envoy itself answers: health, limits, unknown paths."""

import uuid

from tests.e2e.rest import Rest


def test_healthz_is_200_when_every_service_serves(api: Rest) -> None:
    assert api.call("GET", "/healthz").status == 200


def test_an_oversized_body_is_413(api: Rest) -> None:
    huge = b'{"email": "' + b"a" * 200_000 + b'"}'
    assert api.call("POST", "/users", raw=huge).status == 413


def test_an_unknown_path_needs_a_token_then_is_404_with_a_json_body(api: Rest) -> None:
    anonymous = api.call("GET", "/no/such/thing")
    assert anonymous.status == 401
    email = f"edge-{uuid.uuid4().hex[:8]}@example.com"
    password = "correct horse battery staple"
    api.call("POST", "/users", {"email": email, "password": password, "phone": "+15551234567"})
    login = api.call("POST", "/auth/login", {"email": email, "password": password})
    reply = api.call("GET", "/no/such/thing", token=login.body["accessToken"])
    assert reply.status == 404
    assert isinstance(reply.body, dict)
    assert reply.body["code"] == 5
