"""Failed device logins, counted per client address, refused beyond a limit.

Guessing device secrets from one address costs a Device-service call per
guess; past the limit the adapter refuses before asking. Memory is bounded:
at most `max_peers` addresses are remembered (the least recently failing
forgotten first), each with at most `limit` failure times.
"""

import asyncio
import ipaddress
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from services.runtime.request import peer_ip

WINDOW_SECONDS = 60.0
MAX_PEERS = 100_000
# Credential checks one address may have under way at once; the others wait
# their turn (devices behind one NAT reconnecting together) rather than fail.
CHECKS_AT_ONCE = 16
# An address that does not parse (a Unix socket, an in-process transport) is
# still one client; its text is bounded.
_MAX_PEER_TEXT = 100
# One IPv6 host usually holds a whole /64 and can pick any address in it.
_IPV6_PREFIX = 64


def peer_key(peer: str) -> str:
    """The client a gRPC peer string stands for: "ipv4:127.0.0.1:5555" →
    "127.0.0.1"; "ipv6:[2001:db8::1]:5555" → "2001:db8::/64"."""
    host = peer_ip(peer).split("%", 1)[0]
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return peer[:_MAX_PEER_TEXT]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, _IPV6_PREFIX), strict=False))
    return str(address)


class FailedConnectThrottle:
    """A sliding window of failed connects per client: `limit` failures within
    `window_seconds` and further attempts are refused until the oldest ages out."""

    def __init__(
        self,
        limit: int,
        window_seconds: float = WINDOW_SECONDS,
        max_peers: int = MAX_PEERS,
        clock: Callable[[], float] = time.monotonic,
        checks_at_once: int = CHECKS_AT_ONCE,
    ) -> None:
        if limit < 1 or max_peers < 1 or checks_at_once < 1:
            raise ValueError("limit, max_peers and checks_at_once must be at least 1")
        self._checks_at_once = checks_at_once
        # Only addresses with checks under way: removed when their last one ends.
        self._turns: dict[str, tuple[asyncio.Semaphore, int]] = {}
        self._limit = limit
        self._window = window_seconds
        self._max_peers = max_peers
        self._clock = clock
        # Oldest failure first; only the latest `limit` matter.
        self._failures: OrderedDict[str, tuple[float, ...]] = OrderedDict()

    def __len__(self) -> int:
        """How many clients are remembered."""
        return len(self._failures)

    def _recent(self, key: str, now: float) -> tuple[float, ...]:
        times = self._failures.get(key, ())
        recent = tuple(at for at in times if at > now - self._window)
        if len(recent) != len(times):
            if recent:
                self._failures[key] = recent
            else:
                del self._failures[key]
        return recent

    @asynccontextmanager
    async def turn(self, key: str) -> AsyncIterator[None]:
        """Wait until fewer than `checks_at_once` checks of `key` are under way."""
        turns, users = self._turns.get(key, (asyncio.Semaphore(self._checks_at_once), 0))
        self._turns[key] = (turns, users + 1)
        try:
            async with turns:
                yield
        finally:
            turns, users = self._turns[key]
            if users == 1:
                del self._turns[key]
            else:
                self._turns[key] = (turns, users - 1)

    def addresses_taking_turns(self) -> int:
        """Addresses with checks under way or waiting (memory held for turns)."""
        return len(self._turns)

    def blocked(self, key: str) -> bool:
        """Whether `key` has used up its failures for now."""
        return len(self._recent(key, self._clock())) >= self._limit

    def record_failure(self, key: str) -> None:
        now = self._clock()
        recent = self._recent(key, now)
        self._failures[key] = (*recent, now)[-self._limit :]
        self._failures.move_to_end(key)
        while len(self._failures) > self._max_peers:
            self._failures.popitem(last=False)
