"""Access tokens (ES256 JWTs), refresh tokens (random, stored hashed) and
device tokens (HMAC-signed, stored nowhere)."""

import base64
import hashlib
import hmac
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

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


@dataclass(frozen=True)
class DeviceToken:
    """What a valid device token says: this user logged in on this device."""

    user_id: uuid.UUID
    nonce: str

    @property
    def device_id(self) -> str:
        """Names the device's own failure counter."""
        return f"{self.user_id}:{self.nonce}"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class DeviceTokens:
    """OWASP's "device cookie": `<user id>.<nonce>.<issued, unix s>.<HMAC>`.

    Issued on every successful login; presented at the next one, it exempts
    that device from the locks strangers cause. Nothing is stored: the
    signature proves we issued it, and a token older than `max_age` is ignored.
    """

    def __init__(self, key: bytes, max_age: timedelta = timedelta(days=365)) -> None:
        self._key = key
        self._max_age = max_age

    def _sign(self, payload: str) -> str:
        return _b64url(hmac.new(self._key, payload.encode(), hashlib.sha256).digest())

    def issue(self, user_id: uuid.UUID, now: datetime) -> str:
        payload = f"{user_id.hex}.{secrets.token_urlsafe(16)}.{int(now.timestamp())}"
        return f"{payload}.{self._sign(payload)}"

    def read(self, token: str, now: datetime) -> DeviceToken | None:
        """The token's claims when we issued it and it is not too old, else None."""
        payload, _, signature = token.rpartition(".")
        if not hmac.compare_digest(signature.encode(), self._sign(payload).encode()):
            return None
        try:
            user_hex, nonce, issued = payload.split(".")
            user_id, age = uuid.UUID(hex=user_hex), now.timestamp() - int(issued)
        except ValueError:  # signed by us, so never; but never a 500 either
            return None
        if not -60 <= age <= self._max_age.total_seconds():
            return None
        return DeviceToken(user_id, nonce)
