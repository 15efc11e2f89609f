"""Forgets what can no longer matter: throttle counters whose window has
passed and whose lock has ended, and rotated-out refresh-token digests older
than any refresh token lives."""

from datetime import timedelta

from services.runtime.clock import Clock, utc_now
from services.runtime.periodic import PeriodicJob
from services.runtime.unit_of_work import UnitOfWork
from services.user.ports import UserRepositories


class Pruner:
    def __init__(
        self,
        uow: UnitOfWork[UserRepositories],
        throttle_window: timedelta,
        refresh_ttl: timedelta,
        clock: Clock = utc_now,
    ) -> None:
        self._uow = uow
        self._throttle_window = throttle_window
        self._refresh_ttl = refresh_ttl
        self._clock = clock

    async def prune(self) -> int:
        """Delete in one transaction; how many rows went."""
        now = self._clock()
        async with self._uow.transaction() as tx:
            throttles = await tx.repos.throttles.prune(now, now - self._throttle_window)
            tokens = await tx.repos.sessions.forget_retired_tokens(now - self._refresh_ttl)
        return throttles + tokens

    def job(self, every: timedelta = timedelta(minutes=10)) -> PeriodicJob:
        return PeriodicJob("user-pruning", every, self.prune)
