"""The one way a service runs something every so often (clean-ups, expiries)."""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

from services.runtime.loops import raise_if_stopping

log = logging.getLogger(__name__)


class PeriodicJob:
    """Runs `job` now and then every `every`, until stopped; a failure is logged
    and the job runs again at its next turn."""

    def __init__(self, name: str, every: timedelta, job: Callable[[], Awaitable[object]]) -> None:
        self.name = name
        self._every = every.total_seconds()
        self._job = job

    async def run(self) -> None:
        while True:
            raise_if_stopping()
            try:
                await self._job()
            except Exception:
                raise_if_stopping()
                log.warning("periodic job %s failed; will run again", self.name, exc_info=True)
            await asyncio.sleep(self._every)
