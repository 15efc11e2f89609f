import json
import time
from pathlib import Path

import jwt
import pytest

from services.runtime.auth import Caller, RevokedTokens, TokenVerifier
from services.runtime.errors import Unauthenticated
from services.user.signing_keys import ensure_signing_key, load_private_key
from services.user.tokens import TokenIssuer

Keys = tuple[Path, Path]


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    private, jwks = tmp_path / "key.pem", tmp_path / "jwks.json"
    ensure_signing_key(private, jwks)
    return private, jwks


@pytest.fixture
def issuer(keys: Keys) -> TokenIssuer:
    return TokenIssuer(load_private_key(keys[0]), access_ttl_seconds=60)


def verifier(keys: Keys, revoked: RevokedTokens | None = None) -> TokenVerifier:
    return TokenVerifier.from_file(
        keys[1], revoked or RevokedTokens(remember_seconds=300), max_lifetime_seconds=300
    )


def reason(error: pytest.ExceptionInfo[Unauthenticated]) -> str:
    return error.value.reason


def test_a_token_it_issued_verifies_with_the_published_jwks(
    keys: Keys, issuer: TokenIssuer
) -> None:
    caller = verifier(keys).verify(issuer.access_token("u1", "ADMIN", "s1"))
    assert (caller.user_id, caller.role, caller.session_id, caller.is_admin) == (
        "u1",
        "ADMIN",
        "s1",
        True,
    )


def test_ensure_signing_key_keeps_an_existing_key(keys: Keys) -> None:
    before = json.loads(keys[1].read_text())
    ensure_signing_key(*keys)
    assert json.loads(keys[1].read_text()) == before


def test_a_token_signed_by_another_key_is_refused(
    keys: Keys, issuer: TokenIssuer, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    ensure_signing_key(other / "key.pem", other / "jwks.json")
    foreign = TokenIssuer(load_private_key(other / "key.pem"), 60).access_token("u1", "ADMIN", "s1")
    with pytest.raises(Unauthenticated) as refused:
        verifier(keys).verify(foreign)
    assert reason(refused) == "TOKEN_INVALID"


def test_expired_and_tampered_tokens_are_refused(keys: Keys, issuer: TokenIssuer) -> None:
    private = load_private_key(keys[0])
    kid = issuer.jwks[0]["kid"]
    past = int(time.time()) - 3600
    expired = jwt.encode(
        {
            "iss": "warmhouse-user",
            "aud": "warmhouse",
            "sub": "u1",
            "sid": "s",
            "role": "USER",
            "iat": past,
            "exp": past + 60,
        },
        private,
        algorithm="ES256",
        headers={"kid": kid},
    )
    with pytest.raises(Unauthenticated) as refused:
        verifier(keys).verify(expired)
    assert reason(refused) == "TOKEN_EXPIRED"
    token = issuer.access_token("u1", "USER", "s1")
    header, _, signature = token.split(".")
    forged_payload = jwt.utils.base64url_encode(
        json.dumps(
            {**jwt.decode(token, options={"verify_signature": False}), "role": "ADMIN"}
        ).encode()
    ).decode()
    with pytest.raises(Unauthenticated) as refused:
        verifier(keys).verify(f"{header}.{forged_payload}.{signature}")
    assert reason(refused) == "TOKEN_INVALID"


def test_only_revoked_sessions_are_refused(keys: Keys, issuer: TokenIssuer) -> None:
    revoked = RevokedTokens(remember_seconds=300)
    check = verifier(keys, revoked)
    first, second = issuer.access_token("u1", "USER", "s1"), issuer.access_token("u2", "USER", "s2")
    revoked.revoke_session("s1")
    with pytest.raises(Unauthenticated) as refused:
        check.verify(first)
    assert reason(refused) == "TOKEN_REVOKED"
    assert check.verify(second).user_id == "u2"


def test_revoked_sessions_are_forgotten_once_their_tokens_have_expired() -> None:
    now = [1000.0]
    revoked = RevokedTokens(remember_seconds=300, clock=lambda: now[0])
    revoked.revoke_session("old")
    now[0] += 200
    revoked.revoke_session("newer")
    now[0] += 101  # "old" is past its 300 s, "newer" is not
    revoked.revoke_session("newest")
    assert revoked.remembered == 2
    caller = Caller(user_id="u", role="USER", session_id="newer")
    assert revoked.is_revoked(caller)
    assert not revoked.is_revoked(Caller(user_id="u", role="USER", session_id="old"))


@pytest.mark.parametrize("authorization", [None, "", "Basic abc", "Bearer ", "Bearer"])
def test_a_missing_or_malformed_authorization_header_is_refused(
    keys: Keys, authorization: str | None
) -> None:
    with pytest.raises(Unauthenticated) as refused:
        verifier(keys).verify_authorization(authorization)
    assert reason(refused) == "TOKEN_MISSING"


def test_a_cached_token_is_still_checked_for_revocation(keys: Keys, issuer: TokenIssuer) -> None:
    revoked = RevokedTokens(remember_seconds=300)
    check = verifier(keys, revoked)
    token = issuer.access_token("u1", "USER", "s1")
    assert check.verify(token).user_id == "u1"
    revoked.revoke_session("s1")
    with pytest.raises(Unauthenticated) as refused:
        check.verify(token)
    assert reason(refused) == "TOKEN_REVOKED"


def test_a_cached_token_stops_working_when_it_expires(keys: Keys, issuer: TokenIssuer) -> None:
    check = TokenVerifier(
        json.loads(keys[1].read_text()),
        RevokedTokens(remember_seconds=300),
        max_lifetime_seconds=300,
        leeway=0,
    )
    now = int(time.time())
    token = jwt.encode(
        {
            "iss": "warmhouse-user",
            "aud": "warmhouse",
            "sub": "u1",
            "sid": "s",
            "role": "USER",
            "iat": now,
            "exp": now + 1,
        },
        load_private_key(keys[0]),
        algorithm="ES256",
        headers={"kid": issuer.jwks[0]["kid"]},
    )
    assert check.verify(token).user_id == "u1"
    time.sleep(now + 1.1 - time.time())
    with pytest.raises(Unauthenticated) as refused:
        check.verify(token)
    assert reason(refused) == "TOKEN_EXPIRED"


@pytest.mark.parametrize(
    ("lifetime", "claims"),
    [(100 * 365 * 24 * 3600, {"role": "ADMIN"}), (60, {})],
    ids=["a century long", "without a role"],
)
def test_a_genuinely_signed_token_we_would_never_issue_is_refused(
    keys: Keys, issuer: TokenIssuer, lifetime: int, claims: dict[str, str]
) -> None:
    now = int(time.time())
    token = jwt.encode(
        {"iss": "warmhouse-user", "aud": "warmhouse", "sub": "u1", "sid": "s"}
        | {"iat": now, "exp": now + lifetime}
        | claims,
        load_private_key(keys[0]),
        algorithm="ES256",
        headers={"kid": issuer.jwks[0]["kid"]},
    )
    with pytest.raises(Unauthenticated) as refused:
        verifier(keys).verify(token)
    assert reason(refused) == "TOKEN_INVALID"
