"""A closed-loop load driver: N workers, each sending its next request when the last returns.

Bounded twice: it stops issuing at `max_requests` or after `max_seconds`,
whichever comes first, and each request may take at most `REQUEST_TIMEOUT_SECONDS`.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from bench.figures import LoadFigures

# One request; returns None on success, otherwise what went wrong.
Call = Callable[[], Awaitable[str | None]]

REQUEST_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class Budget:
    max_requests: int
    max_seconds: float


async def run_closed_loop(workers: Sequence[Call], budget: Budget) -> LoadFigures:
    """Run one worker per call until the budget is spent; figures cover every request."""
    latencies_ms: list[float] = []
    errors: list[str] = []
    issued = 0
    started = time.perf_counter()
    deadline = started + budget.max_seconds

    async def worker(call: Call) -> None:
        nonlocal issued
        while issued < budget.max_requests and time.perf_counter() < deadline:
            issued += 1
            sent = time.perf_counter()
            try:
                async with asyncio.timeout(REQUEST_TIMEOUT_SECONDS):
                    problem = await call()
            except TimeoutError:
                problem = f"no answer within {REQUEST_TIMEOUT_SECONDS:g}s"
            except Exception as error:  # noqa: BLE001 - a failed request is counted, not fatal
                problem = f"{type(error).__name__}: {error}"
            if problem is None:
                latencies_ms.append((time.perf_counter() - sent) * 1000)
            else:
                errors.append(problem)

    async with asyncio.TaskGroup() as group:
        for call in workers:
            group.create_task(worker(call))
    return LoadFigures.from_latencies(latencies_ms, errors, time.perf_counter() - started)
