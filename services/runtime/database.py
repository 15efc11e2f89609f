"""The database: an asyncpg pool, statements compiled once, migrations, query spans.

Each service owns one PostgreSQL database. Statements are written with
SQLAlchemy Core (tables, select/insert/update, or `text()`), compiled to
asyncpg's SQL once per statement object and then run on asyncpg directly:
building and compiling a statement on every call, and SQLAlchemy's execution
layer, cost more than the query itself on a hot path (see README, "Hot paths").

A pooled connection can be dead after a PostgreSQL restart. Instead of
pinging before every use, the first round trip on a connection is retried
once on a fresh one when the connection turns out to be closed.

Schema migrations are numbered SQL files (`migrations/0001_*.sql`) applied at
start-up, in order, in one transaction under an advisory lock, so replicas
starting together do not race and a failed file leaves no half-applied
schema. The runtime's own tables (outbox, processed events) come first.
"""

import json
import logging
import re
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, TypeAlias, cast

import asyncpg
from opentelemetry import trace
from sqlalchemy.dialects.postgresql.asyncpg import dialect as AsyncpgDialect
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement

from services.runtime.errors import DomainError

log = logging.getLogger(__name__)
# asyncpg's rows: read by column name, row["email"].
Record: TypeAlias = Mapping[str, Any]
_MIGRATION_FILE = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
_LOCK_KEY = 0x5741524D  # "WARM": one advisory lock for every migration run
RUNTIME_MIGRATIONS = Path(__file__).parent / "migrations"
_DIALECT = AsyncpgDialect()  # type: ignore[no-untyped-call]
_tracer = trace.get_tracer("warmhouse.db")
_REQUIRED = object()


class Query:
    """A SQLAlchemy Core statement compiled once for asyncpg; parameters by name."""

    def __init__(self, statement: ClauseElement) -> None:
        compiled = cast(SQLCompiler, statement.compile(dialect=_DIALECT))
        self.sql = compiled.string
        self.verb = self.sql.split(None, 1)[0].upper()
        self._defaults = [
            (name, _REQUIRED if compiled.binds[name].required else compiled.binds[name].value)
            for name in compiled.positiontup or ()
        ]

    def arguments(self, params: Mapping[str, Any]) -> list[Any]:
        arguments = []
        for name, default in self._defaults:
            value = params.get(name, default)
            if value is _REQUIRED:
                raise TypeError(f"query parameter {name!r} is missing: {self.sql[:80]}")
            arguments.append(value)
        return arguments


def _is_closed(raw: asyncpg.Connection) -> bool:
    try:
        return bool(raw.is_closed())
    except asyncpg.InterfaceError:
        # The pool already took back a connection that closed under us.
        return True


def _is_dead(error: BaseException, raw: asyncpg.Connection) -> bool:
    return _is_closed(raw) or isinstance(
        error, ConnectionError | asyncpg.ConnectionDoesNotExistError | asyncpg.AdminShutdownError
    )


class Connection:
    """One pooled connection, for one unit of work."""

    def __init__(self, database: "Database", raw: asyncpg.Connection, *, retryable: bool) -> None:
        self._database = database
        self.raw = raw
        # Until something succeeded on it, a dead connection may be swapped.
        self._retryable = retryable
        # Outbox rows written on it (outbox.add_event): after the commit the
        # relay is woken, rather than left to find them at its next poll.
        self.events_written = 0

    async def _run(self, method: str, query: Query, params: Mapping[str, Any]) -> Any:
        arguments = query.arguments(params)
        span = _start_span(query) if trace.get_current_span().is_recording() else None
        try:
            try:
                result = await getattr(self.raw, method)(query.sql, *arguments)
            except Exception as error:
                if not (self._retryable and _is_dead(error, self.raw)):
                    raise
                self.raw = await self._database.replace_dead(self.raw)
                result = await getattr(self.raw, method)(query.sql, *arguments)
        except Exception as error:
            if span is not None:
                span.record_exception(error)
                span.set_status(trace.Status(trace.StatusCode.ERROR))
            raise
        finally:
            if span is not None:
                span.end()
        self._retryable = False
        return result

    async def fetch(self, query: Query, **params: Any) -> list[Record]:
        rows: list[Record] = await self._run("fetch", query, params)
        return rows

    async def fetchrow(self, query: Query, **params: Any) -> Record | None:
        row: Record | None = await self._run("fetchrow", query, params)
        return row

    async def fetchval(self, query: Query, **params: Any) -> Any:
        return await self._run("fetchval", query, params)

    async def execute(self, query: Query, **params: Any) -> str:
        status: str = await self._run("execute", query, params)
        return status


def _start_span(query: Query) -> trace.Span:
    return _tracer.start_span(
        query.verb,
        kind=trace.SpanKind.CLIENT,
        attributes={"db.system": "postgresql", "db.statement": query.sql[:500]},
    )


async def _init_connection(raw: asyncpg.Connection) -> None:
    for type_name in ("json", "jsonb"):
        await raw.set_type_codec(
            type_name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
        )


async def _reset(raw: asyncpg.Connection) -> None:
    # Our connections keep no session state (no SET, LISTEN or session
    # locks), so the pool's default reset query would be a wasted round trip
    # on every release; only an unfinished transaction needs undoing.
    if raw.is_in_transaction():
        await raw.execute("ROLLBACK")


def asyncpg_dsn(url: str) -> str:
    """asyncpg takes postgresql:// URLs; ours name the driver (postgresql+asyncpg://)."""
    return re.sub(r"^postgresql\+asyncpg://", "postgresql://", url)


class Database:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @classmethod
    async def connect(cls, url: str, pool_size: int = 10) -> "Database":
        pool = await asyncpg.create_pool(
            asyncpg_dsn(url),
            min_size=1,
            max_size=pool_size,
            init=_init_connection,
            reset=_reset,
        )
        return cls(pool)

    async def close(self) -> None:
        await self._pool.close()

    async def replace_dead(self, raw: asyncpg.Connection) -> asyncpg.Connection:
        """Give back a dead connection and take a live one in its place.

        After a restart every pooled connection is dead, so all are marked
        for replacement at once rather than found out one call at a time.
        """
        log.info("database connection lost; reconnecting")
        await self._pool.expire_connections()
        await self._pool.release(raw)
        fresh: asyncpg.Connection = await self._pool.acquire()
        return fresh

    @asynccontextmanager
    async def _acquire(self, *, retryable: bool) -> AsyncIterator[Connection]:
        connection = Connection(self, await self._pool.acquire(), retryable=retryable)
        try:
            yield connection
        finally:
            await self._pool.release(connection.raw)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        """A connection in autocommit mode: each statement stands alone (reads)."""
        async with self._acquire(retryable=True) as connection:
            yield connection

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        """A connection inside one transaction, committed when the block ends."""
        async with self._acquire(retryable=False) as connection:
            try:
                await connection.raw.execute("BEGIN")
            except Exception as error:
                if not _is_dead(error, connection.raw):
                    raise
                connection.raw = await self.replace_dead(connection.raw)
                await connection.raw.execute("BEGIN")
            try:
                yield connection
            except BaseException:
                if not _is_closed(connection.raw):
                    await connection.raw.execute("ROLLBACK")
                raise
            await connection.raw.execute("COMMIT")

    async def is_reachable(self) -> bool:
        try:
            async with self.connection() as connection:
                await connection.raw.fetchval("SELECT 1")
        except Exception:  # noqa: BLE001 - any failure means "not reachable"
            return False
        return True


@contextmanager
def conflicts_as(errors: Mapping[str, Callable[[], DomainError]]) -> Any:
    """Turn a unique-constraint violation into the domain error named for it."""
    try:
        yield
    except asyncpg.UniqueViolationError as error:
        make = errors.get(error.constraint_name or "")
        if make is None:
            raise
        raise make() from None


def _migration_files(directory: Path) -> list[tuple[int, Path]]:
    found = []
    for path in sorted(directory.glob("*.sql")):
        match = _MIGRATION_FILE.match(path.name)
        if match is None:
            raise ValueError(f"{path}: migration files are named NNNN_lower_snake.sql")
        found.append((int(match.group(1)), path))
    return found


async def apply_migrations(database: Database, component: str, directory: Path) -> list[int]:
    """Apply the component's pending migrations; return the versions applied."""
    applied: list[int] = []
    async with database.transaction() as connection:
        raw = connection.raw
        await raw.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
        await raw.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " component text NOT NULL, version int NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now(),"
            " PRIMARY KEY (component, version))"
        )
        rows: Sequence[Record] = await raw.fetch(
            "SELECT version FROM schema_migrations WHERE component = $1", component
        )
        done = {row["version"] for row in rows}
        for version, path in _migration_files(directory):
            if version in done:
                continue
            # Without arguments asyncpg uses the simple-query protocol, which
            # runs a file of several statements.
            await raw.execute(path.read_text())
            await raw.execute(
                "INSERT INTO schema_migrations (component, version) VALUES ($1, $2)",
                component,
                version,
            )
            log.info("applied migration", extra={"component": component, "version": version})
            applied.append(version)
    return applied
