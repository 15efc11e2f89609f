"""The client's address and ids taken from a request."""

from dataclasses import dataclass

import pytest

from services.runtime.errors import InvalidArgument
from services.runtime.request import ClientAddresses, parse_networks, parse_uuid

ENVOY = "ipv4:127.0.0.2:40001"


@dataclass
class FakeContext:
    peer_address: str
    forwarded_for: str | None = None

    def peer(self) -> str:
        return self.peer_address

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        if self.forwarded_for is None:
            return ()
        return (("x-forwarded-for", self.forwarded_for),)


ADDRESSES = ClientAddresses(parse_networks("127.0.0.2"))


def address_of(peer: str, forwarded_for: str | None = None) -> str:
    return ADDRESSES.of(FakeContext(peer, forwarded_for))  # type: ignore[arg-type]


def test_the_last_forwarded_address_counts_only_from_a_trusted_proxy() -> None:
    assert address_of(ENVOY, "6.6.6.6, 203.0.113.7") == "203.0.113.7"
    assert address_of("ipv4:127.0.0.1:5555", "203.0.113.7") == "127.0.0.1"


def test_the_port_never_makes_a_new_client() -> None:
    assert address_of("ipv4:198.51.100.1:1111") == address_of("ipv4:198.51.100.1:2222")
    assert address_of("ipv6:[2001:db8::1]:1111") == "2001:db8::1"


@pytest.mark.parametrize("forged", ["x" * 3000, "not-an-address", "1.2.3.4:80", ""])
def test_a_malformed_forwarded_for_falls_back_to_the_proxy_itself(forged: str) -> None:
    assert address_of(ENVOY, forged) == "127.0.0.2"


def test_a_bad_uuid_is_refused_without_echoing_it() -> None:
    for value in ("nope", "a" * 6000, "\x00"):
        with pytest.raises(InvalidArgument) as refused:
            parse_uuid(value, "userId")
        assert value not in refused.value.message
