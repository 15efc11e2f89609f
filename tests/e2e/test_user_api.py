"""User Management through Envoy: REST/JSON in, gRPC to the real service."""

import uuid

import pytest

from tests.e2e.accounts import PASSWORD, PHONE, login, new_email, register, token_of
from tests.e2e.conftest import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.e2e.rest import Rest


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
        ({"email": "a..b@example.com", "password": PASSWORD, "phone": PHONE}, "INVALID_EMAIL"),
        ({"email": "a@-example-.com", "password": PASSWORD, "phone": PHONE}, "INVALID_EMAIL"),
        ({"email": "a@example.com", "password": "        ", "phone": PHONE}, "WEAK_PASSWORD"),
        ({"email": "a@example.com", "password": "aaaaaaaa", "phone": PHONE}, "WEAK_PASSWORD"),
        ({"email": "a@example.com", "password": "abcdefgh", "phone": PHONE}, "WEAK_PASSWORD"),
    ],
)
def test_bad_registrations_are_400_with_a_reason(
    api: Rest, body: dict[str, str], reason: str
) -> None:
    reply = api.call("POST", "/users", body)
    assert reply.status == 400
    assert reply.reason == reason
    assert reply.body["message"]


def test_malformed_json_is_400_not_500(api: Rest) -> None:
    # Unknown members are ignored, not refused: tests/e2e/test_edge.py shows it.
    for body in (b"{not json", b"[1, 2]", b'{"email": 7}', b"\xff\xfe"):
        assert api.call("POST", "/users", raw=body).status == 400


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
    assert isinstance(session["deviceToken"], str)


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


def test_the_owners_device_token_gets_in_while_strangers_are_locked_out(api: Rest) -> None:
    _, email = register(api)
    device_token = login(api, email)["deviceToken"]
    for _ in range(5):
        guess = api.call("POST", "/auth/login", {"email": email, "password": "guessing!!"})
        assert guess.status == 401
    stranger = api.call("POST", "/auth/login", {"email": email, "password": PASSWORD})
    assert stranger.status == 429
    assert stranger.reason == "TOO_MANY_LOGIN_FAILURES"
    owner = login(api, email, deviceToken=device_token)
    assert owner["accessToken"]


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


def test_refresh_rotates_and_a_reused_token_ends_the_session(api: Rest) -> None:
    user_id, email = register(api)
    session = login(api, email)
    rotated = api.call("POST", "/auth/refresh", {"refreshToken": session["refreshToken"]})
    assert rotated.status == 200
    assert rotated.body["refreshToken"] != session["refreshToken"]
    assert api.call("GET", f"/users/{user_id}", token=rotated.body["accessToken"]).status == 200
    reused = api.call("POST", "/auth/refresh", {"refreshToken": session["refreshToken"]})
    assert reused.status == 401
    latest = api.call("POST", "/auth/refresh", {"refreshToken": rotated.body["refreshToken"]})
    assert latest.status == 401
    assert api.call("GET", f"/users/{user_id}", token=rotated.body["accessToken"]).status == 401


def test_logout_refuses_the_token_at_once(api: Rest) -> None:
    user_id, email = register(api)
    token = token_of(api, email)
    assert api.call("POST", "/auth/logout", {}, token=token).status == 200
    after = api.call("GET", f"/users/{user_id}", token=token)
    assert after.status == 401
    assert after.reason == "TOKEN_REVOKED"


def test_delete_deactivates_and_stops_tokens_at_once(api: Rest) -> None:
    user_id, email = register(api)
    token = token_of(api, email)
    assert api.call("DELETE", f"/users/{user_id}", token=token).status == 200
    assert api.call("GET", f"/users/{user_id}", token=token).status == 401
    assert api.call("POST", "/auth/login", {"email": email, "password": PASSWORD}).status == 401
    admin = token_of(api, ADMIN_EMAIL, ADMIN_PASSWORD)
    kept = api.call("GET", f"/users/{user_id}", token=admin)
    assert kept.status == 200
    assert kept.body["user"]["isActive"] is False


def test_a_demoted_admin_loses_its_powers_at_once(api: Rest) -> None:
    user_id, email = register(api)
    root = token_of(api, ADMIN_EMAIL, ADMIN_PASSWORD)
    assert api.call("PUT", f"/users/{user_id}", {"role": "ADMIN"}, token=root).status == 200
    second = token_of(api, email)
    assert api.call("GET", "/users", token=second).status == 200
    assert api.call("PUT", f"/users/{user_id}", {"role": "USER"}, token=root).status == 200
    assert api.call("GET", "/users", token=second).status == 401
    again = api.call("PUT", f"/users/{user_id}", {"role": "ADMIN"}, token=second)
    assert again.status == 401


def test_changing_the_email_takes_the_current_password(api: Rest) -> None:
    user_id, email = register(api)
    token = token_of(api, email)
    other_device = token_of(api, email)
    new = new_email()
    without = api.call("PUT", f"/users/{user_id}", {"email": new}, token=token)
    assert without.status == 400
    assert without.reason == "CURRENT_PASSWORD_REQUIRED"
    wrong = api.call(
        "PUT", f"/users/{user_id}", {"email": new, "currentPassword": "nope nope"}, token=token
    )
    assert wrong.status == 403
    changed = api.call(
        "PUT", f"/users/{user_id}", {"email": new, "currentPassword": PASSWORD}, token=token
    )
    assert changed.status == 200
    assert changed.body["user"]["email"] == new
    assert api.call("GET", f"/users/{user_id}", token=token).status == 200
    assert api.call("GET", f"/users/{user_id}", token=other_device).status == 401
    assert login(api, new)["userId"] == user_id


def test_the_jwks_is_published(api: Rest) -> None:
    reply = api.call("GET", "/.well-known/jwks.json")
    assert reply.status == 200
    assert reply.body["keys"][0]["alg"] == "ES256"
    assert reply.body["keys"][0]["kty"] == "EC"


def test_locale_and_time_zone_through_rest(api: Rest) -> None:
    user_id, email = register(api, locale="ru", timeZone="Europe/Moscow")
    token = token_of(api, email)
    own = api.call("GET", f"/users/{user_id}", token=token)
    assert own.status == 200
    assert (own.body["user"]["locale"], own.body["user"]["timeZone"]) == ("ru", "Europe/Moscow")
    updated = api.call("PUT", f"/users/{user_id}", {"locale": "en"}, token=token)
    assert updated.status == 200
    assert (updated.body["user"]["locale"], updated.body["user"]["timeZone"]) == (
        "en",
        "Europe/Moscow",
    )
    updated = api.call("PUT", f"/users/{user_id}", {"timeZone": "America/New_York"}, token=token)
    assert updated.status == 200
    assert updated.body["user"]["timeZone"] == "America/New_York"
    default_id, default_email = register(api)
    default = api.call("GET", f"/users/{default_id}", token=token_of(api, default_email))
    assert (default.body["user"]["locale"], default.body["user"]["timeZone"]) == ("en", "UTC")


@pytest.mark.parametrize(
    ("profile", "reason"),
    [
        ({"locale": "de"}, "INVALID_LOCALE"),
        ({"locale": "EN"}, "INVALID_LOCALE"),
        ({"timeZone": "localtime"}, "INVALID_TIME_ZONE"),
        ({"timeZone": "posix/Europe/Moscow"}, "INVALID_TIME_ZONE"),
        ({"timeZone": "Europe/" + "x" * 6000}, "INVALID_TIME_ZONE"),
    ],
)
def test_bad_locales_and_time_zones_are_400(
    api: Rest, profile: dict[str, str], reason: str
) -> None:
    body = {"email": new_email(), "password": PASSWORD, "phone": PHONE, **profile}
    reply = api.call("POST", "/users", body)
    assert reply.status == 400
    assert reply.reason == reason
    assert "xxxxxxxx" not in str(reply.body)
    assert "posix" not in str(reply.body)
    user_id, email = register(api)
    token = token_of(api, email)
    update = api.call("PUT", f"/users/{user_id}", profile, token=token)
    assert update.status == 400
    assert update.reason == reason
    empty = api.call("PUT", f"/users/{user_id}", {"locale": ""}, token=token)
    assert empty.status == 400
    assert empty.reason == "INVALID_LOCALE"
