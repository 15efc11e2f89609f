"""What Envoy itself answers and enforces: health, limits, unknown paths, media types, headers."""

import http.client
import json
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from services.runtime.internal_auth import SERVICE_TOKEN_HEADER
from tests.e2e.rest import Rest

PASSWORD = "correct horse battery staple"
PHONE = "+15551234567"
JSON = {"content-type": "application/json"}


def send(
    base_url: str,
    method: str,
    path: str,
    body: object = None,
    headers: Mapping[str, str] = JSON,
) -> tuple[int, dict[str, str], Any]:
    """One request with exactly `headers`; (status, lower-cased headers, JSON body)."""
    address = urlsplit(base_url)
    connection = http.client.HTTPConnection(address.hostname or "", address.port, timeout=30)
    try:
        data = None if body is None else json.dumps(body).encode()
        connection.request(method, path, body=data, headers=dict(headers))
        response = connection.getresponse()
        payload = response.read()
        answer_headers = {name.lower(): value for name, value in response.getheaders()}
        return response.status, answer_headers, json.loads(payload) if payload else None
    finally:
        connection.close()


def registration() -> dict[str, str]:
    return {
        "email": f"edge-{uuid.uuid4().hex[:8]}@example.com",
        "password": PASSWORD,
        "phone": PHONE,
    }


def test_healthz_is_200_when_every_service_serves(api: Rest) -> None:
    assert api.call("GET", "/healthz").status == 200


def test_an_oversized_body_is_413(api: Rest) -> None:
    huge = b'{"email": "' + b"a" * 200_000 + b'"}'
    assert api.call("POST", "/users", raw=huge).status == 413


def test_an_unknown_path_needs_a_token_then_is_404_with_a_json_body(api: Rest) -> None:
    anonymous = api.call("GET", "/no/such/thing")
    assert anonymous.status == 401
    account = registration()
    api.call("POST", "/users", account)
    login = api.call("POST", "/auth/login", {"email": account["email"], "password": PASSWORD})
    reply = api.call("GET", "/no/such/thing", token=login.body["accessToken"])
    assert reply.status == 404
    assert isinstance(reply.body, dict)
    assert reply.body["code"] == 5


def test_tokens_and_errors_are_never_stored_sniffed_or_branded(base_url: str) -> None:
    account = registration()
    assert send(base_url, "POST", "/users", account)[0] == 200
    credentials = {"email": account["email"], "password": PASSWORD}
    login = send(base_url, "POST", "/auth/login", credentials)
    denied = send(base_url, "GET", "/users/whoever", headers={})

    for status, headers, _ in (login, denied):
        assert headers["cache-control"] == "no-store", status
        assert headers["x-content-type-options"] == "nosniff", status
        assert "server" not in headers, status
    assert (login[0], denied[0]) == (200, 401)


def test_a_body_that_is_not_json_is_415_and_does_nothing(base_url: str) -> None:
    # What a web page elsewhere can make a visitor's browser send without asking.
    account = registration()

    status, _, body = send(base_url, "POST", "/users", account, {"content-type": "text/plain"})

    assert status == 415
    assert body["code"] == 3
    # Not registered: the same email is still free.
    assert send(base_url, "POST", "/users", account)[0] == 200


def test_unknown_members_of_a_json_body_are_ignored(base_url: str) -> None:
    # Envoy's transcoder drops them (README.md: it cannot refuse them), so they
    # can never take effect: a self-declared admin is registered as a USER.
    account = {**registration(), "role": "ADMIN", "isAdmin": True}

    status, _, body = send(base_url, "POST", "/users", account)

    assert status == 200
    assert body["role"] == "USER"


def test_a_forged_service_token_changes_nothing(base_url: str) -> None:
    account = registration()
    send(base_url, "POST", "/users", account)
    credentials = {"email": account["email"], "password": PASSWORD}
    session = send(base_url, "POST", "/auth/login", credentials)[2]
    forged = {"authorization": f"Bearer {session['accessToken']}", SERVICE_TOKEN_HEADER: "forged"}

    # Listing users is for admins; a service credential would not make it anyone's.
    assert send(base_url, "GET", "/users", headers=forged)[0] == 403
    assert send(base_url, "GET", f"/users/{session['userId']}", headers=forged)[0] == 200


def test_public_routes_are_rate_limited_at_the_edge(base_url: str) -> None:
    # The bucket's size comes with every answer of a rate-limited route.
    _, headers, _ = send(base_url, "GET", "/.well-known/jwks.json", headers={})

    assert int(headers["x-ratelimit-limit"]) > 0


def test_envoys_own_refusals_never_repeat_what_was_sent(api: Rest) -> None:
    # The transcoder's words quote unknown enum values, query parameters and paths.
    account = registration()
    user_id = api.call("POST", "/users", account).body["userId"]
    login = {"email": account["email"], "password": PASSWORD}
    token = api.call("POST", "/auth/login", login).body["accessToken"]
    space = str(uuid.uuid4())
    marker = "ZQXMARKER"
    refusals = [
        ("POST", f"/spaces/{space}/users", {"userId": user_id, "role": f"OWNER{marker}"}, 400),
        ("PATCH", f"/devices/{space}/status", {"status": marker}, 400),
        ("GET", f"/spaces?pageSize=abc{marker}", None, 400),
        ("GET", f"/spaces?foo{marker}=1", None, 400),
        ("GET", f"/devices/{space}/logs?kind={marker}", None, 400),
        ("GET", f"/spaces/x/{marker * 600}", None, 404),
    ]
    for method, path, body, status in refusals:
        reply = api.call(method, path, body, token=token)
        assert reply.status == status, (path[:80], reply)
        assert marker not in json.dumps(reply.body), (path[:80], reply.body)
        assert reply.body["message"], reply.body
