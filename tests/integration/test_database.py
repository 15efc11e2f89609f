"""The runtime's database layer against a real PostgreSQL."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import Column, MetaData, Table, Text, Uuid, bindparam, select, text

from services.devstack.postgres_process import PostgresProcess
from services.runtime.database import Database, Query, conflicts_as
from services.runtime.errors import AlreadyExists
from tests.integration.hosts import fresh_database

things = Table(
    "things",
    MetaData(),
    Column("id", Uuid, primary_key=True),
    Column("name", Text, nullable=False, unique=True),
)
CREATE = Query(text("CREATE TABLE IF NOT EXISTS things (id uuid PRIMARY KEY, name text UNIQUE)"))
INSERT = Query(things.insert())
BY_ID = Query(select(things).where(things.c.id == bindparam("id")))
COUNT = Query(text("SELECT count(*) FROM things"))


@pytest.fixture
async def database(postgres: PostgresProcess) -> AsyncIterator[Database]:
    database = await Database.connect(fresh_database(postgres), pool_size=3)
    async with database.connection() as connection:
        await connection.execute(CREATE)
    yield database
    await database.close()


async def test_a_statement_is_compiled_once_and_takes_named_parameters(
    database: Database,
) -> None:
    thing_id = uuid.uuid4()
    async with database.transaction() as connection:
        await connection.execute(INSERT, id=thing_id, name="kettle")
    async with database.connection() as connection:
        row = await connection.fetchrow(BY_ID, id=thing_id)
    assert row is not None
    assert (row["id"], row["name"]) == (thing_id, "kettle")
    with pytest.raises(TypeError, match="'id' is missing"):
        async with database.connection() as connection:
            await connection.fetchrow(BY_ID)


async def test_a_failed_transaction_leaves_nothing_behind(database: Database) -> None:
    async def fail_half_way() -> None:
        async with database.transaction() as connection:
            await connection.execute(INSERT, id=uuid.uuid4(), name="half-done")
            raise RuntimeError("the use case failed")

    with pytest.raises(RuntimeError):
        await fail_half_way()
    async with database.connection() as connection:
        assert await connection.fetchval(COUNT) == 0


async def test_a_unique_violation_becomes_the_domain_error_named_for_its_constraint(
    database: Database,
) -> None:
    def taken() -> AlreadyExists:
        return AlreadyExists("NAME_TAKEN", "that name is taken")

    async with database.transaction() as connection:
        await connection.execute(INSERT, id=uuid.uuid4(), name="lamp")

    async def insert_again() -> None:
        async with database.transaction() as connection:
            with conflicts_as({"things_name_key": taken}):
                await connection.execute(INSERT, id=uuid.uuid4(), name="lamp")

    with pytest.raises(AlreadyExists) as refused:
        await insert_again()
    assert refused.value.reason == "NAME_TAKEN"


async def test_a_postgres_restart_is_transparent_to_the_next_call(tmp_path: Path) -> None:
    """Pooled connections all die with the server; none is pinged before use."""
    server = PostgresProcess(tmp_path / "restarting")
    server.start()
    try:
        server.create_database("restart")
        database = await Database.connect(server.url("restart"), pool_size=3)
        try:
            async with database.connection() as connection:
                await connection.execute(CREATE)
            # Fill the pool with connections that will all be dead.
            async with asyncio.TaskGroup() as group:
                for _ in range(3):
                    group.create_task(_count(database))
            server.stop()
            server.start()
            assert await _count(database) == 0
            async with database.transaction() as connection:
                await connection.execute(INSERT, id=uuid.uuid4(), name="after restart")
            assert await _count(database) == 1
        finally:
            await database.close()
    finally:
        server.stop()
        server.remove_data()


async def _count(database: Database) -> int:
    async with database.connection() as connection:
        await asyncio.sleep(0.05)  # hold the connection so the pool opens several
        count: int = await connection.fetchval(COUNT)
        return count
