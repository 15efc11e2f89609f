"""User Management through Envoy: REST/JSON in, gRPC to the real service."""

import time
import uuid

import pytest

from tests.e2e.conftest import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.e2e.rest import Rest

PASSWORD = "correct horse battery staple"
PHONE = "+15551234567"


def new_email() -> str:
    return f"e2e-{uuid.uuid4().hex[:10]}@example.com"


def register(api: Rest, email: str | None = None) -> tuple[str, str]:
    email = email or new_email()
    reply = api.call("POST", "/users", {"email": email, "password": PASSWORD, "phone": PHONE})
    assert reply.status == 200, reply.body
    return reply.body["userId"], email


def login(api: Rest, email: str, password: str = PASSWORD) -> dict[str, object]:
    reply = api.call("POST", "/auth/login", {"email": email, "password": password})
    assert reply.status == 200, reply.body
    return dict(reply.body)


def token_of(api: Rest, email: str, password: str = PASSWORD) -> str:
    return str(login(api, email, password)["accessToken"])


def test_registration_answers_as_the_spec_says(api: Rest) -> None:
    reply = api.call("POST", "/users", {"email": new_email(), "password": PASSWORD, "phone": PHONE})
    assert reply.status == 200
    assert set(reply.body) == {"userId", "role"}
    assert reply.body["role"] == "USER"
    assert uuid.UUID(reply.body["userId"])


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"email": "nope", "password": PASSWORD, "phone": PHONE}, "INVALID_EMAIL"),
        ({"email": "a@example.com", "password": PASSWORD, "phone": "12"}, "INVALID_PHONE"),
        ({"email": "a@example.com", "password": "password1", "phone": PHONE}, "WEAK_PASSWORD"),
    ],
)
def test_bad_registrations_are_400_with_a_reason(
    api: Rest, body: dict[str, str], reason: str
) -> None:
    reply = api.call("POST", "/users", body)
    assert reply.status == 400
    assert reply.reason == reason
    assert reply.body["message"]


def test_malformed_json_and_unknown_fields_are_400_not_500(api: Rest) -> None:
    assert api.call("POST", "/users", raw=b"{not json").status == 400
    unknown = api.call("POST", "/users", {"email": new_email(), "isAdmin": True})
    assert unknown.status == 400


def test_a_taken_email_is_409(api: Rest) -> None:
    _, email = register(api)
    reply = api.call(
        "POST", "/users", {"email": email.upper(), "password": PASSWORD, "phone": PHONE}
    )
    assert reply.status == 409
    assert reply.reason == "EMAIL_TAKEN"


def test_login_returns_tokens_in_camel_case(api: Rest) -> None:
    user_id, email = register(api)
    session = login(api, email)
    assert session["userId"] == user_id
    assert session["tokenType"] == "Bearer"
    assert session["expiresIn"] == 300
    assert isinstance(session["accessToken"], str)
    assert isinstance(session["refreshToken"], str)


def test_wrong_email_and_wrong_password_get_the_same_401(api: Rest) -> None:
    _, email = register(api)
    wrong_password = api.call("POST", "/auth/login", {"email": email, "password": "bad password!"})
    wrong_email = api.call("POST", "/auth/login", {"email": new_email(), "password": PASSWORD})
    assert wrong_password.status == wrong_email.status == 401
    assert wrong_password.body == wrong_email.body


def test_repeated_failures_are_429(api: Rest) -> None:
    _, email = register(api)
    statuses = [
        api.call("POST", "/auth/login", {"email": email, "password": "guessing!!"}).status
        for _ in range(6)
    ]
    assert statuses == [401] * 5 + [429]
    assert api.call("POST", "/auth/login", {"email": email, "password": PASSWORD}).status == 429


def test_profile_needs_a_token_and_reaches_only_your_own(api: Rest) -> None:
    mine, email = register(api)
    theirs, _ = register(api)
    token = token_of(api, email)
    assert api.call("GET", f"/users/{mine}").status == 401
    assert api.call("GET", f"/users/{mine}", token="garbage").status == 401
    own = api.call("GET", f"/users/{mine}", token=token)
    assert own.status == 200
    assert own.body["user"]["email"] == email
    assert own.body["user"]["role"] == "USER"
    assert own.body["user"]["isActive"] is True
    assert "passwordHash" not in own.body["user"]
    assert api.call("GET", f"/users/{theirs}", token=token).status == 403
    assert api.call("GET", "/users/not-a-uuid", token=token).status == 400


def test_profile_update(api: Rest) -> None:
    user_id, email = register(api)
    token = token_of(api, email)
    updated = api.call("PUT", f"/users/{user_id}", {"phone": "+442071838750"}, token=token)
    assert updated.status == 200
    assert updated.body["user"]["phone"] == "+442071838750"
    escalate = api.call("PUT", f"/users/{user_id}", {"role": "ADMIN"}, token=token)
    assert escalate.status == 403
    assert api.call("PUT", f"/users/{user_id}", {"phone": "x"}, token=token).status == 400


def test_admins_list_read_and_promote(api: Rest) -> None:
    user_id, _ = register(api)
    admin = token_of(api, ADMIN_EMAIL, ADMIN_PASSWORD)
    page = api.call("GET", "/users?pageSize=1", token=admin)
    assert page.status == 200
    assert len(page.body["users"]) == 1
    assert page.body["nextPageToken"]
    assert api.call("GET", f"/users/{uuid.uuid4()}", token=admin).status == 404
    promoted = api.call("PUT", f"/users/{user_id}", {"role": "ADMIN"}, token=admin)
    assert promoted.status == 200
    assert promoted.body["user"]["role"] == "ADMIN"
    assert api.call("GET", "/users?pageSize=-1", token=admin).status == 400


def test_refresh_rotates_and_logout_revokes(api: Rest) -> None:
    user_id, email = register(api)
    session = login(api, email)
    rotated = api.call("POST", "/auth/refresh", {"refreshToken": session["refreshToken"]})
    assert rotated.status == 200
    assert rotated.body["refreshToken"] != session["refreshToken"]
    reused = api.call("POST", "/auth/refresh", {"refreshToken": session["refreshToken"]})
    assert reused.status == 401
    token = rotated.body["accessToken"]
    assert api.call("POST", "/auth/logout", {}, token=token).status == 200
    assert eventually_unauthorized(api, f"/users/{user_id}", token)


def eventually_unauthorized(api: Rest, path: str, token: str) -> bool:
    """Revocation reaches services as an event; give it a few seconds."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if api.call("GET", path, token=token).status == 401:
            return True
        time.sleep(0.1)
    return False


def test_delete_deactivates_and_stops_tokens_within_seconds(api: Rest) -> None:
    user_id, email = register(api)
    token = token_of(api, email)
    assert api.call("DELETE", f"/users/{user_id}", token=token).status == 200
    assert eventually_unauthorized(api, f"/users/{user_id}", token)
    assert api.call("POST", "/auth/login", {"email": email, "password": PASSWORD}).status == 401
    admin = token_of(api, ADMIN_EMAIL, ADMIN_PASSWORD)
    kept = api.call("GET", f"/users/{user_id}", token=admin)
    assert kept.status == 200
    assert kept.body["user"]["isActive"] is False


def test_the_jwks_is_published(api: Rest) -> None:
    reply = api.call("GET", "/.well-known/jwks.json")
    assert reply.status == 200
    assert reply.body["keys"][0]["alg"] == "ES256"
    assert reply.body["keys"][0]["kty"] == "EC"
