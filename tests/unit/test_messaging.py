"""What the runtime's messaging module shows of its broker."""

import asyncio

from services.runtime import messaging


def test_logs_never_show_the_brokers_token() -> None:
    shown = messaging._without_credentials("nats://s3cret@127.0.0.1:4222")
    assert shown == "nats://127.0.0.1:4222"
    assert messaging._without_credentials("nats://127.0.0.1:4222") == "nats://127.0.0.1:4222"


class FakeNats:
    def __init__(self) -> None:
        self.is_connected = True
        self.stats = {"reconnects": 0}


def test_events_are_trusted_only_once_the_connection_has_settled() -> None:
    nats, now = FakeNats(), [100.0]
    settled = messaging.BrokerSettled(nats, settle_seconds=2.0, clock=lambda: now[0])  # type: ignore[arg-type]
    assert not settled()  # just started: consumers may still be fetching
    now[0] += 2.0
    assert settled()
    nats.is_connected = False
    assert not settled()
    nats.is_connected = True
    now[0] += 1.0
    assert not settled()
    now[0] += 2.0
    assert settled()
    # Gone and back between two checks: only the reconnect count tells.
    nats.stats["reconnects"] += 1
    assert not settled()
    now[0] += 2.0
    assert settled()


async def test_the_wait_runs_from_the_reconnection_not_from_the_next_request() -> None:
    nats, now = FakeNats(), [100.0]
    settled = messaging.BrokerSettled(
        nats,  # type: ignore[arg-type]
        settle_seconds=2.0,
        clock=lambda: now[0],
        watch_every=0.01,
    )
    watcher = asyncio.create_task(settled.run())
    try:
        nats.stats["reconnects"] += 1  # reconnected while no request came
        await asyncio.sleep(0.05)
        now[0] += 2.0
        assert settled()  # the watcher saw it happen, two seconds ago
    finally:
        watcher.cancel()
