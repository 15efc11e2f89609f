"""The User service's repositories on PostgreSQL (SQLAlchemy Core).

Every query of the service lives here. The classes implement the protocols of
`ports.py`, whose signatures know nothing of SQLAlchemy, so handlers do not
either and another implementation can replace these.
"""

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from services.runtime.errors import AlreadyExists
from services.runtime.pagination import Cursor
from services.user.domain import ThrottleState
from services.user.ports import FoundSession, SessionRecord, UserRecord, UserRepositories
from services.user.tables import login_throttle, retired_refresh_tokens, sessions, users


def _email_taken() -> AlreadyExists:
    return AlreadyExists("EMAIL_TAKEN", "an account with this email already exists", field="email")


def _user(row: Row[Any]) -> UserRecord:
    return UserRecord(**row._mapping)


class SqlUsers:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, user: UserRecord) -> None:
        try:
            async with self._conn.begin_nested():
                await self._conn.execute(users.insert().values(**user.__dict__))
        except IntegrityError as error:
            if "users_email_key" in str(error.orig):
                raise _email_taken() from None
            raise

    async def get(self, user_id: uuid.UUID, *, lock: bool = False) -> UserRecord | None:
        query = select(users).where(users.c.id == user_id)
        if lock:
            query = query.with_for_update()
        row = (await self._conn.execute(query)).first()
        return _user(row) if row else None

    async def find_by_email(self, email: str) -> UserRecord | None:
        query = select(users).where(func.lower(users.c.email) == email.lower())
        row = (await self._conn.execute(query)).first()
        return _user(row) if row else None

    async def list(self, after: Cursor | None, limit: int) -> list[UserRecord]:
        query = select(users).order_by(users.c.created_at, users.c.id).limit(limit)
        if after is not None:
            query = query.where(
                tuple_(users.c.created_at, users.c.id) > tuple_(after.created_at, after.id)
            )
        return [_user(row) for row in (await self._conn.execute(query)).all()]

    async def save(self, user: UserRecord) -> None:
        statement = (
            update(users)
            .where(users.c.id == user.id)
            .values(
                email=user.email,
                phone=user.phone,
                password_hash=user.password_hash,
                role=user.role,
                is_active=user.is_active,
                updated_at=user.updated_at,
            )
        )
        try:
            async with self._conn.begin_nested():
                await self._conn.execute(statement)
        except IntegrityError as error:
            if "users_email_key" in str(error.orig):
                raise _email_taken() from None
            raise


_SESSION_COLUMNS = (
    sessions.c.id,
    sessions.c.user_id,
    sessions.c.token,
    sessions.c.created_at,
    sessions.c.expired_at,
    sessions.c.revoked_at,
)


def _session(row: Row[*tuple[Any, ...]]) -> SessionRecord:
    return SessionRecord(
        id=row.id,
        user_id=row.user_id,
        token_digest=row.token,
        created_at=row.created_at,
        expires_at=row.expired_at,
        revoked_at=row.revoked_at,
    )


class SqlSessions:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, session: SessionRecord) -> None:
        await self._conn.execute(
            sessions.insert().values(
                id=session.id,
                user_id=session.user_id,
                token=session.token_digest,
                created_at=session.created_at,
                expired_at=session.expires_at,
                revoked_at=session.revoked_at,
            )
        )

    async def find_by_token(self, token_digest: str) -> FoundSession | None:
        current = select(*_SESSION_COLUMNS).where(sessions.c.token == token_digest)
        row = (await self._conn.execute(current.with_for_update())).first()
        if row is not None:
            return FoundSession(_session(row), current=True)
        retired = (
            select(*_SESSION_COLUMNS)
            .join(retired_refresh_tokens, retired_refresh_tokens.c.session_id == sessions.c.id)
            .where(retired_refresh_tokens.c.token == token_digest)
            .with_for_update(of=sessions)
        )
        row = (await self._conn.execute(retired)).first()
        return FoundSession(_session(row), current=False) if row else None

    async def rotate(
        self, session: SessionRecord, token_digest: str, expires_at: datetime, now: datetime
    ) -> None:
        await self._conn.execute(
            update(sessions)
            .where(sessions.c.id == session.id)
            .values(token=token_digest, expired_at=expires_at)
        )
        await self._conn.execute(
            insert(retired_refresh_tokens)
            .values(token=session.token_digest, session_id=session.id, retired_at=now)
            .on_conflict_do_nothing(index_elements=["token"])
        )

    async def revoke(self, session_id: uuid.UUID, now: datetime) -> SessionRecord | None:
        revoked = await self._revoke(sessions.c.id == session_id, now)
        return revoked[0] if revoked else None

    async def revoke_all(
        self, user_id: uuid.UUID, now: datetime, *, keep: uuid.UUID | None = None
    ) -> list[SessionRecord]:
        condition = sessions.c.user_id == user_id
        if keep is not None:
            condition = condition & (sessions.c.id != keep)
        return await self._revoke(condition, now)

    async def _revoke(self, condition: Any, now: datetime) -> list[SessionRecord]:
        statement = (
            update(sessions)
            .where(condition, sessions.c.revoked_at.is_(None))
            .values(revoked_at=now)
            .returning(*_SESSION_COLUMNS)
        )
        return [_session(row) for row in (await self._conn.execute(statement)).all()]

    async def forget_retired_tokens(self, retired_before: datetime) -> int:
        deleted = await self._conn.execute(
            retired_refresh_tokens.delete()
            .where(retired_refresh_tokens.c.retired_at < retired_before)
            .returning(retired_refresh_tokens.c.token)
        )
        return len(deleted.all())


def _throttle_states(rows: Sequence[Row[Any]]) -> dict[str, ThrottleState]:
    return {
        row.key: ThrottleState(row.failures, row.window_started_at, row.locked_until)
        for row in rows
    }


class SqlThrottles:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def lock(self, keys: Sequence[str], now: datetime) -> dict[str, ThrottleState]:
        ordered = sorted(set(keys))
        await self._conn.execute(
            insert(login_throttle)
            .values([{"key": key, "failures": 0, "window_started_at": now} for key in ordered])
            .on_conflict_do_nothing(index_elements=["key"])
        )
        query = (
            select(login_throttle)
            .where(login_throttle.c.key.in_(ordered))
            .order_by(login_throttle.c.key)
            .with_for_update()
        )
        return _throttle_states((await self._conn.execute(query)).all())

    async def save(self, key: str, state: ThrottleState) -> None:
        values = {
            "failures": state.failures,
            "window_started_at": state.window_started_at,
            "locked_until": state.locked_until,
        }
        statement = insert(login_throttle).values(key=key, **values)
        await self._conn.execute(
            statement.on_conflict_do_update(index_elements=["key"], set_=values)
        )

    async def prune(self, now: datetime, stale_before: datetime) -> int:
        deleted = await self._conn.execute(
            login_throttle.delete()
            .where(
                login_throttle.c.window_started_at < stale_before,
                or_(login_throttle.c.locked_until.is_(None), login_throttle.c.locked_until < now),
            )
            .returning(login_throttle.c.key)
        )
        return len(deleted.all())


def sql_repositories(conn: AsyncConnection) -> UserRepositories:
    """The repositories bound to one connection (and its transaction, if any)."""
    return UserRepositories(SqlUsers(conn), SqlSessions(conn), SqlThrottles(conn))
