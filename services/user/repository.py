"""Reads and writes of the User service's tables (SQLAlchemy Core)."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from services.runtime.errors import AlreadyExists
from services.user.domain import ThrottleState
from services.user.tables import login_throttle, sessions, users


@dataclass(frozen=True)
class UserRecord:
    id: uuid.UUID
    email: str
    phone: str
    password_hash: str
    role: str
    is_active: bool
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class SessionRecord:
    id: uuid.UUID
    user_id: uuid.UUID


def _user(row: Row[Any]) -> UserRecord:
    return UserRecord(**row._mapping)


def _email_taken() -> AlreadyExists:
    return AlreadyExists("EMAIL_TAKEN", "an account with this email already exists", field="email")


async def insert_user(conn: AsyncConnection, user: UserRecord) -> None:
    try:
        async with conn.begin_nested():
            await conn.execute(users.insert().values(**user.__dict__))
    except IntegrityError as error:
        if "users_email_key" in str(error.orig):
            raise _email_taken() from None
        raise


async def get_user(conn: AsyncConnection, user_id: uuid.UUID) -> UserRecord | None:
    row = (await conn.execute(select(users).where(users.c.id == user_id))).first()
    return _user(row) if row else None


async def find_user_by_email(conn: AsyncConnection, email: str) -> UserRecord | None:
    query = select(users).where(func.lower(users.c.email) == email.lower())
    row = (await conn.execute(query)).first()
    return _user(row) if row else None


async def list_users(
    conn: AsyncConnection, after: tuple[datetime, uuid.UUID] | None, limit: int
) -> list[UserRecord]:
    query = select(users).order_by(users.c.created_at, users.c.id).limit(limit)
    if after is not None:
        query = query.where(tuple_(users.c.created_at, users.c.id) > tuple_(*after))
    return [_user(row) for row in (await conn.execute(query)).all()]


async def update_user(
    conn: AsyncConnection, user_id: uuid.UUID, values: dict[str, Any]
) -> UserRecord | None:
    query = (
        update(users)
        .where(users.c.id == user_id)
        .values(**values, updated_at=func.now())
        .returning(*users.c)
    )
    try:
        async with conn.begin_nested():
            row = (await conn.execute(query)).first()
    except IntegrityError as error:
        if "users_email_key" in str(error.orig):
            raise _email_taken() from None
        raise
    return _user(row) if row else None


async def insert_session(
    conn: AsyncConnection,
    session_id: uuid.UUID,
    user_id: uuid.UUID,
    token_digest: str,
    now: datetime,
    expires_at: datetime,
) -> None:
    await conn.execute(
        sessions.insert().values(
            id=session_id,
            user_id=user_id,
            token=token_digest,
            created_at=now,
            expired_at=expires_at,
        )
    )


async def lock_live_session(
    conn: AsyncConnection, token_digest: str, now: datetime
) -> SessionRecord | None:
    query = (
        select(sessions.c.id, sessions.c.user_id)
        .where(
            sessions.c.token == token_digest,
            sessions.c.revoked_at.is_(None),
            sessions.c.expired_at > now,
        )
        .with_for_update()
    )
    row = (await conn.execute(query)).first()
    return SessionRecord(row.id, row.user_id) if row else None


async def rotate_session_token(
    conn: AsyncConnection, session_id: uuid.UUID, token_digest: str, expires_at: datetime
) -> None:
    await conn.execute(
        update(sessions)
        .where(sessions.c.id == session_id)
        .values(token=token_digest, expired_at=expires_at)
    )


async def revoke_sessions(
    conn: AsyncConnection,
    now: datetime,
    *,
    session_id: uuid.UUID | None = None,
    user_id: uuid.UUID | None = None,
) -> list[SessionRecord]:
    """Revoke one session or all of a user's; return those that were live."""
    query = (
        update(sessions)
        .where(
            sessions.c.revoked_at.is_(None),
            or_(sessions.c.id == session_id, sessions.c.user_id == user_id),
        )
        .values(revoked_at=now)
        .returning(sessions.c.id, sessions.c.user_id)
    )
    return [SessionRecord(row.id, row.user_id) for row in (await conn.execute(query)).all()]


async def load_throttles(conn: AsyncConnection, keys: list[str]) -> dict[str, ThrottleState]:
    query = select(login_throttle).where(login_throttle.c.key.in_(keys))
    return _throttle_states((await conn.execute(query)).all())


async def lock_throttles(
    conn: AsyncConnection, keys: list[str], now: datetime
) -> dict[str, ThrottleState]:
    """The keys' current states, row-locked until commit, so that concurrent
    failures are counted one after another rather than over each other."""
    await conn.execute(
        insert(login_throttle)
        .values([{"key": key, "failures": 0, "window_started_at": now} for key in sorted(keys)])
        .on_conflict_do_nothing(index_elements=["key"])
    )
    query = (
        select(login_throttle)
        .where(login_throttle.c.key.in_(keys))
        .order_by(login_throttle.c.key)
        .with_for_update()
    )
    return _throttle_states((await conn.execute(query)).all())


def _throttle_states(rows: Sequence[Row[Any]]) -> dict[str, ThrottleState]:
    return {
        row.key: ThrottleState(row.failures, row.window_started_at, row.locked_until)
        for row in rows
    }


async def save_throttle(conn: AsyncConnection, key: str, state: ThrottleState) -> None:
    values = {
        "failures": state.failures,
        "window_started_at": state.window_started_at,
        "locked_until": state.locked_until,
    }
    statement = insert(login_throttle).values(key=key, **values)
    await conn.execute(statement.on_conflict_do_update(index_elements=["key"], set_=values))


async def prune_throttles(conn: AsyncConnection, now: datetime, stale_before: datetime) -> int:
    """Delete counters whose window has passed and whose lock, if any, has ended."""
    deleted = await conn.execute(
        login_throttle.delete()
        .where(
            login_throttle.c.window_started_at < stale_before,
            or_(login_throttle.c.locked_until.is_(None), login_throttle.c.locked_until < now),
        )
        .returning(login_throttle.c.key)
    )
    return len(deleted.all())


async def clear_throttle(conn: AsyncConnection, key: str) -> None:
    await conn.execute(login_throttle.delete().where(login_throttle.c.key == key))
