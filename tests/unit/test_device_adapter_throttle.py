"""Failed device connects, counted per client address in a sliding minute."""

import asyncio

import pytest

from services.device_adapter.throttle import FailedConnectThrottle, peer_key


class Seconds:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("peer", "key"),
    [
        ("ipv4:127.0.0.1:5555", "127.0.0.1"),
        ("ipv4:10.1.2.3:1", "10.1.2.3"),
        ("ipv6:[::1]:5555", "::/64"),
        ("ipv6:[2001:db8:1:2:aaaa::1]:443", "2001:db8:1:2::/64"),
        ("ipv6:[2001:db8:1:2:bbbb::9]:80", "2001:db8:1:2::/64"),
        ("ipv6:[::ffff:192.0.2.7]:80", "192.0.2.7"),
        ("ipv6:[fe80::1%eth0]:80", "fe80::/64"),
        ("unix:/tmp/socket", "unix:/tmp/socket"),
        ("ipv4:not-an-address:1", "ipv4:not-an-address:1"),
    ],
)
def test_a_peer_is_keyed_by_its_address(peer: str, key: str) -> None:
    assert peer_key(peer) == key


def test_a_peer_key_is_bounded() -> None:
    assert len(peer_key("unix:" + "x" * 10_000)) == 100


def test_failures_beyond_the_limit_block_within_the_window() -> None:
    clock = Seconds()
    throttle = FailedConnectThrottle(limit=3, clock=clock)
    for _ in range(2):
        throttle.record_failure("10.0.0.1")
        clock.now += 1
    assert not throttle.blocked("10.0.0.1")
    throttle.record_failure("10.0.0.1")
    assert throttle.blocked("10.0.0.1")
    assert not throttle.blocked("10.0.0.2")


def test_the_window_slides_as_the_oldest_failure_ages_out() -> None:
    clock = Seconds()
    throttle = FailedConnectThrottle(limit=2, window_seconds=60, clock=clock)
    throttle.record_failure("a")
    clock.now += 30
    throttle.record_failure("a")
    assert throttle.blocked("a")
    clock.now += 30.5
    # The first failure is now more than a minute old; the second is not.
    assert not throttle.blocked("a")
    throttle.record_failure("a")
    assert throttle.blocked("a")


def test_a_client_whose_failures_all_aged_out_is_forgotten() -> None:
    clock = Seconds()
    throttle = FailedConnectThrottle(limit=5, window_seconds=60, clock=clock)
    throttle.record_failure("a")
    clock.now += 61
    assert not throttle.blocked("a")
    assert len(throttle) == 0


def test_memory_is_bounded_by_forgetting_the_least_recently_failing() -> None:
    clock = Seconds()
    throttle = FailedConnectThrottle(limit=1, max_peers=3, clock=clock)
    for peer in ("a", "b", "c"):
        throttle.record_failure(peer)
    throttle.record_failure("a")  # a failed again: now the most recent
    throttle.record_failure("d")
    assert len(throttle) == 3
    assert not throttle.blocked("b")
    assert throttle.blocked("a")
    assert throttle.blocked("d")


def test_only_the_latest_failures_are_kept_per_client() -> None:
    clock = Seconds()
    throttle = FailedConnectThrottle(limit=2, window_seconds=60, clock=clock)
    for _ in range(50):
        throttle.record_failure("a")
    clock.now += 61
    # Fifty failures long ago weigh no more than two.
    assert not throttle.blocked("a")


def test_a_limit_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        FailedConnectThrottle(limit=0)


async def test_checks_of_one_address_take_turns_and_the_waiting_see_its_failures() -> None:
    throttle = FailedConnectThrottle(limit=2, checks_at_once=2, clock=lambda: 100.0)
    under_way = 0
    most = 0
    refused = 0

    async def guess() -> None:
        nonlocal under_way, most, refused
        async with throttle.turn("198.51.100.7"):
            if throttle.blocked("198.51.100.7"):
                refused += 1
                return
            under_way += 1
            most = max(most, under_way)
            await asyncio.sleep(0.01)
            throttle.record_failure("198.51.100.7")
            under_way -= 1

    await asyncio.gather(*(guess() for _ in range(20)))
    assert most == 2
    # Only the first turn's two guesses reached the check; the rest were refused.
    assert refused == 18
    # Another address is not held back, and nothing is left behind.
    async with throttle.turn("203.0.113.9"):
        assert not throttle.blocked("203.0.113.9")
    assert throttle.addresses_taking_turns() == 0
