"""The User service's tables (schema in migrations/), for SQLAlchemy Core."""

from sqlalchemy import Boolean, Column, DateTime, Integer, MetaData, Table, Text, Uuid

metadata = MetaData()

users = Table(
    "users",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("email", Text, nullable=False),
    Column("phone", Text, nullable=False),
    Column("password_hash", Text, nullable=False),
    Column("role", Text, nullable=False),
    Column("is_active", Boolean, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

sessions = Table(
    "sessions",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("user_id", Uuid, nullable=False),
    Column("token", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expired_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
)

login_throttle = Table(
    "login_throttle",
    metadata,
    Column("key", Text, primary_key=True),
    Column("failures", Integer, nullable=False),
    Column("window_started_at", DateTime(timezone=True), nullable=False),
    Column("locked_until", DateTime(timezone=True)),
)

retired_refresh_tokens = Table(
    "retired_refresh_tokens",
    metadata,
    Column("token", Text, primary_key=True),
    Column("session_id", Uuid, nullable=False),
    Column("retired_at", DateTime(timezone=True), nullable=False),
)
