"""Old login-failure counters are forgotten; live locks are kept."""

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from services.runtime.server import ServiceHost
from services.runtime.unit_of_work import DatabaseUnitOfWork
from services.user import repository
from services.user.domain import ThrottleState
from services.user.tables import login_throttle
from services.user.throttle_pruner import ThrottlePruner


async def test_prune_keeps_live_windows_and_locks(user_host: tuple[ServiceHost, int]) -> None:
    runtime = user_host[0].runtime
    uow = DatabaseUnitOfWork(runtime.engine, runtime.relay, lambda conn: conn)
    now = datetime.now(UTC)
    tag = uuid.uuid4().hex[:8]
    states = {
        f"{tag}:stale": ThrottleState(3, now - timedelta(hours=2), None),
        f"{tag}:stale-lock-ended": ThrottleState(
            0, now - timedelta(hours=2), now - timedelta(hours=1)
        ),
        f"{tag}:still-locked": ThrottleState(
            0, now - timedelta(hours=2), now + timedelta(minutes=5)
        ),
        f"{tag}:recent": ThrottleState(2, now - timedelta(minutes=5), None),
    }
    async with uow.transaction() as tx:
        for key, state in states.items():
            await repository.save_throttle(tx.repos, key, state)
    assert await ThrottlePruner(uow, timedelta(hours=1), clock=lambda: now).prune() >= 2
    async with uow.read() as conn:
        rows = await conn.execute(
            select(login_throttle.c.key).where(login_throttle.c.key.startswith(tag))
        )
        kept = set(rows.scalars())
    assert kept == {f"{tag}:still-locked", f"{tag}:recent"}
