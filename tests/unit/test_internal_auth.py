"""Service credentials are accepted only as we mint them."""

import time

import jwt
import pytest

from services.runtime.errors import Unauthenticated
from services.runtime.internal_auth import ServiceCredentials

KEY = b"a mesh key for unit tests, 32 bytes or more"


def minted(**claims: object) -> str:
    """A credential with these claims changed; a claim set to None is left out."""
    now = int(time.time())
    base = {"iss": "space", "aud": "warmhouse-internal", "iat": now, "exp": now + 300}
    merged = {key: value for key, value in {**base, **claims}.items() if value is not None}
    return jwt.encode(merged, KEY, algorithm="HS256")


def test_a_minted_credential_names_its_service() -> None:
    assert ServiceCredentials(KEY, "device").verify(ServiceCredentials(KEY, "space").token()) == (
        "space"
    )
    assert ServiceCredentials(KEY, "device").verify(minted()) == "space"


@pytest.mark.parametrize(
    "claims",
    [
        {"exp": int(time.time()) + 100 * 365 * 24 * 3600},  # a century
        {"iss": "anything-at-all!"},
        {"iss": ""},
        {"iat": None},
        {"iat": int(time.time()) + 3600, "exp": int(time.time()) + 3900},  # issued in the future
        {"aud": "someone-else"},
    ],
    ids=["century", "bad name", "empty name", "no iat", "future", "audience"],
)
def test_credentials_we_would_not_mint_are_refused(claims: dict[str, object]) -> None:
    with pytest.raises(Unauthenticated):
        ServiceCredentials(KEY, "device").verify(minted(**claims))
