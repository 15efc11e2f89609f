"""What the User service's use cases read and write, independent of storage.

Handlers see only these: records as plain dataclasses, repositories as
protocols. `repository.py` implements them on PostgreSQL; unit tests on
dictionaries (tests/unit/user_fakes.py).
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from services.runtime.pagination import Cursor
from services.user.domain import DEFAULT_LOCALE, DEFAULT_TIME_ZONE, ThrottleState


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
    # "en" or "ru"; an IANA place zone (domain.validate_locale, validate_time_zone).
    locale: str = DEFAULT_LOCALE
    time_zone: str = DEFAULT_TIME_ZONE


@dataclass(frozen=True)
class SessionRecord:
    id: uuid.UUID
    user_id: uuid.UUID
    # SHA-256 of the current refresh token; the token itself is never stored.
    token_digest: str
    created_at: datetime
    # Sliding: moved forward by each refresh, never past the absolute lifetime.
    expires_at: datetime
    revoked_at: datetime | None = None


@dataclass(frozen=True)
class FoundSession:
    """The session a refresh token belongs to, and whether the token is its
    current one or one it rotated out earlier (a reuse)."""

    session: SessionRecord
    current: bool


class Users(Protocol):
    async def add(self, user: UserRecord) -> None:
        """Insert; AlreadyExists when the email is taken, whatever its case."""

    async def get(self, user_id: uuid.UUID, *, lock: bool = False) -> UserRecord | None:
        """`lock`: hold the row until the transaction ends (changes, logins)."""

    async def find_by_email(self, email: str) -> UserRecord | None: ...

    async def list(self, after: Cursor | None, limit: int) -> list[UserRecord]:
        """In (created_at, id) order, after the cursor."""

    async def save(self, user: UserRecord) -> None:
        """Write the mutable fields back; AlreadyExists when the email is taken."""


class Sessions(Protocol):
    async def add(self, session: SessionRecord) -> None: ...

    async def find_by_token(self, token_digest: str) -> FoundSession | None:
        """The session whose current or rotated-out token has this digest,
        row-locked until the transaction ends."""

    async def rotate(
        self, session: SessionRecord, token_digest: str, expires_at: datetime, now: datetime
    ) -> None:
        """Replace the session's current token, keeping the old digest to
        detect its reuse."""

    async def revoke(self, session_id: uuid.UUID, now: datetime) -> SessionRecord | None:
        """End one session; the session if it was live."""

    async def revoke_all(
        self, user_id: uuid.UUID, now: datetime, *, keep: uuid.UUID | None = None
    ) -> list[SessionRecord]:
        """End every live session of a user but `keep`; those that were live."""

    async def forget_retired_tokens(self, retired_before: datetime) -> int:
        """Drop rotated-out digests older than any refresh token can live."""


class Throttles(Protocol):
    async def lock(self, keys: Sequence[str], now: datetime) -> dict[str, ThrottleState]:
        """The keys' states (created empty when missing), row-locked in sorted
        order until the transaction ends, so concurrent attempts on one key are
        counted one after another."""

    async def save(self, key: str, state: ThrottleState) -> None: ...

    async def prune(self, now: datetime, stale_before: datetime) -> int:
        """Delete counters whose window has passed and whose lock, if any, has ended."""


@dataclass(frozen=True)
class UserRepositories:
    """What one unit of work hands out."""

    users: Users
    sessions: Sessions
    throttles: Throttles
