"""Background loops retry failures but always end when cancelled."""

import asyncio
import contextlib

import pytest

from services.runtime.loops import keep_running
from services.runtime.messaging import pull_batches


async def test_a_failed_attempt_is_retried() -> None:
    attempts = 0
    done = asyncio.Event()

    async def flaky() -> None:
        nonlocal attempts
        attempts += 1
        if attempts < 3:
            raise ConnectionError("broker away")
        done.set()
        await asyncio.Event().wait()

    loop = asyncio.create_task(keep_running("flaky", flaky, retry_seconds=0.01))
    await asyncio.wait_for(done.wait(), 5)
    assert attempts == 3
    loop.cancel()
    with pytest.raises(asyncio.CancelledError):
        await loop


async def test_a_cancellation_turned_into_another_error_still_stops_the_loop() -> None:
    started = asyncio.Event()

    async def swallows_cancellation() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise TimeoutError("what nats-py raises when its pending call is cancelled") from None

    loop = asyncio.create_task(keep_running("swallower", swallows_cancellation, retry_seconds=0))
    await started.wait()
    loop.cancel()
    done, _ = await asyncio.wait({loop}, timeout=2)
    assert loop in done
    assert loop.cancelled()


class SwallowingPull:
    """A pull subscription whose fetch returns normally when cancelled."""

    async def fetch(self, batch: int, timeout: float) -> list[object]:  # noqa: ASYNC109 - the signature we fake
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(timeout)
        return []

    async def consumer_info(self) -> None:
        return None


async def test_pulling_stops_even_when_a_fetch_swallows_the_cancellation() -> None:
    async def drain() -> None:
        async for _ in pull_batches(SwallowingPull(), batch_size=1):  # type: ignore[arg-type]
            pass

    pulling = asyncio.create_task(drain())
    await asyncio.sleep(0.05)
    pulling.cancel()
    done, _ = await asyncio.wait({pulling}, timeout=3)
    assert pulling in done
    assert pulling.cancelled()
