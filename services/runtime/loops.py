"""Background loops that survive failures but never outlive a stop.

nats-py can turn the cancellation of a pending call into another error (a
timeout, a closed connection), or swallow it and return normally (Python
3.11's wait_for does when the awaited result arrives at the same moment). A
loop that went on would ignore stop() and keep the process alive, so every
loop checks whether its task is being cancelled before it goes round again.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


def raise_if_stopping() -> None:
    """Turn a cancellation another library swallowed back into one."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def keep_running(
    name: str, attempt: Callable[[], Awaitable[None]], retry_seconds: float = 1.0
) -> None:
    """Run `attempt` again after each failure, until the task is cancelled."""
    while True:
        try:
            await attempt()
        except Exception:
            raise_if_stopping()
            log.warning("%s interrupted; restarting", name, exc_info=True)
            await asyncio.sleep(retry_seconds)
