"""Database engine, schema migrations and query spans.

Each service owns one PostgreSQL database. Its schema is versioned by numbered
SQL files (`migrations/0001_*.sql`) applied at start-up, in order, in one
transaction under an advisory lock, so replicas starting together do not race
and a failed file leaves no half-applied schema. The runtime's own tables
(outbox, processed events) come first.
"""

import logging
import re
from pathlib import Path
from typing import Any

from opentelemetry import trace
from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

log = logging.getLogger(__name__)
_MIGRATION_FILE = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
_LOCK_KEY = 0x5741524D  # "WARM": one advisory lock for every migration run
RUNTIME_MIGRATIONS = Path(__file__).parent / "migrations"


def create_engine(url: str, pool_size: int = 10) -> AsyncEngine:
    engine = create_async_engine(url, pool_size=pool_size, pool_pre_ping=True)
    _trace_queries(engine)
    return engine


def _trace_queries(engine: AsyncEngine) -> None:
    tracer = trace.get_tracer("warmhouse.db")

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def start_span(conn: Connection, cursor: Any, statement: str, *_: Any) -> None:
        span = tracer.start_span(
            statement.split(None, 1)[0].upper() if statement else "SQL",
            kind=trace.SpanKind.CLIENT,
            attributes={"db.system": "postgresql", "db.statement": statement[:500]},
        )
        conn.info.setdefault("warmhouse_spans", []).append(span)

    @event.listens_for(engine.sync_engine, "after_cursor_execute")
    def end_span(conn: Connection, *_: Any) -> None:
        spans = conn.info.get("warmhouse_spans")
        if spans:
            spans.pop().end()

    @event.listens_for(engine.sync_engine, "handle_error")
    def fail_span(context: Any) -> None:
        spans = context.connection.info.get("warmhouse_spans") if context.connection else None
        if spans:
            span = spans.pop()
            span.record_exception(context.original_exception)
            span.set_status(trace.Status(trace.StatusCode.ERROR))
            span.end()


def _migration_files(directory: Path) -> list[tuple[int, Path]]:
    found = []
    for path in sorted(directory.glob("*.sql")):
        match = _MIGRATION_FILE.match(path.name)
        if match is None:
            raise ValueError(f"{path}: migration files are named NNNN_lower_snake.sql")
        found.append((int(match.group(1)), path))
    return found


async def apply_migrations(engine: AsyncEngine, component: str, directory: Path) -> list[int]:
    """Apply the component's pending migrations; return the versions applied."""
    applied: list[int] = []
    async with engine.begin() as conn:
        await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
        await conn.execute(
            text(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " component text NOT NULL, version int NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now(),"
                " PRIMARY KEY (component, version))"
            )
        )
        done = set(
            (
                await conn.execute(
                    text("SELECT version FROM schema_migrations WHERE component = :c"),
                    {"c": component},
                )
            ).scalars()
        )
        raw = (await conn.get_raw_connection()).driver_connection
        assert raw is not None
        for version, path in _migration_files(directory):
            if version in done:
                continue
            # The driver's simple-query protocol runs a file of several statements.
            await raw.execute(path.read_text())
            await conn.execute(
                text("INSERT INTO schema_migrations (component, version) VALUES (:c, :v)"),
                {"c": component, "v": version},
            )
            log.info("applied migration", extra={"component": component, "version": version})
            applied.append(version)
    return applied


async def is_reachable(engine: AsyncEngine) -> bool:
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception:  # noqa: BLE001 - any failure means "not reachable"
        return False
    return True
