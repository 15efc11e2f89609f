"""The Device service's tables (schema in migrations/), for SQLAlchemy Core."""

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
    Uuid,
)

metadata = MetaData()

devices = Table(
    "devices",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("space_id", Uuid, nullable=False),
    Column("home_id", Uuid, nullable=False),
    Column("type", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("last_seen", DateTime(timezone=True)),
    Column("secret_hash", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("retired_at", DateTime(timezone=True)),
    Column("connection_id", Text),
    Column("connected_at", DateTime(timezone=True)),
    Column("lease_until", DateTime(timezone=True)),
    Column("secret_rotated_at", DateTime(timezone=True)),
    # Written by telemetry ingestion (migrations/0003_readings.sql), only read here.
    Column("last_reading", LargeBinary),
)

device_logs = Table(
    "device_logs",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("device_id", Uuid, nullable=False),
    Column("kind", Text, nullable=False),
    Column("event", Text, nullable=False),
    Column("reading", LargeBinary),
    Column("timestamp", DateTime(timezone=True), nullable=False),
)

known_spaces = Table(
    "known_spaces",
    metadata,
    Column("space_id", Uuid, primary_key=True),
    Column("home_id", Uuid, nullable=False),
    Column("deleted", Boolean, nullable=False),
)

memberships = Table(
    "memberships",
    metadata,
    Column("home_id", Uuid, primary_key=True),
    Column("user_id", Uuid, primary_key=True),
    Column("role", Text),
    Column("expire_at", DateTime(timezone=True)),
    Column("version", BigInteger, nullable=False),
)

commands = Table(
    "commands",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("device_id", Uuid, nullable=False),
    Column("kind", Text, nullable=False),
    Column("target_temperature", Float),
    Column("status", Text, nullable=False),
    Column("message", Text, nullable=False),
    Column("request_id", Text, nullable=False),
    Column("requester_id", Uuid, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("expire_at", DateTime(timezone=True), nullable=False),
    Column("sent_connection_id", Text),
)

heating = Table(
    "heating",
    metadata,
    Column("device_id", Uuid, primary_key=True),
    Column("desired", LargeBinary, nullable=False),
    Column("desired_version", BigInteger, nullable=False),
    Column("desired_at", DateTime(timezone=True), nullable=False),
    Column("desired_by", Uuid),
    Column("reported", LargeBinary),
    Column("reported_version", BigInteger, nullable=False),
    Column("reported_stream_at", DateTime(timezone=True)),
    Column("reported_at", DateTime(timezone=True)),
    Column("applied_version", BigInteger, nullable=False),
    Column("pushed_version", BigInteger, nullable=False),
    Column("pushed_connection_id", Text),
    Column("pushed_at", DateTime(timezone=True)),
    Column("changes_window_start", DateTime(timezone=True)),
    Column("changes_in_window", Integer, nullable=False),
    Column("window_logged_at", DateTime(timezone=True)),
    Column("window_open_logged", Boolean, nullable=False),
)
