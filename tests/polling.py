"""One way for tests to wait for something that happens in the background."""

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar, overload

T = TypeVar("T")


@overload
async def eventually(
    probe: Callable[[], Awaitable[T]],
    *,
    within: float = 10.0,
    interval: float = 0.05,
    what: str = "the condition",
) -> T: ...


@overload
async def eventually(
    probe: Callable[[], T],
    *,
    within: float = 10.0,
    interval: float = 0.05,
    what: str = "the condition",
) -> T: ...


async def eventually(
    probe: Callable[[], Awaitable[T] | T],
    *,
    within: float = 10.0,
    interval: float = 0.05,
    what: str = "the condition",
) -> T:
    """Call `probe` until it returns something truthy, and return that.

    Exceptions from `probe` count as "not yet"; the last one is chained to
    the failure when `within` seconds pass.
    """
    deadline = time.monotonic() + within
    last_error: Exception | None = None
    while True:
        try:
            result = probe()
            value = await result if inspect.isawaitable(result) else result
            if value:
                return value
        except Exception as error:  # noqa: BLE001 - retried until the deadline
            last_error = error
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} did not happen within {within:g}s") from last_error
        await asyncio.sleep(interval)


def wait_until(
    probe: Callable[[], T], *, timeout: float = 10.0, interval: float = 0.05, what: str = "it"
) -> T:
    """The synchronous `eventually`, for tests without an event loop."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = probe()
            if value:
                return value
        except Exception as error:  # noqa: BLE001 - retried until the deadline
            last_error = error
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} did not happen within {timeout:g}s") from last_error
        time.sleep(interval)
