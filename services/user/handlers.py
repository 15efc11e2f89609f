"""User Management use cases: each one transaction, its events in the outbox.

Handlers depend on the `UnitOfWork` protocol and the repositories of
`ports.py` only; their other dependencies (clock, password hashing, token
signing) come in through the constructor, so unit tests replace them all.
"""

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import partial

from warmhouse.user.v1 import user_pb2

from services.runtime.auth import Caller
from services.runtime.clock import Clock, utc_now
from services.runtime.errors import (
    AlreadyExists,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
)
from services.runtime.pagination import Cursor, PageTokens, page_size
from services.runtime.request import parse_uuid
from services.runtime.timestamps import timestamp
from services.runtime.unit_of_work import Transaction, UnitOfWork
from services.user import domain
from services.user.passwords import Argon2Passwords, Passwords
from services.user.ports import SessionRecord, UserRecord, UserRepositories
from services.user.tokens import (
    DeviceTokens,
    IssuedTokens,
    TokenIssuer,
    new_refresh_token,
    refresh_token_digest,
)

Tx = Transaction[UserRepositories]
# The listing page tokens of ListUsers are bound to.
_USERS = "users"


def _user_updated(user: UserRecord) -> user_pb2.UserUpdated:
    return user_pb2.UserUpdated(
        user_id=str(user.id),
        email=user.email,
        phone=user.phone,
        role=user_pb2.Role.Value(user.role),
        is_active=user.is_active,
        occur_time=timestamp(user.updated_at),
        locale=user.locale,
        time_zone=user.time_zone,
    )


def _invalid_credentials() -> Unauthenticated:
    # One answer whether the email or the password was wrong. A fresh
    # exception each time: a shared instance would carry tracebacks between
    # concurrent requests.
    return Unauthenticated("INVALID_CREDENTIALS", "email or password is incorrect")


def _invalid_refresh_token() -> Unauthenticated:
    return Unauthenticated("REFRESH_TOKEN_INVALID", "the refresh token is not valid")


@dataclass(frozen=True)
class Session:
    user_id: str
    tokens: IssuedTokens
    # Only a login issues one.
    device_token: str = ""


@dataclass(frozen=True)
class UserPolicies:
    """The User service's tunable rules (see bootstrap.UserSettings)."""

    # Sliding: each refresh moves a session's end this far ahead ...
    refresh_ttl: timedelta = timedelta(days=30)
    # ... but never past this long after its login.
    session_max_lifetime: timedelta = timedelta(days=90)
    login: domain.LoginThrottling = field(default_factory=domain.LoginThrottling)
    registrations: domain.ThrottlePolicy = domain.REGISTRATIONS_PER_CLIENT


def new_account(
    email: str,
    phone: str,
    password_hash: str,
    role: str,
    now: datetime,
    *,
    locale: str = domain.DEFAULT_LOCALE,
    time_zone: str = domain.DEFAULT_TIME_ZONE,
) -> UserRecord:
    """A new, active account, from checked fields."""
    return UserRecord(
        id=uuid.uuid4(),
        email=email,
        phone=phone,
        password_hash=password_hash,
        role=role,
        is_active=True,
        created_at=now,
        updated_at=now,
        locale=locale,
        time_zone=time_zone,
    )


async def store_new_account(uow: UnitOfWork[UserRepositories], user: UserRecord) -> None:
    """Store a new account and announce it, in one transaction."""
    async with uow.transaction() as tx:
        await tx.repos.users.add(user)
        await tx.add_event(
            user_pb2.UserRegistered(
                user_id=str(user.id),
                email=user.email,
                phone=user.phone,
                role=user_pb2.Role.Value(user.role),
                occur_time=timestamp(user.created_at),
                locale=user.locale,
                time_zone=user.time_zone,
            )
        )


class UserHandlers:
    def __init__(
        self,
        uow: UnitOfWork[UserRepositories],
        issuer: TokenIssuer,
        device_tokens: DeviceTokens,
        page_tokens: PageTokens,
        policies: UserPolicies | None = None,
        *,
        revoke_locally: Callable[[str], None],
        passwords: Passwords | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self._uow = uow
        self._issuer = issuer
        self._device_tokens = device_tokens
        self._page_tokens = page_tokens
        self._policies = policies or UserPolicies()
        self._passwords = passwords or Argon2Passwords()
        self._clock = clock
        # Tells this process' token verifier at once that a session ended
        # (other services learn it from the SessionRevoked event).
        self._revoke_locally = revoke_locally

    @property
    def jwks(self) -> list[dict[str, str]]:
        return self._issuer.jwks

    # Registration

    async def register(
        self,
        email: str,
        password: str,
        phone: str,
        client: str,
        *,
        locale: str = "",
        time_zone: str = "",
    ) -> UserRecord:
        """A new account with role USER; at most so many per client address.
        An empty locale is "en", an empty time zone "UTC"."""
        email, phone = domain.valid_account(email, password, phone, domain.ROLE_USER)
        locale, time_zone = domain.valid_preferences(locale, time_zone)
        await self._count_attempt(
            {domain.registration_key(client): self._policies.registrations},
            "TOO_MANY_REGISTRATIONS",
            "too many registrations from this address; try again later",
        )
        return await self._create(
            email, password, phone, domain.ROLE_USER, locale=locale, time_zone=time_zone
        )

    async def ensure_admin(self, email: str, password: str, phone: str) -> bool:
        """Create the first administrator unless an account with that email exists."""
        email, phone = domain.valid_account(email, password, phone, domain.ROLE_ADMIN)
        async with self._uow.read() as repos:
            if await repos.users.find_by_email(email):
                return False
        try:
            await self._create(email, password, phone, domain.ROLE_ADMIN)
        except AlreadyExists:
            return False  # another replica, starting at the same moment, made it
        return True

    async def _create(
        self,
        email: str,
        password: str,
        phone: str,
        role: str,
        *,
        locale: str = domain.DEFAULT_LOCALE,
        time_zone: str = domain.DEFAULT_TIME_ZONE,
    ) -> UserRecord:
        password_hash = await self._passwords.hash(password)
        user = new_account(
            email, phone, password_hash, role, self._clock(), locale=locale, time_zone=time_zone
        )
        await store_new_account(self._uow, user)
        return user

    # Throttling: an attempt is counted before it is checked, so concurrent
    # attempts cannot all slip in under the limit.

    async def _count_attempt(
        self, keys: Mapping[str, domain.ThrottlePolicy], reason: str, message: str
    ) -> None:
        """Count one attempt on every key (committed before the costly check
        that follows), or raise Throttled and count nothing."""
        now = self._clock()
        async with self._uow.transaction() as tx:
            states = await tx.repos.throttles.lock(list(keys), now)
            for key, state in domain.count_attempt(states, keys, now, reason, message).items():
                await tx.repos.throttles.save(key, state)

    async def _attempt_failed(self, keys: Mapping[str, domain.ThrottlePolicy]) -> None:
        now = self._clock()
        async with self._uow.transaction() as tx:
            states = await tx.repos.throttles.lock(list(keys), now)
            for key, policy in keys.items():
                after = domain.after_failure(states.get(key), now, policy)
                await tx.repos.throttles.save(key, after)

    async def _forgive_attempt(self, tx: Tx, keys: Mapping[str, domain.ThrottlePolicy]) -> None:
        states = await tx.repos.throttles.lock(list(keys), self._clock())
        for key in keys:
            if key in states:
                await tx.repos.throttles.save(key, domain.after_success(states[key]))

    # Sessions

    async def login(
        self, method: int, email: str, password: str, client: str, device_token: str = ""
    ) -> Session:
        if method not in (user_pb2.AUTH_METHOD_UNSPECIFIED, user_pb2.EMAIL):
            raise InvalidArgument(
                "AUTH_METHOD_NOT_SUPPORTED", "only the EMAIL auth method is available"
            )
        domain.require_text(email, "email", domain.EMAIL_MAX_LENGTH, required=True)
        domain.require_text(password, "password", domain.PASSWORD_MAX_LENGTH)
        if not password:
            raise InvalidArgument("FIELD_REQUIRED", "password is required", field="password")
        domain.require_text(device_token, "deviceToken", domain.DEVICE_TOKEN_MAX_LENGTH)
        email = domain.login_email(email)
        async with self._uow.read() as repos:
            user = await repos.users.find_by_email(email)
        device = self._device_tokens.read(device_token, self._clock()) if device_token else None
        throttling = self._policies.login
        if device is not None and user is not None and device.user_id == user.id:
            keys = throttling.device_keys(device.device_id)
        else:
            keys = throttling.keys(email, client)
        await self._count_attempt(
            keys, "TOO_MANY_LOGIN_FAILURES", "too many failed logins; try again later"
        )
        password_ok = await self._passwords.verify(user.password_hash if user else None, password)
        if user is None or not password_ok or not user.is_active:
            await self._attempt_failed(keys)
            raise _invalid_credentials()
        now = self._clock()
        session = SessionRecord(
            id=uuid.uuid4(),
            user_id=user.id,
            token_digest="",
            created_at=now,
            expires_at=now + min(self._policies.refresh_ttl, self._policies.session_max_lifetime),
        )
        refresh_token = new_refresh_token()
        async with self._uow.transaction() as tx:
            # Locked: a deactivation or role change either sees this session
            # and ends it, or commits first and this login sees its outcome.
            current = await tx.repos.users.get(user.id, lock=True)
            if current is None or not current.is_active:
                raise _invalid_credentials()
            await self._forgive_attempt(tx, keys)
            await tx.repos.sessions.add(
                replace(session, token_digest=refresh_token_digest(refresh_token))
            )
        issued = self._session(current, session.id, refresh_token)
        return replace(issued, device_token=self._device_tokens.issue(user.id, now))

    def _session(self, user: UserRecord, session_id: uuid.UUID, refresh_token: str) -> Session:
        access_token = self._issuer.access_token(str(user.id), user.role, str(session_id))
        tokens = IssuedTokens(access_token, refresh_token, self._issuer.access_ttl_seconds)
        return Session(str(user.id), tokens)

    async def refresh(self, refresh_token: str) -> Session:
        """Rotate the refresh token. Presenting one already rotated out means
        someone else holds the session too: the whole session ends."""
        domain.require_text(refresh_token, "refreshToken", domain.REFRESH_TOKEN_MAX_LENGTH)
        if not refresh_token:
            raise InvalidArgument(
                "REFRESH_TOKEN_REQUIRED", "refreshToken is required", field="refreshToken"
            )
        now = self._clock()
        rotated = new_refresh_token()
        reused, user = False, None
        async with self._uow.transaction() as tx:
            found = await tx.repos.sessions.find_by_token(refresh_token_digest(refresh_token))
            if found is None or found.session.revoked_at is not None:
                raise _invalid_refresh_token()
            session = found.session
            if not found.current:
                # Committed, not rolled back: the refusal below comes after.
                await self._end_sessions(tx, now, [await tx.repos.sessions.revoke(session.id, now)])
                reused = True
            else:
                ends_at = session.created_at + self._policies.session_max_lifetime
                if now >= min(session.expires_at, ends_at):
                    raise _invalid_refresh_token()
                user = await tx.repos.users.get(session.user_id)
                if user is None or not user.is_active:
                    raise _invalid_refresh_token()
                await tx.repos.sessions.rotate(
                    session,
                    refresh_token_digest(rotated),
                    min(now + self._policies.refresh_ttl, ends_at),
                    now,
                )
        if reused or user is None:
            raise Unauthenticated(
                "REFRESH_TOKEN_INVALID", "the refresh token was already used; the session has ended"
            )
        return self._session(user, session.id, rotated)

    async def logout(self, caller: Caller) -> None:
        session_id = parse_uuid(caller.session_id, "sid")
        now = self._clock()
        async with self._uow.transaction() as tx:
            ended = await tx.repos.sessions.revoke(session_id, now)
            if ended is None:
                # Ended already, but its token still reached us: refuse it from now on.
                tx.after_commit(partial(self._revoke_locally, str(session_id)))
            await self._end_sessions(tx, now, [ended])

    async def _end_sessions(
        self, tx: Tx, now: datetime, ended: Sequence[SessionRecord | None]
    ) -> None:
        """Announce ended sessions: every service drops their access tokens on
        the event, this process right after the commit."""
        for session in ended:
            if session is None:
                continue
            await tx.add_event(
                user_pb2.SessionRevoked(
                    session_id=str(session.id),
                    user_id=str(session.user_id),
                    occur_time=timestamp(now),
                )
            )
            tx.after_commit(partial(self._revoke_locally, str(session.id)))

    # Profiles

    async def get_user(self, caller: Caller, user_id: str) -> UserRecord:
        target = parse_uuid(user_id, "userId")
        caller.require_self_or_admin(str(target))
        async with self._uow.read() as repos:
            user = await repos.users.get(target)
        if user is None:
            raise NotFound("USER_NOT_FOUND", f"no user {target}")
        return user

    async def user_status(self, user_id: str) -> UserRecord:
        """For other services (internal): whether an account exists and is active."""
        target = parse_uuid(user_id, "userId")
        async with self._uow.read() as repos:
            user = await repos.users.get(target)
        if user is None:
            raise NotFound("USER_NOT_FOUND", "no such user")
        return user

    async def list_users(
        self, caller: Caller, requested_size: int, page_token: str
    ) -> tuple[list[UserRecord], str]:
        caller.require_admin()
        limit = page_size(requested_size)
        cursor = self._page_tokens.decode(page_token, listing=_USERS)
        async with self._uow.read() as repos:
            users = await repos.users.list(cursor, limit + 1)
        return self._page_tokens.page(
            users, limit, lambda user: Cursor(user.created_at, user.id), listing=_USERS
        )

    async def update_user(
        self, caller: Caller, user_id: str, change: domain.ProfileChange
    ) -> UserRecord:
        change.check_bounds()
        target = parse_uuid(user_id, "userId")
        domain.authorize_profile_change(caller, str(target), change)
        email = domain.normalize_email(change.email) if change.email is not None else None
        phone = domain.validate_phone(change.phone) if change.phone is not None else None
        locale = domain.validate_locale(change.locale) if change.locale is not None else None
        time_zone = (
            domain.validate_time_zone(change.time_zone) if change.time_zone is not None else None
        )
        if email is not None and domain.needs_current_password(caller, str(target)):
            await self._confirm_password(target, email, change.current_password)
        return await self._change(
            caller,
            target,
            admin_only=change.role is not None or change.is_active is not None,
            email=email,
            phone=phone,
            role=change.role,
            is_active=change.is_active,
            locale=locale,
            time_zone=time_zone,
        )

    async def _confirm_password(
        self, user_id: uuid.UUID, new_email: str, password: str | None
    ) -> None:
        """Changing one's email takes one's password (a stolen access token is
        not enough to take over the account); guesses are throttled."""
        async with self._uow.read() as repos:
            user = await repos.users.get(user_id)
        if user is None:
            raise NotFound("USER_NOT_FOUND", f"no user {user_id}")
        if user.email == new_email:
            return
        if not password:
            raise InvalidArgument(
                "CURRENT_PASSWORD_REQUIRED",
                "changing your email takes your current password",
                field="currentPassword",
            )
        keys = {domain.password_check_key(str(user_id)): self._policies.login.account_from_client}
        await self._count_attempt(
            keys, "TOO_MANY_PASSWORD_FAILURES", "too many wrong passwords; try again later"
        )
        if not await self._passwords.verify(user.password_hash, password):
            await self._attempt_failed(keys)
            raise PermissionDenied(
                "CURRENT_PASSWORD_INCORRECT", "the current password is not correct"
            )
        async with self._uow.transaction() as tx:
            await self._forgive_attempt(tx, keys)

    async def deactivate_user(self, caller: Caller, user_id: str) -> UserRecord:
        """A user may close their own account; an administrator anyone's."""
        target = parse_uuid(user_id, "userId")
        caller.require_self_or_admin(str(target))
        return await self._change(caller, target, admin_only=False, is_active=False)

    async def _lock_parties(
        self,
        tx: Transaction[UserRepositories],
        caller: Caller,
        target: uuid.UUID,
        *,
        admin_only: bool,
    ) -> UserRecord:
        """Lock the caller's and the target's rows (in id order, so two admins
        changing each other take turns) and check the caller's rights against
        its row as it is now, not against the role its token was issued with."""
        caller_id = caller.user_uuid
        rows = {
            user_id: await tx.repos.users.get(user_id, lock=True)
            for user_id in sorted({caller_id, target})
        }
        acting = rows[caller_id]
        if acting is None or not acting.is_active:
            raise Unauthenticated("TOKEN_REVOKED", "the session has ended; log in again")
        current = replace(caller, role=acting.role)
        current.require_self_or_admin(str(target))
        if admin_only:
            current.require_admin()
        user = rows[target]
        if user is None:
            raise NotFound("USER_NOT_FOUND", f"no user {target}")
        return user

    async def _change(
        self,
        caller: Caller,
        target: uuid.UUID,
        *,
        admin_only: bool,
        email: str | None = None,
        phone: str | None = None,
        role: str | None = None,
        is_active: bool | None = None,
        locale: str | None = None,
        time_zone: str | None = None,
    ) -> UserRecord:
        now = self._clock()
        async with self._uow.transaction() as tx:
            user = await self._lock_parties(tx, caller, target, admin_only=admin_only)
            changed = replace(
                user,
                email=user.email if email is None else email,
                phone=user.phone if phone is None else phone,
                role=user.role if role is None else role,
                is_active=user.is_active if is_active is None else is_active,
                locale=user.locale if locale is None else locale,
                time_zone=user.time_zone if time_zone is None else time_zone,
            )
            if changed == user:
                return user
            updated = replace(changed, updated_at=now)
            await tx.repos.users.save(updated)
            sessions = tx.repos.sessions
            deactivated = user.is_active and not updated.is_active
            if updated.role != user.role or deactivated:
                # Tokens carry the role: every session ends, the caller's too.
                await self._end_sessions(tx, now, await sessions.revoke_all(target, now))
            elif updated.email != user.email:
                # Other devices must log in again with the new email; not the caller.
                own = caller.user_id == str(target)
                keep = parse_uuid(caller.session_id, "sid") if own else None
                await self._end_sessions(tx, now, await sessions.revoke_all(target, now, keep=keep))
            if deactivated:
                await tx.add_event(
                    user_pb2.UserDeactivated(user_id=str(target), occur_time=timestamp(now))
                )
            await tx.add_event(_user_updated(updated))
        return updated
