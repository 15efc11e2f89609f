"""Service credentials: how one WarmHouse service proves itself to another.

Each call from a service carries a short-lived HS256 token naming the calling
service, signed with a key derived from the secret every service is given
(`WARMHOUSE_SERVICE_SECRET_FILE`). Users never hold that secret, and Envoy
strips the header from every request it forwards, so a credential can only
come from inside the mesh.
"""

import re
import time
from contextvars import ContextVar

import jwt

from services.runtime.errors import Unauthenticated

SERVICE_TOKEN_HEADER = "x-warmhouse-service-token"
_AUDIENCE = "warmhouse-internal"
_ALGORITHM = "HS256"
_LIFETIME_SECONDS = 300
# A minted token is reused until this close to its expiry.
_RENEW_BEFORE_SECONDS = 60
_MAX_TOKEN_LENGTH = 512
# Clock skew between two services' hosts.
_LEEWAY_SECONDS = 30
# A service's name, as ServiceDescription requires it.
_SERVICE_NAME = re.compile(r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")

_current_service: ContextVar[str | None] = ContextVar("warmhouse_calling_service", default=None)


class ServiceCredentials:
    """Mints this service's credential and verifies other services'."""

    def __init__(self, key: bytes, own_name: str) -> None:
        self._key = key
        self._own_name = own_name
        self._minted: tuple[str, float] | None = None
        self._verified: dict[str, tuple[str, float]] = {}

    def token(self) -> str:
        now = time.time()
        if self._minted is None or self._minted[1] - _RENEW_BEFORE_SECONDS < now:
            expires = now + _LIFETIME_SECONDS
            claims = {"iss": self._own_name, "aud": _AUDIENCE, "iat": int(now), "exp": int(expires)}
            self._minted = (jwt.encode(claims, self._key, algorithm=_ALGORITHM), expires)
        return self._minted[0]

    def verify(self, token: str) -> str:
        """The name of the service that sent `token`."""
        cached = self._verified.get(token)
        if cached is not None and time.time() < cached[1]:
            return cached[0]
        if len(token) > _MAX_TOKEN_LENGTH:
            raise _invalid()
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[_ALGORITHM],
                audience=_AUDIENCE,
                options={"require": ["iss", "iat", "exp"]},
                leeway=_LEEWAY_SECONDS,
            )
        except jwt.PyJWTError:
            raise _invalid() from None
        service = claims["iss"]
        # Longer-lived than we mint, or naming no service: not one of ours.
        lifetime = claims["exp"] - claims["iat"]
        if not isinstance(service, str) or not _SERVICE_NAME.match(service):
            raise _invalid()
        if not isinstance(lifetime, int | float) or lifetime > _LIFETIME_SECONDS:
            raise _invalid()
        if len(self._verified) > 1000:
            self._verified.clear()
        self._verified[token] = (service, float(claims["exp"]))
        return service


def _invalid() -> Unauthenticated:
    return Unauthenticated("SERVICE_CREDENTIAL_INVALID", "only WarmHouse services may call this")


def current_service() -> str:
    """The service calling the internal RPC being served."""
    service = _current_service.get()
    if service is None:
        raise _invalid()
    return service


def set_current_service(service: str | None) -> None:
    _current_service.set(service)
