"""The Support service's tables (schema in migrations/), for SQLAlchemy Core."""

from sqlalchemy import Boolean, Column, DateTime, MetaData, Table, Text, Uuid

metadata = MetaData()

tickets = Table(
    "tickets",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("user_id", Uuid, nullable=False),
    Column("subject", Text, nullable=False),
    Column("description", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("priority", Text, nullable=False),
    Column("space_id", Uuid),
    Column("device_id", Uuid),
    Column("first_response_due_at", DateTime(timezone=True), nullable=False),
    Column("first_response_at", DateTime(timezone=True)),
    Column("sla_breached", Boolean, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

comments = Table(
    "comments",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("ticket_id", Uuid, nullable=False),
    Column("author_id", Uuid),
    Column("message", Text, nullable=False),
    Column("internal", Boolean, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

hazard_episodes = Table(
    "hazard_episodes",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("device_id", Uuid, nullable=False),
    Column("hazard", Text, nullable=False),
    Column("ticket_id", Uuid),
    Column("detected_at", DateTime(timezone=True)),
    Column("cleared_at", DateTime(timezone=True)),
)
