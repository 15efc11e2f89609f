"""Work due later, done by a few daemon threads: webhook attempts, transfers arriving."""

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class DelayQueue(Generic[T]):
    """Items that become available to `take` once their delay has passed."""

    def __init__(self) -> None:
        self._due: list[tuple[float, int, T]] = []
        # Breaks ties between items due at the same moment, so items never compare.
        self._order = itertools.count()
        self._changed = threading.Condition()
        self._closed = False

    def put(self, item: T, delay: float = 0.0) -> None:
        with self._changed:
            heapq.heappush(self._due, (time.monotonic() + delay, next(self._order), item))
            self._changed.notify()

    def take(self) -> T | None:
        """The next item once it is due; None once the queue is closed."""
        with self._changed:
            while not self._closed:
                if not self._due:
                    self._changed.wait()
                    continue
                wait = self._due[0][0] - time.monotonic()
                if wait <= 0:
                    return heapq.heappop(self._due)[2]
                self._changed.wait(wait)
            return None

    def close(self) -> None:
        """Wake every taker with None; what is still queued is abandoned."""
        with self._changed:
            self._closed = True
            self._due.clear()
            self._changed.notify_all()


def start_workers(
    queue: DelayQueue[T], handle: Callable[[T], None], count: int, name: str
) -> list[threading.Thread]:
    """`count` daemon threads that handle items until the queue closes.

    Daemon threads: a stopping sandbox abandons what they do, as promised.
    """
    workers = [
        threading.Thread(target=_work, args=(queue, handle), name=f"{name}-{n}", daemon=True)
        for n in range(count)
    ]
    for worker in workers:
        worker.start()
    return workers


def _work(queue: DelayQueue[T], handle: Callable[[T], None]) -> None:
    while (item := queue.take()) is not None:
        try:
            handle(item)
        except Exception:
            log.exception("background work failed")
