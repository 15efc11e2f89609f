"""Old login-failure counters and rotated-out refresh tokens are forgotten;
live windows, locks and recent tokens are kept."""

import asyncio
import contextlib
import uuid
from datetime import UTC, datetime, timedelta

from services.runtime.server import ServiceHost
from services.runtime.unit_of_work import DatabaseUnitOfWork
from services.user.domain import ThrottleState
from services.user.ports import SessionRecord, UserRecord, UserRepositories
from services.user.pruning import Pruner
from services.user.repository import sql_repositories
from tests.polling import eventually


def unit_of_work(host: ServiceHost) -> DatabaseUnitOfWork[UserRepositories]:
    runtime = host.runtime
    return DatabaseUnitOfWork(runtime.database, runtime.relay, sql_repositories)


async def test_prune_keeps_live_windows_and_locks(user_host: tuple[ServiceHost, int]) -> None:
    uow = unit_of_work(user_host[0])
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
            await tx.repos.throttles.save(key, state)
    # The host's own pruner may run meanwhile: what is left matters, not who deleted it.
    await Pruner(uow, timedelta(hours=1), timedelta(days=1), clock=lambda: now).prune()
    async with uow.transaction() as tx:
        kept = await tx.repos.throttles.lock(list(states), now)
    # lock() recreates missing keys empty: the pruned ones come back at zero.
    assert {key for key, state in kept.items() if state.failures or state.locked_until} == {
        f"{tag}:still-locked",
        f"{tag}:recent",
    }


async def test_prune_forgets_refresh_tokens_rotated_out_long_ago(
    user_host: tuple[ServiceHost, int],
) -> None:
    uow = unit_of_work(user_host[0])
    now = datetime.now(UTC)
    user = UserRecord(
        uuid.uuid4(), f"{uuid.uuid4().hex[:8]}@example.com", "", "x", "USER", True, now, now
    )
    session = SessionRecord(uuid.uuid4(), user.id, "digest-0", now, now + timedelta(days=1))
    async with uow.transaction() as tx:
        await tx.repos.users.add(user)
        await tx.repos.sessions.add(session)
        await tx.repos.sessions.rotate(session, "digest-1", now, now - timedelta(days=2))
        await tx.repos.sessions.rotate(
            SessionRecord(session.id, user.id, "digest-1", now, now), "digest-2", now, now
        )
    await Pruner(uow, timedelta(hours=1), timedelta(days=1), clock=lambda: now).prune()
    async with uow.transaction() as tx:
        assert await tx.repos.sessions.find_by_token("digest-0") is None
        found = await tx.repos.sessions.find_by_token("digest-1")
        assert found is not None
        assert not found.current
        current = await tx.repos.sessions.find_by_token("digest-2")
        assert current is not None
        assert current.current


async def test_the_pruner_runs_as_a_periodic_job(user_host: tuple[ServiceHost, int]) -> None:
    uow = unit_of_work(user_host[0])
    now = datetime.now(UTC)
    key = f"{uuid.uuid4().hex[:8]}:stale"
    async with uow.transaction() as tx:
        await tx.repos.throttles.save(key, ThrottleState(3, now - timedelta(hours=2), None))
    job = Pruner(uow, timedelta(hours=1), timedelta(days=1)).job(every=timedelta(seconds=0.05))
    running = asyncio.create_task(job.run())

    async def pruned() -> bool:
        async with uow.transaction() as tx:
            return (await tx.repos.throttles.lock([key], now))[key].failures == 0

    try:
        await eventually(pruned, what="the stale counter to be pruned")
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
