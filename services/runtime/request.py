"""Facts about the current request that are not in the message."""

import uuid

import grpc

from services.runtime.errors import InvalidArgument


def client_address(context: grpc.aio.ServicerContext) -> str:
    """The end client's address: the one Envoy appended to x-forwarded-for, else the peer."""
    for name, value in context.invocation_metadata() or ():
        if name == "x-forwarded-for" and isinstance(value, str) and value.strip():
            return value.rsplit(",", 1)[-1].strip()
    return str(context.peer())


def parse_uuid(value: str, field: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidArgument(
            "INVALID_ID", f"{field} must be a UUID, got {value!r}", field=field
        ) from None
