"""Access tokens (ES256 JWTs) and refresh tokens (random, stored hashed)."""

import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from services.runtime.auth import AUDIENCE, ISSUER
from services.user.signing_keys import ALGORITHM, public_jwk


@dataclass(frozen=True)
class IssuedTokens:
    access_token: str
    refresh_token: str
    expires_in: int


def new_refresh_token() -> str:
    return secrets.token_urlsafe(32)


def refresh_token_digest(refresh_token: str) -> str:
    return hashlib.sha256(refresh_token.encode()).hexdigest()


class TokenIssuer:
    def __init__(self, private_key: ec.EllipticCurvePrivateKey, access_ttl_seconds: int) -> None:
        self._private_key = private_key
        self._jwk = public_jwk(private_key)
        self.access_ttl_seconds = access_ttl_seconds

    @property
    def jwks(self) -> list[dict[str, str]]:
        return [self._jwk]

    def access_token(self, user_id: str, role: str, session_id: str) -> str:
        issued_at = int(time.time())
        claims = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": user_id,
            "role": role,
            "sid": session_id,
            "iat": issued_at,
            "exp": issued_at + self.access_ttl_seconds,
            "jti": str(uuid.uuid4()),
        }
        return jwt.encode(
            claims, self._private_key, algorithm=ALGORITHM, headers={"kid": self._jwk["kid"]}
        )
