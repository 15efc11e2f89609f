"""In-memory repositories, passwords and a clock for the User service's use cases."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from cryptography.hazmat.primitives.asymmetric import ec

from services.runtime.errors import AlreadyExists
from services.runtime.pagination import Cursor, PageTokens
from services.user.domain import ThrottleState
from services.user.handlers import UserHandlers, UserPolicies
from services.user.ports import FoundSession, SessionRecord, UserRecord, UserRepositories
from services.user.tokens import DeviceTokens, TokenIssuer
from tests.fakes import FakeClock, FakeUnitOfWork


class FakeUsers:
    def __init__(self) -> None:
        self.rows: dict[uuid.UUID, UserRecord] = {}

    def _taken(self, user: UserRecord) -> bool:
        return any(
            other.email.lower() == user.email.lower() and other.id != user.id
            for other in self.rows.values()
        )

    async def add(self, user: UserRecord) -> None:
        if self._taken(user):
            raise AlreadyExists("EMAIL_TAKEN", "an account with this email already exists")
        self.rows[user.id] = user

    async def get(self, user_id: uuid.UUID, *, lock: bool = False) -> UserRecord | None:
        return self.rows.get(user_id)

    async def find_by_email(self, email: str) -> UserRecord | None:
        return next((u for u in self.rows.values() if u.email.lower() == email.lower()), None)

    async def list(self, after: Cursor | None, limit: int) -> list[UserRecord]:
        ordered = sorted(self.rows.values(), key=lambda user: (user.created_at, user.id))
        if after is not None:
            ordered = [u for u in ordered if (u.created_at, u.id) > (after.created_at, after.id)]
        return ordered[:limit]

    async def save(self, user: UserRecord) -> None:
        if self._taken(user):
            raise AlreadyExists("EMAIL_TAKEN", "an account with this email already exists")
        self.rows[user.id] = user


class FakeSessions:
    def __init__(self) -> None:
        self.rows: dict[uuid.UUID, SessionRecord] = {}
        self.retired: dict[str, tuple[uuid.UUID, datetime]] = {}

    async def add(self, session: SessionRecord) -> None:
        self.rows[session.id] = session

    async def find_by_token(self, token_digest: str) -> FoundSession | None:
        for session in self.rows.values():
            if session.token_digest == token_digest:
                return FoundSession(session, current=True)
        if token_digest in self.retired:
            return FoundSession(self.rows[self.retired[token_digest][0]], current=False)
        return None

    async def rotate(
        self, session: SessionRecord, token_digest: str, expires_at: datetime, now: datetime
    ) -> None:
        self.retired[session.token_digest] = (session.id, now)
        self.rows[session.id] = replace(
            self.rows[session.id], token_digest=token_digest, expires_at=expires_at
        )

    async def revoke(self, session_id: uuid.UUID, now: datetime) -> SessionRecord | None:
        session = self.rows.get(session_id)
        if session is None or session.revoked_at is not None:
            return None
        self.rows[session_id] = replace(session, revoked_at=now)
        return session

    async def revoke_all(
        self, user_id: uuid.UUID, now: datetime, *, keep: uuid.UUID | None = None
    ) -> list[SessionRecord]:
        ended = []
        for session in list(self.rows.values()):
            if session.user_id == user_id and session.id != keep:
                revoked = await self.revoke(session.id, now)
                if revoked is not None:
                    ended.append(revoked)
        return ended

    async def forget_retired_tokens(self, retired_before: datetime) -> int:
        old = [digest for digest, (_, at) in self.retired.items() if at < retired_before]
        for digest in old:
            del self.retired[digest]
        return len(old)

    def live(self, user_id: uuid.UUID) -> list[SessionRecord]:
        return [s for s in self.rows.values() if s.user_id == user_id and s.revoked_at is None]


class FakeThrottles:
    def __init__(self) -> None:
        self.rows: dict[str, ThrottleState] = {}

    async def lock(self, keys: Sequence[str], now: datetime) -> dict[str, ThrottleState]:
        for key in keys:
            self.rows.setdefault(key, ThrottleState(0, now, None))
        return {key: self.rows[key] for key in keys}

    async def save(self, key: str, state: ThrottleState) -> None:
        self.rows[key] = state

    async def prune(self, now: datetime, stale_before: datetime) -> int:
        stale = [
            key
            for key, state in self.rows.items()
            if state.window_started_at < stale_before
            and (state.locked_until is None or state.locked_until < now)
        ]
        for key in stale:
            del self.rows[key]
        return len(stale)


class FakePasswords:
    """ "Hashes" in plain sight; counts how often a password was checked."""

    def __init__(self) -> None:
        self.checks = 0

    async def hash(self, password: str) -> str:
        return f"plain:{password}"

    async def verify(self, password_hash: str | None, password: str) -> bool:
        self.checks += 1
        return password_hash == f"plain:{password}"


@dataclass
class UserWorld:
    """Handlers wired to fakes, and the fakes to look at."""

    handlers: UserHandlers
    uow: FakeUnitOfWork[UserRepositories]
    users: FakeUsers
    sessions: FakeSessions
    throttles: FakeThrottles
    passwords: FakePasswords
    clock: FakeClock
    revoked_locally: list[str] = field(default_factory=list)


def user_world(policies: UserPolicies | None = None) -> UserWorld:
    users, sessions, throttles = FakeUsers(), FakeSessions(), FakeThrottles()
    uow = FakeUnitOfWork(UserRepositories(users, sessions, throttles))
    passwords, clock, revoked = FakePasswords(), FakeClock(), list[str]()
    handlers = UserHandlers(
        uow,
        TokenIssuer(ec.generate_private_key(ec.SECP256R1()), 300),
        DeviceTokens(b"device-token-key-for-unit-tests-0123456789"),
        PageTokens(b"page-token-key-for-unit-tests-0123456789"),
        policies,
        passwords=passwords,
        clock=clock,
        revoke_locally=revoked.append,
    )
    return UserWorld(handlers, uow, users, sessions, throttles, passwords, clock, revoked)
