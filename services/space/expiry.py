"""Ends guest memberships whose expire_time has come.

Access ends at that instant whatever this job does: every check compares
expire_at with the time of the request. The job deletes the rows afterwards
and publishes SpaceMemberExpired, so that other services' projections learn
of it and the user can be added again.
"""

from datetime import timedelta

from services.runtime.clock import Clock, utc_now
from services.runtime.periodic import PeriodicJob
from services.runtime.unit_of_work import UnitOfWork
from services.space.handlers import announce_expiry
from services.space.ports import SpaceRepositories

HOMES_PER_TRANSACTION = 100


class GuestExpiry:
    def __init__(
        self,
        uow: UnitOfWork[SpaceRepositories],
        clock: Clock = utc_now,
        homes_per_transaction: int = HOMES_PER_TRANSACTION,
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._batch = homes_per_transaction

    async def expire(self) -> int:
        """End every membership expired by now; how many ended."""
        ended = 0
        while True:
            homes, expired = await self._expire_some()
            ended += expired
            if homes < self._batch:
                return ended

    async def _expire_some(self) -> tuple[int, int]:
        """One transaction: (homes done, memberships ended)."""
        now = self._clock()
        async with self._uow.transaction() as tx:
            # Homes first, as every change of members locks them: no deadlock
            # with a request changing the same home. Homes busy elsewhere are
            # skipped until the next turn.
            homes = await tx.repos.spaces.lock_homes_with_expired_guests(now, self._batch)
            if not homes:
                return 0, 0
            expired = await tx.repos.members.remove_expired(homes, now)
            for member in sorted(expired, key=lambda m: (m.space_id, m.expire_at, m.id)):
                await announce_expiry(tx.repos, tx.add_event, member)
        return len(homes), len(expired)

    def job(self, every: timedelta) -> PeriodicJob:
        return PeriodicJob("space-guest-expiry", every, self.expire)
