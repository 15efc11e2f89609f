"""Access-token verification, done by every service itself.

Envoy checks tokens at the edge too, but a call that reaches a service directly
is refused the same way. Revocation (logout, deactivation) comes from the User
service's events; see `revocation.py`.
"""

import json
import time
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

from services.runtime.errors import PermissionDenied, Unauthenticated
from services.runtime.request import parse_uuid

ISSUER = "warmhouse-user"
AUDIENCE = "warmhouse"
ALGORITHMS = ["ES256"]
ROLE_ADMIN = "ADMIN"


@dataclass(frozen=True)
class Caller:
    """Who is calling: the verified claims of their access token."""

    user_id: str
    role: str
    session_id: str

    @property
    def is_admin(self) -> bool:
        return self.role == ROLE_ADMIN

    @property
    def user_uuid(self) -> uuid.UUID:
        """`user_id` as stored: our tokens name users by UUID."""
        return parse_uuid(self.user_id, "sub")

    def require_self_or_admin(self, user_id: str) -> None:
        if not (self.is_admin or self.user_id == user_id):
            raise PermissionDenied("NOT_OWNER", "you may only act on your own account")

    def require_admin(self) -> None:
        if not self.is_admin:
            raise PermissionDenied("ADMIN_REQUIRED", "only an administrator may do this")


_current_caller: ContextVar[Caller | None] = ContextVar("warmhouse_caller", default=None)


def current_caller() -> Caller:
    """The authenticated caller of the RPC being served."""
    caller = _current_caller.get()
    if caller is None:
        raise Unauthenticated("TOKEN_MISSING", "this call requires an access token")
    return caller


def set_current_caller(caller: Caller | None) -> None:
    _current_caller.set(caller)


class RevokedTokens:
    """Sessions whose access tokens must stop working before they expire.

    A session is remembered only as long as a token issued before its
    revocation could still be valid: the access-token lifetime, plus leeway.
    """

    def __init__(
        self, remember_seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._remember_seconds = remember_seconds
        self._clock = clock
        # Insertion order is revocation order, so the oldest entries come first.
        self._forget_at: dict[str, float] = {}

    def revoke_session(self, session_id: str) -> None:
        now = self._clock()
        self._forget_at.pop(session_id, None)
        self._forget_at[session_id] = now + self._remember_seconds
        self._forget_expired(now)

    def _forget_expired(self, now: float) -> None:
        for session_id, forget_at in list(self._forget_at.items()):
            if forget_at > now:
                break
            del self._forget_at[session_id]

    def is_revoked(self, caller: Caller) -> bool:
        return caller.session_id in self._forget_at

    @property
    def remembered(self) -> int:
        """How many sessions are remembered as revoked right now."""
        return len(self._forget_at)


class TokenVerifier:
    """Verifies ES256 access tokens against the published JWKS."""

    def __init__(
        self,
        jwks: dict[str, Any],
        revoked: RevokedTokens,
        max_lifetime_seconds: float,
        leeway: float = 5.0,
        cache_size: int = 10_000,
    ) -> None:
        self._keys = {key["kid"]: jwt.PyJWK(key) for key in jwks["keys"]}
        self._revoked = revoked
        # No token lives longer than the issuer's lifetime, whatever its claims
        # say: a leaked signing key cannot mint a token good for years.
        self._max_lifetime_seconds = max_lifetime_seconds
        self._leeway = leeway
        # A client sends the same token for minutes: the signature check is
        # the costly part, so its outcome is kept until the token expires.
        # Revocation is still checked on every call.
        self._verified: dict[str, tuple[Caller, float]] = {}
        self._cache_size = cache_size

    @classmethod
    def from_file(
        cls, path: Path, revoked: RevokedTokens, max_lifetime_seconds: float
    ) -> "TokenVerifier":
        return cls(json.loads(path.read_text()), revoked, max_lifetime_seconds)

    def verify(self, token: str) -> Caller:
        cached = self._verified.get(token)
        if cached is not None and time.time() < cached[1] + self._leeway:
            caller = cached[0]
        else:
            caller = self._verify_signature(token)
        if self._revoked.is_revoked(caller):
            raise Unauthenticated("TOKEN_REVOKED", "the session has ended; log in again")
        return caller

    def _verify_signature(self, token: str) -> Caller:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            key = self._keys.get(kid) if isinstance(kid, str) else None
            if key is None:
                raise Unauthenticated("TOKEN_INVALID", "the access token is not valid")
            claims = jwt.decode(
                token,
                key,
                algorithms=ALGORITHMS,
                audience=AUDIENCE,
                issuer=ISSUER,
                leeway=self._leeway,
                options={"require": ["exp", "iat", "sub", "sid", "role"]},
            )
            if float(claims["exp"]) - float(claims["iat"]) > self._max_lifetime_seconds:
                raise jwt.InvalidTokenError("lives longer than any token we issue")
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("TOKEN_EXPIRED", "the access token has expired") from None
        except jwt.PyJWTError:
            raise Unauthenticated("TOKEN_INVALID", "the access token is not valid") from None
        caller = Caller(
            user_id=str(claims["sub"]),
            role=str(claims["role"]),
            session_id=str(claims["sid"]),
        )
        if len(self._verified) >= self._cache_size:
            self._verified.pop(next(iter(self._verified)))  # the oldest entry
        self._verified[token] = (caller, float(claims["exp"]))
        return caller

    def verify_authorization(self, authorization: str | None) -> Caller:
        """The caller an `authorization` header value ("Bearer <token>") names."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("TOKEN_MISSING", "send 'Authorization: Bearer <accessToken>'")
        return self.verify(token.strip())
