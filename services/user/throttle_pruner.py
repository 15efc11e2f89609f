"""Forgets login-failure counters that can no longer lock anyone out."""

import asyncio
import logging
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from services.runtime.loops import raise_if_stopping
from services.runtime.unit_of_work import UnitOfWork
from services.user import repository
from services.user.handlers import Clock, utc_now

log = logging.getLogger(__name__)


class ThrottlePruner:
    def __init__(
        self,
        uow: UnitOfWork[AsyncConnection],
        stale_after: timedelta,
        every: timedelta = timedelta(minutes=10),
        clock: Clock = utc_now,
    ) -> None:
        self._uow = uow
        self._stale_after = stale_after
        self._every = every
        self._clock = clock

    async def run(self) -> None:
        while True:
            try:
                await self.prune()
            except Exception:
                raise_if_stopping()
                log.warning("pruning login throttles failed; will retry", exc_info=True)
            await asyncio.sleep(self._every.total_seconds())

    async def prune(self) -> int:
        now = self._clock()
        async with self._uow.transaction() as tx:
            conn = tx.repos
            return await repository.prune_throttles(conn, now, stale_before=now - self._stale_after)
