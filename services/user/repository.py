"""The User service's repositories on PostgreSQL.

Every query of the service lives here, built with SQLAlchemy Core and
compiled once (`Query`); the classes implement the protocols of `ports.py`,
whose signatures know nothing of the database, so handlers do not either.
"""

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import bindparam, func, select, text, update

from services.runtime.database import Connection, Query, Record, conflicts_as
from services.runtime.errors import AlreadyExists
from services.runtime.pagination import Cursor
from services.user.domain import ThrottleState
from services.user.ports import FoundSession, SessionRecord, UserRecord, UserRepositories
from services.user.tables import sessions, users


def _email_taken() -> AlreadyExists:
    return AlreadyExists("EMAIL_TAKEN", "an account with this email already exists", field="email")


_EMAIL_CONFLICT = {"users_email_key": _email_taken}

_ADD_USER = Query(users.insert())
_USER_BY_ID = Query(select(users).where(users.c.id == bindparam("id")))
_LOCK_USER_BY_ID = Query(select(users).where(users.c.id == bindparam("id")).with_for_update())
_USER_BY_EMAIL = Query(select(users).where(func.lower(users.c.email) == bindparam("email")))
_FIRST_USERS = Query(
    select(users).order_by(users.c.created_at, users.c.id).limit(bindparam("limit"))
)
_USERS_AFTER = Query(
    text(
        "SELECT * FROM users WHERE (created_at, id) > (:created_at, :id)"
        " ORDER BY created_at, id LIMIT :limit"
    )
)
_SAVE_USER = Query(
    update(users)
    .where(users.c.id == bindparam("user_id"))
    .values(
        email=bindparam("email"),
        phone=bindparam("phone"),
        password_hash=bindparam("password_hash"),
        role=bindparam("role"),
        is_active=bindparam("is_active"),
        updated_at=bindparam("updated_at"),
        locale=bindparam("locale"),
        time_zone=bindparam("time_zone"),
    )
)


def _user(row: Record) -> UserRecord:
    return UserRecord(**row)


class SqlUsers:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    async def add(self, user: UserRecord) -> None:
        with conflicts_as(_EMAIL_CONFLICT):
            await self._connection.execute(_ADD_USER, **user.__dict__)

    async def get(self, user_id: uuid.UUID, *, lock: bool = False) -> UserRecord | None:
        row = await self._connection.fetchrow(_LOCK_USER_BY_ID if lock else _USER_BY_ID, id=user_id)
        return _user(row) if row else None

    async def find_by_email(self, email: str) -> UserRecord | None:
        row = await self._connection.fetchrow(_USER_BY_EMAIL, email=email.lower())
        return _user(row) if row else None

    async def list(self, after: Cursor | None, limit: int) -> list[UserRecord]:
        if after is None:
            rows = await self._connection.fetch(_FIRST_USERS, limit=limit)
        else:
            rows = await self._connection.fetch(
                _USERS_AFTER, created_at=after.created_at, id=after.id, limit=limit
            )
        return [_user(row) for row in rows]

    async def save(self, user: UserRecord) -> None:
        with conflicts_as(_EMAIL_CONFLICT):
            await self._connection.execute(
                _SAVE_USER,
                user_id=user.id,
                email=user.email,
                phone=user.phone,
                password_hash=user.password_hash,
                role=user.role,
                is_active=user.is_active,
                updated_at=user.updated_at,
                locale=user.locale,
                time_zone=user.time_zone,
            )


_SESSION_COLUMNS = "s.id, s.user_id, s.token, s.created_at, s.expired_at, s.revoked_at"
_ADD_SESSION = Query(sessions.insert())
_LOCK_SESSION_BY_TOKEN = Query(
    text(f"SELECT {_SESSION_COLUMNS} FROM sessions s WHERE s.token = :token FOR UPDATE")
)
_LOCK_SESSION_BY_RETIRED_TOKEN = Query(
    text(
        f"SELECT {_SESSION_COLUMNS} FROM sessions s"
        " JOIN retired_refresh_tokens r ON r.session_id = s.id"
        " WHERE r.token = :token FOR UPDATE OF s"
    )
)
_ROTATE = Query(text("UPDATE sessions SET token = :token, expired_at = :expires_at WHERE id = :id"))
_RETIRE = Query(
    text(
        "INSERT INTO retired_refresh_tokens (token, session_id, retired_at)"
        " VALUES (:token, :session_id, :now) ON CONFLICT (token) DO NOTHING"
    )
)
_REVOKE_ONE = Query(
    text(
        "UPDATE sessions s SET revoked_at = :now WHERE s.id = :id AND s.revoked_at IS NULL"
        f" RETURNING {_SESSION_COLUMNS}"
    )
)
_REVOKE_ALL = Query(
    text(
        "UPDATE sessions s SET revoked_at = :now"
        " WHERE s.user_id = :user_id AND s.revoked_at IS NULL"
        " AND s.id IS DISTINCT FROM :keep"
        f" RETURNING {_SESSION_COLUMNS}"
    )
)
_FORGET_RETIRED = Query(
    text("DELETE FROM retired_refresh_tokens WHERE retired_at < :retired_before")
)


def _session(row: Record) -> SessionRecord:
    return SessionRecord(
        id=row["id"],
        user_id=row["user_id"],
        token_digest=row["token"],
        created_at=row["created_at"],
        expires_at=row["expired_at"],
        revoked_at=row["revoked_at"],
    )


def _deleted(status: str) -> int:
    """The row count of a "DELETE n" command status."""
    return int(status.rsplit(" ", 1)[-1])


class SqlSessions:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    async def add(self, session: SessionRecord) -> None:
        await self._connection.execute(
            _ADD_SESSION,
            id=session.id,
            user_id=session.user_id,
            token=session.token_digest,
            created_at=session.created_at,
            expired_at=session.expires_at,
            revoked_at=session.revoked_at,
        )

    async def find_by_token(self, token_digest: str) -> FoundSession | None:
        row = await self._connection.fetchrow(_LOCK_SESSION_BY_TOKEN, token=token_digest)
        if row is not None:
            return FoundSession(_session(row), current=True)
        row = await self._connection.fetchrow(_LOCK_SESSION_BY_RETIRED_TOKEN, token=token_digest)
        return FoundSession(_session(row), current=False) if row else None

    async def rotate(
        self, session: SessionRecord, token_digest: str, expires_at: datetime, now: datetime
    ) -> None:
        await self._connection.execute(
            _ROTATE, token=token_digest, expires_at=expires_at, id=session.id
        )
        await self._connection.execute(
            _RETIRE, token=session.token_digest, session_id=session.id, now=now
        )

    async def revoke(self, session_id: uuid.UUID, now: datetime) -> SessionRecord | None:
        row = await self._connection.fetchrow(_REVOKE_ONE, id=session_id, now=now)
        return _session(row) if row else None

    async def revoke_all(
        self, user_id: uuid.UUID, now: datetime, *, keep: uuid.UUID | None = None
    ) -> list[SessionRecord]:
        rows = await self._connection.fetch(_REVOKE_ALL, user_id=user_id, now=now, keep=keep)
        return [_session(row) for row in rows]

    async def forget_retired_tokens(self, retired_before: datetime) -> int:
        status = await self._connection.execute(_FORGET_RETIRED, retired_before=retired_before)
        return _deleted(status)


_CREATE_THROTTLES = Query(
    text(
        "INSERT INTO login_throttle (key, failures, window_started_at)"
        " SELECT key, 0, :now FROM unnest(CAST(:keys AS text[])) AS key ORDER BY key"
        " ON CONFLICT (key) DO NOTHING"
    )
)
_LOCK_THROTTLES = Query(
    text(
        "SELECT key, failures, window_started_at, locked_until FROM login_throttle"
        " WHERE key = ANY(CAST(:keys AS text[])) ORDER BY key FOR UPDATE"
    )
)
_SAVE_THROTTLE = Query(
    text(
        "INSERT INTO login_throttle (key, failures, window_started_at, locked_until)"
        " VALUES (:key, :failures, :window_started_at, :locked_until)"
        " ON CONFLICT (key) DO UPDATE SET failures = EXCLUDED.failures,"
        " window_started_at = EXCLUDED.window_started_at, locked_until = EXCLUDED.locked_until"
    )
)
_PRUNE_THROTTLES = Query(
    text(
        "DELETE FROM login_throttle WHERE window_started_at < :stale_before"
        " AND (locked_until IS NULL OR locked_until < :now)"
    )
)


class SqlThrottles:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    async def lock(self, keys: Sequence[str], now: datetime) -> dict[str, ThrottleState]:
        """The keys' states, row-locked in key order until commit, so concurrent
        attempts on one key are counted one after another."""
        ordered = sorted(set(keys))
        await self._connection.execute(_CREATE_THROTTLES, keys=ordered, now=now)
        rows = await self._connection.fetch(_LOCK_THROTTLES, keys=ordered)
        return {
            row["key"]: ThrottleState(
                row["failures"], row["window_started_at"], row["locked_until"]
            )
            for row in rows
        }

    async def save(self, key: str, state: ThrottleState) -> None:
        await self._connection.execute(
            _SAVE_THROTTLE,
            key=key,
            failures=state.failures,
            window_started_at=state.window_started_at,
            locked_until=state.locked_until,
        )

    async def prune(self, now: datetime, stale_before: datetime) -> int:
        status = await self._connection.execute(
            _PRUNE_THROTTLES, now=now, stale_before=stale_before
        )
        return _deleted(status)


def sql_repositories(connection: Connection) -> UserRepositories:
    """The repositories bound to one connection (and its transaction, if any)."""
    return UserRepositories(SqlUsers(connection), SqlSessions(connection), SqlThrottles(connection))
