"""The Space service's tables (schema in migrations/), for SQLAlchemy Core."""

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    MetaData,
    Table,
    Text,
    Uuid,
)

metadata = MetaData()

spaces = Table(
    "spaces",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("name", Text, nullable=False),
    Column("owner_id", Uuid),
    Column("created_for", Uuid),
    Column("parent_id", Uuid, ForeignKey("spaces.id")),
    Column("membership_version", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

space_users = Table(
    "space_users",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("space_id", Uuid, ForeignKey("spaces.id", ondelete="CASCADE"), nullable=False),
    Column("user_id", Uuid, nullable=False),
    Column("role", Text, nullable=False),
    Column("expire_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

account_states = Table(
    "account_states",
    metadata,
    Column("user_id", Uuid, primary_key=True),
    Column("is_active", Boolean, nullable=False),
    Column("changed_at", DateTime(timezone=True), nullable=False),
)
