"""Who is calling: one authenticator per access level, chosen per method.

The guard interceptor picks the authenticator for a method once, from the
service's description, and runs it at the start of every call. Each one
reads the call's metadata and records the caller in context variables that
handlers (and outgoing calls to other services) read.
"""

from collections.abc import Callable
from contextvars import ContextVar

from services.runtime.auth import TokenVerifier, set_current_caller
from services.runtime.errors import Unauthenticated
from services.runtime.grpc_types import ServicerContext
from services.runtime.internal_auth import (
    SERVICE_TOKEN_HEADER,
    ServiceCredentials,
    set_current_service,
)
from services.runtime.request import metadata_value
from services.runtime.service import Access

Authenticator = Callable[[ServicerContext], None]

# The end user's "authorization" value on the call being served, so that a
# call this service makes to another on the user's behalf can forward it.
_user_authorization: ContextVar[str | None] = ContextVar("warmhouse_user_auth", default=None)


def forwarded_authorization() -> str | None:
    return _user_authorization.get()


class Authenticators:
    def __init__(self, verifier: TokenVerifier, credentials: ServiceCredentials) -> None:
        self._verifier = verifier
        self._credentials = credentials

    def for_access(self, access: Access) -> Authenticator:
        return {
            Access.PUBLIC: self._public,
            Access.USER: self._user,
            Access.INTERNAL: self._internal,
        }[access]

    def _public(self, context: ServicerContext) -> None:
        set_current_caller(None)
        set_current_service(None)
        _user_authorization.set(None)

    def _user(self, context: ServicerContext) -> None:
        authorization = metadata_value(context.invocation_metadata() or (), "authorization")
        set_current_caller(self._verifier.verify_authorization(authorization))
        set_current_service(None)
        _user_authorization.set(authorization)

    def _internal(self, context: ServicerContext) -> None:
        metadata = tuple(context.invocation_metadata() or ())
        token = metadata_value(metadata, SERVICE_TOKEN_HEADER)
        if token is None:
            raise Unauthenticated(
                "SERVICE_CREDENTIAL_REQUIRED", "only WarmHouse services may call this"
            )
        set_current_service(self._credentials.verify(token))
        # A service acting for a user forwards the user's token; it is checked too.
        authorization = metadata_value(metadata, "authorization")
        caller = self._verifier.verify_authorization(authorization) if authorization else None
        set_current_caller(caller)
        _user_authorization.set(authorization)
