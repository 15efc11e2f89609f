"""Idempotency keys: one effect per key, the first response replayed, misuse refused."""

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from google.protobuf import wrappers_pb2
from sqlalchemy import text

from services.devstack.postgres_process import PostgresProcess
from services.runtime import database as db
from services.runtime import idempotency
from services.runtime.database import Database, Query
from services.runtime.errors import Conflict
from services.runtime.idempotency import IdempotencyKey
from tests.integration.hosts import fresh_database

CREATE = Query(text("CREATE TABLE effects (id serial PRIMARY KEY, note text)"))
EFFECT = Query(text("INSERT INTO effects (note) VALUES (:note) RETURNING id"))
EFFECTS = Query(text("SELECT count(*) FROM effects"))


@pytest.fixture
async def database(postgres: PostgresProcess) -> AsyncIterator[Database]:
    database = await Database.connect(fresh_database(postgres), pool_size=4)
    await db.apply_migrations(database, "runtime", db.RUNTIME_MIGRATIONS)
    async with database.connection() as connection:
        await connection.execute(CREATE)
    yield database
    await database.close()


async def pay(
    database: Database, key: IdempotencyKey, amount: str, hold: float = 0.0
) -> wrappers_pb2.StringValue:
    """A use case with one effect, made idempotent the way handlers do it."""
    request = wrappers_pb2.StringValue(value=amount)
    async with database.transaction() as connection:
        stored = await idempotency.claim(connection, key, request)
        if stored is not None:
            return wrappers_pb2.StringValue.FromString(stored)
        effect_id = await connection.fetchval(EFFECT, note=amount)
        await asyncio.sleep(hold)  # a slow effect: the retry arrives meanwhile
        response = wrappers_pb2.StringValue(value=f"payment {effect_id}")
        await idempotency.remember(connection, key, response)
        return response


async def effects(database: Database) -> int:
    async with database.connection() as connection:
        count: int = await connection.fetchval(EFFECTS)
        return count


def key(caller: str = "user-1", value: str | None = None) -> IdempotencyKey:
    return IdempotencyKey(caller, value or str(uuid.uuid4()), "/warmhouse.test.v1.Pay/Pay")


async def test_a_retry_gets_the_first_response_and_acts_once(database: Database) -> None:
    first_key = key()
    first = await pay(database, first_key, "10.00")
    assert await pay(database, first_key, "10.00") == first
    assert await effects(database) == 1


async def test_concurrent_requests_with_one_key_have_one_effect(database: Database) -> None:
    same = key()
    replies = await asyncio.gather(*(pay(database, same, "5.00", hold=0.2) for _ in range(4)))
    assert len({reply.value for reply in replies}) == 1
    assert await effects(database) == 1


async def test_the_same_key_with_other_parameters_is_a_conflict(database: Database) -> None:
    reused = key()
    await pay(database, reused, "1.00")
    with pytest.raises(Conflict):
        await pay(database, reused, "2.00")
    assert await effects(database) == 1


async def test_callers_keys_never_meet(database: Database) -> None:
    shared_value = str(uuid.uuid4())
    ann = await pay(database, key("ann", shared_value), "1.00")
    bob = await pay(database, key("bob", shared_value), "1.00")
    assert ann != bob
    assert await effects(database) == 2


async def test_a_failed_use_case_leaves_its_key_free_for_a_retry(database: Database) -> None:
    retried = key()

    async def fail_after_claiming() -> None:
        async with database.transaction() as connection:
            await idempotency.claim(connection, retried, wrappers_pb2.StringValue(value="3.00"))
            raise RuntimeError("provider timed out")

    with pytest.raises(RuntimeError):
        await fail_after_claiming()
    assert (await pay(database, retried, "3.00")).value.startswith("payment")
    assert await effects(database) == 1
