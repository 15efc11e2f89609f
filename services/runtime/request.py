"""Facts about the current request that are not in the message."""

import ipaddress
import uuid
from collections.abc import Iterable, Sequence

from google.protobuf.descriptor import EnumDescriptor

from services.runtime.errors import InvalidArgument
from services.runtime.grpc_types import ServicerContext

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# Longer than any real chain of proxies; an attacker's padding is not parsed.
MAX_FORWARDED_FOR_LENGTH = 1024


def parse_networks(spec: str) -> tuple[IpNetwork, ...]:
    """ "10.0.0.0/8, 127.0.0.2" → networks; raises ValueError on a malformed entry."""
    return tuple(ipaddress.ip_network(part.strip()) for part in spec.split(",") if part.strip())


def peer_ip(peer: str) -> str:
    """ "ipv4:127.0.0.1:5555" / "ipv6:[::1]:5555" → the address without its port."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return rest.rsplit(":", 1)[0]
    if kind == "ipv6":
        return rest.rsplit(":", 1)[0].strip("[]")
    return peer  # a Unix socket or an in-process transport: one local client


class ClientAddresses:
    """The end client's IP address, trusting x-forwarded-for only from our proxies.

    Envoy appends the address it saw to x-forwarded-for; a caller that is not
    one of the trusted proxies could write anything there, so its own peer
    address is used instead. Ports are dropped: a client's every connection
    is the same client.
    """

    def __init__(self, trusted_proxies: Sequence[IpNetwork]) -> None:
        self._trusted = tuple(trusted_proxies)

    def _is_trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self._trusted)

    def of(self, context: ServicerContext) -> str:
        peer = peer_ip(str(context.peer()))
        if not self._is_trusted(peer):
            return peer
        forwarded = _last_forwarded(context.invocation_metadata() or ())
        return forwarded or peer


def _last_forwarded(metadata: Iterable[tuple[str, str | bytes]]) -> str | None:
    for name, value in metadata:
        if name == "x-forwarded-for" and isinstance(value, str):
            if len(value) > MAX_FORWARDED_FOR_LENGTH:
                return None
            try:
                return str(ipaddress.ip_address(value.rsplit(",", 1)[-1].strip()))
            except ValueError:
                return None
    return None


def parse_uuid(value: str, field: str) -> uuid.UUID:
    """A UUID field of a request; the error never repeats what the client sent."""
    try:
        if len(value) > 36:
            raise ValueError
        return uuid.UUID(value)
    except ValueError:
        raise InvalidArgument("INVALID_ID", f"{field} must be a UUID", field=field) from None


def enum_name(enum: EnumDescriptor, value: int) -> str:
    """An enum value's name; "" for a number the enum does not have (an enum from the
    wire may hold any number), which the domain then refuses like UNSPECIFIED."""
    known = enum.values_by_number.get(value)
    return str(known.name) if known is not None else ""


def metadata_value(metadata: Iterable[tuple[str, str | bytes]] | None, name: str) -> str | None:
    """The first text value of the call's metadata entry `name` (lower case), if any."""
    for key, value in metadata or ():
        if key == name and isinstance(value, str):
            return value
    return None
