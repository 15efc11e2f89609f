"""User Management use cases: each one transaction, its events in the outbox."""

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection
from warmhouse.user.v1 import user_pb2

from services.runtime.auth import Caller
from services.runtime.errors import InvalidArgument, NotFound, Throttled, Unauthenticated
from services.runtime.outbox import add_event
from services.runtime.pagination import Cursor, PageTokens, page_size
from services.runtime.request import parse_uuid
from services.runtime.timestamps import timestamp
from services.runtime.unit_of_work import UnitOfWork
from services.user import domain, repository
from services.user.passwords import hash_password, verify_password
from services.user.repository import UserRecord
from services.user.tokens import (
    IssuedTokens,
    TokenIssuer,
    new_refresh_token,
    refresh_token_digest,
)

Clock = Callable[[], datetime]


def _user_updated(user: UserRecord) -> user_pb2.UserUpdated:
    return user_pb2.UserUpdated(
        user_id=str(user.id),
        email=user.email,
        phone=user.phone,
        role=user_pb2.Role.Value(user.role),
        is_active=user.is_active,
        occur_time=timestamp(user.updated_at),
    )


@dataclass(frozen=True)
class Session:
    user_id: str
    tokens: IssuedTokens


def utc_now() -> datetime:
    return datetime.now(UTC)


class UserHandlers:
    def __init__(
        self,
        uow: UnitOfWork[AsyncConnection],
        issuer: TokenIssuer,
        refresh_ttl: timedelta,
        throttling: domain.LoginThrottling,
        page_tokens: PageTokens,
        clock: Clock = utc_now,
    ) -> None:
        self._uow = uow
        self._issuer = issuer
        self._refresh_ttl = refresh_ttl
        self._throttling = throttling
        self._page_tokens = page_tokens
        self._clock = clock

    @property
    def jwks(self) -> list[dict[str, str]]:
        return self._issuer.jwks

    async def register(self, email: str, password: str, phone: str, role: str) -> UserRecord:
        email = domain.normalize_email(email)
        # An administrator created from configuration may have no phone.
        phone = domain.validate_phone(phone) if phone or role == domain.ROLE_USER else ""
        domain.validate_password(password, email)
        now = self._clock()
        user = UserRecord(
            id=uuid.uuid4(),
            email=email,
            phone=phone,
            password_hash=await hash_password(password),
            role=role,
            is_active=True,
            created_at=now,
            updated_at=now,
        )
        async with self._uow.transaction() as tx:
            conn = tx.repos
            await repository.insert_user(conn, user)
            await add_event(
                conn,
                user_pb2.UserRegistered(
                    user_id=str(user.id),
                    email=email,
                    phone=phone,
                    role=user_pb2.Role.Value(role),
                    occur_time=timestamp(now),
                ),
            )
        return user

    async def ensure_admin(self, email: str, password: str, phone: str) -> bool:
        """Create the first administrator unless an account with that email exists."""
        async with self._uow.read() as conn:
            if await repository.find_user_by_email(conn, domain.normalize_email(email)):
                return False
        await self.register(email, password, phone, domain.ROLE_ADMIN)
        return True

    async def login(self, method: int, email: str, password: str, client: str) -> Session:
        if method not in (user_pb2.AUTH_METHOD_UNSPECIFIED, user_pb2.EMAIL):
            raise InvalidArgument(
                "AUTH_METHOD_NOT_SUPPORTED", "only the EMAIL auth method is available"
            )
        if not email.strip() or not password:
            raise InvalidArgument("CREDENTIALS_REQUIRED", "email and password are required")
        email = email.strip().lower()
        keys = self._throttling.keys(email, client)
        now = self._clock()
        async with self._uow.read() as conn:
            throttles = await repository.load_throttles(conn, list(keys))
            user = await repository.find_user_by_email(conn, email)
        locked = [state for state in throttles.values() if domain.is_locked(state, now)]
        if locked:
            retry_at = max(state.locked_until for state in locked if state.locked_until)
            raise Throttled(
                "TOO_MANY_LOGIN_FAILURES",
                "too many failed logins; try again later",
                retryAfterSeconds=str(max(1, int((retry_at - now).total_seconds()))),
            )
        password_ok = await verify_password(user.password_hash if user else None, password)
        if user is None or not password_ok or not user.is_active:
            async with self._uow.transaction() as tx:
                conn = tx.repos
                current = await repository.lock_throttles(conn, list(keys), now)
                for key, policy in keys.items():
                    state = domain.after_failure(current.get(key), now, policy)
                    await repository.save_throttle(conn, key, state)
            # One answer whether the email or the password was wrong. A fresh
            # exception each time: a shared instance would carry tracebacks
            # between concurrent requests.
            raise Unauthenticated("INVALID_CREDENTIALS", "email or password is incorrect")
        session_id = uuid.uuid4()
        refresh_token = new_refresh_token()
        async with self._uow.transaction() as tx:
            conn = tx.repos
            # Success forgives this client's failures on this account only; the
            # wider per-client and per-account counters run their course.
            await repository.clear_throttle(conn, domain.account_client_key(email, client))
            await repository.insert_session(
                conn,
                session_id,
                user.id,
                refresh_token_digest(refresh_token),
                now,
                now + self._refresh_ttl,
            )
        return self._session(user, session_id, refresh_token)

    def _session(self, user: UserRecord, session_id: uuid.UUID, refresh_token: str) -> Session:
        access_token = self._issuer.access_token(str(user.id), user.role, str(session_id))
        tokens = IssuedTokens(access_token, refresh_token, self._issuer.access_ttl_seconds)
        return Session(str(user.id), tokens)

    async def refresh(self, refresh_token: str) -> Session:
        invalid = Unauthenticated("REFRESH_TOKEN_INVALID", "the refresh token is not valid")
        if not refresh_token:
            raise InvalidArgument("REFRESH_TOKEN_REQUIRED", "refreshToken is required")
        now = self._clock()
        rotated = new_refresh_token()
        async with self._uow.transaction() as tx:
            conn = tx.repos
            session = await repository.lock_live_session(
                conn, refresh_token_digest(refresh_token), now
            )
            user = await repository.get_user(conn, session.user_id) if session else None
            if session is None or user is None or not user.is_active:
                raise invalid
            await repository.rotate_session_token(
                conn, session.id, refresh_token_digest(rotated), now + self._refresh_ttl
            )
        return self._session(user, session.id, rotated)

    async def logout(self, caller: Caller) -> None:
        async with self._uow.transaction() as tx:
            conn = tx.repos
            await self._end_sessions(
                conn, self._clock(), session_id=parse_uuid(caller.session_id, "sid")
            )

    async def _end_sessions(
        self,
        conn: AsyncConnection,
        now: datetime,
        *,
        session_id: uuid.UUID | None = None,
        user_id: uuid.UUID | None = None,
    ) -> None:
        """Revoke sessions; every service drops their access tokens on the events."""
        revoked = await repository.revoke_sessions(
            conn, now, session_id=session_id, user_id=user_id
        )
        for session in revoked:
            await add_event(
                conn,
                user_pb2.SessionRevoked(
                    session_id=str(session.id),
                    user_id=str(session.user_id),
                    occur_time=timestamp(now),
                ),
            )

    async def get_user(self, caller: Caller, user_id: str) -> UserRecord:
        target = parse_uuid(user_id, "userId")
        caller.require_self_or_admin(str(target))
        async with self._uow.read() as conn:
            user = await repository.get_user(conn, target)
        if user is None:
            raise NotFound("USER_NOT_FOUND", f"no user {target}")
        return user

    async def list_users(
        self, caller: Caller, requested_size: int, page_token: str
    ) -> tuple[list[UserRecord], str]:
        caller.require_admin()
        limit = page_size(requested_size)
        cursor = self._page_tokens.decode(page_token)
        after = (cursor.created_at, cursor.id) if cursor else None
        async with self._uow.read() as conn:
            users = await repository.list_users(conn, after, limit + 1)
        return self._page_tokens.page(users, limit, lambda user: Cursor(user.created_at, user.id))

    async def update_user(
        self, caller: Caller, user_id: str, change: domain.ProfileChange
    ) -> UserRecord:
        target = parse_uuid(user_id, "userId")
        domain.authorize_profile_change(caller, str(target), change)
        values: dict[str, object] = {}
        if change.email is not None:
            values["email"] = domain.normalize_email(change.email)
        if change.phone is not None:
            values["phone"] = domain.validate_phone(change.phone)
        if change.role is not None:
            values["role"] = change.role
        if change.is_active is not None:
            values["is_active"] = change.is_active
        return await self._change(target, values)

    async def deactivate_user(self, caller: Caller, user_id: str) -> UserRecord:
        """A user may close their own account; an administrator anyone's."""
        target = parse_uuid(user_id, "userId")
        caller.require_self_or_admin(str(target))
        return await self._change(target, {"is_active": False})

    async def _change(self, target: uuid.UUID, values: dict[str, object]) -> UserRecord:
        now = self._clock()
        async with self._uow.transaction() as tx:
            conn = tx.repos
            user = await repository.get_user(conn, target)
            if user is None:
                raise NotFound("USER_NOT_FOUND", f"no user {target}")
            changed = {key: value for key, value in values.items() if getattr(user, key) != value}
            if not changed:
                return user
            updated = await repository.update_user(conn, target, changed)
            assert updated is not None
            if changed.get("is_active") is False:
                await self._end_sessions(conn, now, user_id=target)
                await add_event(
                    conn, user_pb2.UserDeactivated(user_id=str(target), occur_time=timestamp(now))
                )
            await add_event(conn, _user_updated(updated))
        return updated
