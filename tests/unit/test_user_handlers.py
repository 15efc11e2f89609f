"""The User service's use cases on in-memory repositories: no database, no broker."""

import uuid
from dataclasses import replace
from datetime import timedelta
from typing import TypeVar

import jwt
import pytest
from google.protobuf.message import Message
from warmhouse.user.v1 import user_pb2

from services.runtime.auth import Caller
from services.runtime.errors import (
    AlreadyExists,
    InvalidArgument,
    PermissionDenied,
    Throttled,
    Unauthenticated,
)
from services.user.domain import (
    LoginThrottling,
    ProfileChange,
    ThrottlePolicy,
    account_client_key,
)
from services.user.handlers import Session, UserPolicies
from services.user.ports import UserRecord
from services.user.pruning import Pruner
from tests.unit.user_fakes import UserWorld, user_world

PASSWORD = "correct horse battery staple"
PHONE = "+15551234567"
ATTACKER, OWNER = "203.0.113.9", "198.51.100.7"
SMALL = ThrottlePolicy(3, timedelta(minutes=15), timedelta(minutes=15))


M = TypeVar("M", bound=Message)


def events(world: UserWorld, kind: type[M]) -> list[M]:
    """The events of that kind the committed transactions wrote, in order."""
    return [event for event in world.uow.events if isinstance(event, kind)]


@pytest.fixture
def world() -> UserWorld:
    return user_world()


async def register(world: UserWorld, email: str = "ann@example.com") -> UserRecord:
    return await world.handlers.register(email, PASSWORD, PHONE, OWNER)


async def login(
    world: UserWorld,
    email: str = "ann@example.com",
    password: str = PASSWORD,
    client: str = OWNER,
    device_token: str = "",
) -> Session:
    return await world.handlers.login(user_pb2.EMAIL, email, password, client, device_token)


def caller_of(session: Session) -> Caller:
    claims = jwt.decode(session.tokens.access_token, options={"verify_signature": False})
    return Caller(user_id=claims["sub"], role=claims["role"], session_id=claims["sid"])


async def admin(world: UserWorld) -> Caller:
    await world.handlers.ensure_admin("root@example.com", "an admin passphrase", "")
    return caller_of(await login(world, "root@example.com", "an admin passphrase"))


# Registration


async def test_register_stores_a_normalized_account_and_announces_it(world: UserWorld) -> None:
    user = await world.handlers.register(" Ann@Example.COM ", PASSWORD, PHONE, OWNER)
    assert user.email == "ann@example.com"
    assert user.role == "USER"
    assert world.users.rows[user.id].password_hash == f"plain:{PASSWORD}"
    [event] = events(world, user_pb2.UserRegistered)
    assert event == user_pb2.UserRegistered(
        user_id=str(user.id),
        email="ann@example.com",
        phone=PHONE,
        role=user_pb2.USER,
        occur_time=event.occur_time,
        locale="en",
        time_zone="UTC",
    )


async def test_register_keeps_the_locale_and_time_zone_given(world: UserWorld) -> None:
    user = await world.handlers.register(
        "ann@example.com", PASSWORD, PHONE, OWNER, locale="ru", time_zone="Europe/Moscow"
    )
    assert (user.locale, user.time_zone) == ("ru", "Europe/Moscow")
    assert world.users.rows[user.id] == user
    [event] = events(world, user_pb2.UserRegistered)
    assert (event.locale, event.time_zone) == ("ru", "Europe/Moscow")


@pytest.mark.parametrize(
    ("locale", "time_zone", "reason"),
    [
        ("de", "", "INVALID_LOCALE"),
        ("EN", "", "INVALID_LOCALE"),
        ("ru", "localtime", "INVALID_TIME_ZONE"),
        ("", "posix/Europe/Moscow", "INVALID_TIME_ZONE"),
        ("", "Europe/" + "x" * 6000, "INVALID_TIME_ZONE"),
    ],
)
async def test_a_bad_locale_or_time_zone_refuses_the_registration_first(
    world: UserWorld, locale: str, time_zone: str, reason: str
) -> None:
    with pytest.raises(InvalidArgument) as refused:
        await world.handlers.register(
            "ann@example.com", PASSWORD, PHONE, OWNER, locale=locale, time_zone=time_zone
        )
    assert refused.value.reason == reason
    assert "x" * 10 not in refused.value.message
    assert not world.throttles.rows
    assert not world.users.rows
    assert world.uow.commits == 0


async def test_an_email_registers_once(world: UserWorld) -> None:
    await register(world)
    with pytest.raises(AlreadyExists):
        await register(world, "ANN@example.com")


@pytest.mark.parametrize(
    ("email", "password", "phone", "reason"),
    [
        ("a\x00b@example.com", PASSWORD, PHONE, "INVALID_CHARACTERS"),
        ("a" * 3000 + "@example.com", PASSWORD, PHONE, "FIELD_TOO_LONG"),
        ("ann@example.com", "x" * 6000, PHONE, "FIELD_TOO_LONG"),
        ("ann@example.com", "pass\x00word long", PHONE, "INVALID_CHARACTERS"),
        ("ann@example.com", PASSWORD, "+1" + "5" * 3000, "FIELD_TOO_LONG"),
        ("a..b@example.com", PASSWORD, PHONE, "INVALID_EMAIL"),
        ("a@-example-.com", PASSWORD, PHONE, "INVALID_EMAIL"),
        ("ann@example.com", "        ", PHONE, "WEAK_PASSWORD"),
        ("ann@example.com", "aaaaaaaa", PHONE, "WEAK_PASSWORD"),
    ],
)
async def test_bad_registrations_cost_neither_a_query_nor_a_hash(
    world: UserWorld, email: str, password: str, phone: str, reason: str
) -> None:
    with pytest.raises(InvalidArgument) as refused:
        await world.handlers.register(email, password, phone, OWNER)
    assert refused.value.reason == reason
    assert len(refused.value.message) < 200
    assert not world.throttles.rows
    assert not world.users.rows
    assert world.uow.commits == 0


async def test_registrations_are_throttled_per_client(world: UserWorld) -> None:
    for n in range(10):
        await world.handlers.register(f"u{n}@example.com", PASSWORD, PHONE, ATTACKER)
    with pytest.raises(Throttled) as refused:
        await world.handlers.register("u10@example.com", PASSWORD, PHONE, ATTACKER)
    assert refused.value.reason == "TOO_MANY_REGISTRATIONS"
    assert 0 < int(refused.value.metadata["retryAfterSeconds"]) <= 3600
    assert len(world.users.rows) == 10
    # Another address is not affected; the same one may again an hour later.
    await world.handlers.register("other@example.com", PASSWORD, PHONE, OWNER)
    world.clock.advance(hours=1)
    await world.handlers.register("u10@example.com", PASSWORD, PHONE, ATTACKER)


async def test_the_first_admin_is_not_throttled_and_created_once(world: UserWorld) -> None:
    world = user_world(UserPolicies(registrations=replace(SMALL, max_failures=1)))
    assert await world.handlers.ensure_admin("root@example.com", "an admin passphrase", "")
    assert not await world.handlers.ensure_admin("root@example.com", "an admin passphrase", "")
    [root] = world.users.rows.values()
    assert root.role == "ADMIN"
    assert not world.throttles.rows


async def test_a_replica_that_loses_the_race_to_create_the_first_admin_still_starts(
    world: UserWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert await world.handlers.ensure_admin("root@example.com", "an admin passphrase", "")

    async def not_seen_yet(email: str) -> None:
        # The other replica's insert lands between this one's look-up and its own.
        return None

    monkeypatch.setattr(world.users, "find_by_email", not_seen_yet)
    assert not await world.handlers.ensure_admin("root@example.com", "an admin passphrase", "")
    assert len(world.users.rows) == 1


# Login


async def test_login_opens_a_session_and_hands_out_a_device_token(world: UserWorld) -> None:
    user = await register(world)
    session = await login(world, "ANN@example.com")
    assert session.user_id == str(user.id)
    assert session.device_token
    caller = caller_of(session)
    assert caller.user_id == str(user.id)
    assert caller.role == "USER"
    [stored] = world.sessions.live(user.id)
    assert str(stored.id) == caller.session_id
    assert stored.expires_at == world.clock.now + timedelta(days=30)


async def test_wrong_email_and_wrong_password_are_the_same_refusal(world: UserWorld) -> None:
    await register(world)
    with pytest.raises(Unauthenticated) as wrong_password:
        await login(world, password="not the password")
    with pytest.raises(Unauthenticated) as wrong_email:
        await login(world, "bob@example.com")
    assert wrong_password.value.reason == wrong_email.value.reason == "INVALID_CREDENTIALS"
    assert wrong_password.value.message == wrong_email.value.message


@pytest.mark.parametrize(
    ("method", "email", "password", "device_token"),
    [
        (7, "ann@example.com", PASSWORD, ""),
        (user_pb2.SMS, "ann@example.com", PASSWORD, ""),
        (user_pb2.EMAIL, "a\x00@example.com", PASSWORD, ""),
        (user_pb2.EMAIL, "a" * 3000, PASSWORD, ""),
        (user_pb2.EMAIL, "ann@example.com", "", ""),
        (user_pb2.EMAIL, "ann@example.com", "p" * 129, ""),
        (user_pb2.EMAIL, "ann@example.com", PASSWORD, "d" * 257),
        (user_pb2.EMAIL, "ann@example.com", PASSWORD, "a.b\x00"),
    ],
)
async def test_malformed_logins_are_refused_before_counting_or_hashing(
    world: UserWorld, method: int, email: str, password: str, device_token: str
) -> None:
    with pytest.raises(InvalidArgument) as refused:
        await world.handlers.login(method, email, password, OWNER, device_token)
    assert email not in refused.value.message
    assert world.passwords.checks == 0
    assert not world.throttles.rows


async def test_failures_lock_the_account_for_that_client_only(world: UserWorld) -> None:
    await register(world)
    for _ in range(5):
        with pytest.raises(Unauthenticated):
            await login(world, password="guess guess", client=ATTACKER)
    with pytest.raises(Throttled) as locked:
        await login(world, client=ATTACKER)
    assert locked.value.reason == "TOO_MANY_LOGIN_FAILURES"
    assert world.passwords.checks == 5, "a locked key's attempt is refused unchecked"
    assert (await login(world, client=OWNER)).tokens.access_token
    world.clock.advance(minutes=15)
    assert (await login(world, client=ATTACKER)).tokens.access_token


async def test_a_failure_never_clears_or_renews_an_active_lock(world: UserWorld) -> None:
    await register(world)
    for _ in range(5):
        with pytest.raises(Unauthenticated):
            await login(world, password="guess guess", client=ATTACKER)
    key = account_client_key("ann@example.com", ATTACKER)
    locked_until = world.throttles.rows[key].locked_until
    assert locked_until is not None
    # Its window has passed, the lock has not: still locked, still the same end.
    world.clock.advance(minutes=14)
    with pytest.raises(Throttled):
        await login(world, password="guess again", client=ATTACKER)
    assert world.throttles.rows[key].locked_until == locked_until


async def test_success_forgives_only_its_own_count(world: UserWorld) -> None:
    await register(world)
    for _ in range(4):
        with pytest.raises(Unauthenticated):
            await login(world, password="typo typo", client=OWNER)
    await login(world, client=OWNER)
    assert world.throttles.rows[account_client_key("ann@example.com", OWNER)].failures == 4
    with pytest.raises(Unauthenticated):
        await login(world, password="typo typo", client=OWNER)
    with pytest.raises(Throttled):
        await login(world, client=OWNER)


async def test_a_stranger_cannot_lock_out_a_device_the_owner_used(world: UserWorld) -> None:
    world = user_world(UserPolicies(login=LoginThrottling(account=SMALL)))
    await register(world)
    device_token = (await login(world)).device_token
    # Strangers from three addresses reach the per-account limit ...
    for client in ("203.0.113.1", "203.0.113.2", "203.0.113.3"):
        with pytest.raises(Unauthenticated):
            await login(world, password="guess guess", client=client)
    # ... which now refuses every login without a device token, the owner's too ...
    with pytest.raises(Throttled):
        await login(world, client="203.0.113.4")
    with pytest.raises(Throttled):
        await login(world, client=OWNER)
    # ... but not the owner's device, which also gets a fresh token.
    session = await login(world, client=OWNER, device_token=device_token)
    assert session.tokens.access_token
    assert session.device_token != device_token


async def test_only_a_genuine_device_token_of_that_account_exempts(world: UserWorld) -> None:
    world = user_world(UserPolicies(login=LoginThrottling(account=SMALL)))
    await register(world)
    await register(world, "bob@example.com")
    bobs_device = (await login(world, "bob@example.com")).device_token
    anns_device = (await login(world)).device_token
    for _ in range(3):
        with pytest.raises(Unauthenticated):
            await login(world, password="guess guess", client=ATTACKER)
    payload, _, signature = anns_device.rpartition(".")
    forged = f"{payload}.{'A' * len(signature)}"
    for token in (bobs_device, forged, "garbage", "a.b.c.d"):
        with pytest.raises(Throttled):
            await login(world, device_token=token)


async def test_a_device_token_has_its_own_failure_limit(world: UserWorld) -> None:
    await register(world)
    device_token = (await login(world)).device_token
    for _ in range(10):
        with pytest.raises(Unauthenticated):
            await login(world, password="stolen token, guessing", device_token=device_token)
    with pytest.raises(Throttled):
        await login(world, device_token=device_token)
    # Locking the device token locked nothing else.
    assert (await login(world, client=ATTACKER)).tokens.access_token


async def test_an_inactive_account_cannot_log_in(world: UserWorld) -> None:
    user = await register(world)
    world.users.rows[user.id] = replace(user, is_active=False)
    with pytest.raises(Unauthenticated) as refused:
        await login(world)
    assert refused.value.reason == "INVALID_CREDENTIALS"
    assert not world.sessions.live(user.id)


# Refresh


async def test_refresh_rotates_and_a_reused_token_ends_the_session(world: UserWorld) -> None:
    await register(world)
    first = await login(world)
    sid = caller_of(first).session_id
    second = await world.handlers.refresh(first.tokens.refresh_token)
    assert second.tokens.refresh_token != first.tokens.refresh_token
    assert caller_of(second).session_id == sid
    assert not events(world, user_pb2.SessionRevoked)
    # Someone presents the rotated-out token: the session ends for everyone.
    with pytest.raises(Unauthenticated) as reused:
        await world.handlers.refresh(first.tokens.refresh_token)
    assert reused.value.reason == "REFRESH_TOKEN_INVALID"
    [event] = events(world, user_pb2.SessionRevoked)
    assert event.session_id == sid
    assert world.revoked_locally == [sid]
    with pytest.raises(Unauthenticated):
        await world.handlers.refresh(second.tokens.refresh_token)


async def test_a_session_ends_when_not_refreshed_in_time(world: UserWorld) -> None:
    await register(world)
    session = await login(world)
    world.clock.advance(days=30)
    with pytest.raises(Unauthenticated):
        await world.handlers.refresh(session.tokens.refresh_token)


async def test_a_session_ends_at_its_absolute_lifetime_however_often_refreshed(
    world: UserWorld,
) -> None:
    world = user_world(
        UserPolicies(refresh_ttl=timedelta(days=7), session_max_lifetime=timedelta(days=20))
    )
    user = await register(world)
    token = (await login(world)).tokens.refresh_token
    for _ in range(3):
        world.clock.advance(days=6)
        token = (await world.handlers.refresh(token)).tokens.refresh_token
    [session] = world.sessions.live(user.id)
    assert session.expires_at == session.created_at + timedelta(days=20)
    world.clock.advance(days=2)
    with pytest.raises(Unauthenticated):
        await world.handlers.refresh(token)


@pytest.mark.parametrize(
    ("token", "error"),
    [
        ("", InvalidArgument),
        ("r" * 3000, InvalidArgument),
        ("r\x00", InvalidArgument),
        ("unknown", Unauthenticated),
    ],
)
async def test_bad_refresh_tokens_are_refused(
    world: UserWorld, token: str, error: type[Exception]
) -> None:
    with pytest.raises(error):
        await world.handlers.refresh(token)


# Logout, role changes, deactivation, email changes


async def test_logout_ends_the_session_here_at_once_and_everywhere_by_event(
    world: UserWorld,
) -> None:
    await register(world)
    session = await login(world)
    other = await login(world)
    await world.handlers.logout(caller_of(session))
    sid = caller_of(session).session_id
    assert world.revoked_locally == [sid]
    assert [e.session_id for e in events(world, user_pb2.SessionRevoked)] == [sid]
    with pytest.raises(Unauthenticated):
        await world.handlers.refresh(session.tokens.refresh_token)
    assert await world.handlers.refresh(other.tokens.refresh_token)


async def test_a_role_change_ends_every_session_of_that_user(world: UserWorld) -> None:
    root = await admin(world)
    user = await register(world)
    sessions = [caller_of(await login(world)).session_id for _ in range(2)]
    promoted = await world.handlers.update_user(root, str(user.id), ProfileChange(role="ADMIN"))
    assert promoted.role == "ADMIN"
    assert sorted(world.revoked_locally) == sorted(sessions)
    revoked = {e.session_id for e in events(world, user_pb2.SessionRevoked)}
    assert revoked == set(sessions)
    assert not world.sessions.live(user.id)
    # Logging in again gives a token with the new role.
    assert caller_of(await login(world)).role == "ADMIN"


async def test_demotion_ends_the_demoted_admins_sessions(world: UserWorld) -> None:
    root = await admin(world)
    user = await register(world)
    await world.handlers.update_user(root, str(user.id), ProfileChange(role="ADMIN"))
    second_admin = caller_of(await login(world))
    await world.handlers.update_user(root, str(user.id), ProfileChange(role="USER"))
    assert second_admin.session_id in world.revoked_locally
    assert not world.sessions.live(user.id)
    assert world.sessions.live(uuid.UUID(root.user_id)), "the demoting admin keeps theirs"


async def test_an_admin_token_of_a_demoted_admin_grants_nothing(world: UserWorld) -> None:
    """Rights come from the caller's account as it is now; a token still
    naming ADMIN (in flight while its holder was demoted) is not enough."""
    root = await admin(world)
    user = await register(world)
    other = await register(world, "bob@example.com")
    await world.handlers.update_user(root, str(user.id), ProfileChange(role="ADMIN"))
    stale = caller_of(await login(world))
    await world.handlers.update_user(root, str(user.id), ProfileChange(role="USER"))
    for change in (ProfileChange(role="ADMIN"), ProfileChange(is_active=False)):
        with pytest.raises(PermissionDenied):
            await world.handlers.update_user(stale, str(other.id), change)
    with pytest.raises(PermissionDenied):
        await world.handlers.update_user(stale, str(user.id), ProfileChange(role="ADMIN"))
    with pytest.raises(PermissionDenied):
        await world.handlers.deactivate_user(stale, str(other.id))


async def test_deactivation_ends_every_session_and_is_announced(world: UserWorld) -> None:
    user = await register(world)
    session = await login(world)
    await world.handlers.deactivate_user(caller_of(session), str(user.id))
    assert world.revoked_locally == [caller_of(session).session_id]
    assert [e.user_id for e in events(world, user_pb2.UserDeactivated)] == [str(user.id)]
    [updated] = events(world, user_pb2.UserUpdated)
    assert not updated.is_active
    with pytest.raises(Unauthenticated):
        await login(world)


async def test_changing_ones_email_takes_the_current_password(world: UserWorld) -> None:
    user = await register(world)
    me = caller_of(await login(world))
    other_device = caller_of(await login(world))
    change = ProfileChange(email="ann.new@example.com")
    with pytest.raises(InvalidArgument) as missing:
        await world.handlers.update_user(me, str(user.id), change)
    assert missing.value.reason == "CURRENT_PASSWORD_REQUIRED"
    with pytest.raises(PermissionDenied) as wrong:
        await world.handlers.update_user(
            me, str(user.id), replace(change, current_password="not it at all")
        )
    assert wrong.value.reason == "CURRENT_PASSWORD_INCORRECT"
    assert world.users.rows[user.id].email == "ann@example.com"
    updated = await world.handlers.update_user(
        me, str(user.id), replace(change, current_password=PASSWORD)
    )
    assert updated.email == "ann.new@example.com"
    # The other device must log in again; the calling session goes on.
    assert world.revoked_locally == [other_device.session_id]
    assert [str(s.id) for s in world.sessions.live(user.id)] == [me.session_id]


async def test_guessing_the_current_password_is_throttled(world: UserWorld) -> None:
    user = await register(world)
    me = caller_of(await login(world))
    change = ProfileChange(email="ann.new@example.com", current_password="guess guess")
    for _ in range(5):
        with pytest.raises(PermissionDenied):
            await world.handlers.update_user(me, str(user.id), change)
    with pytest.raises(Throttled):
        await world.handlers.update_user(
            me, str(user.id), replace(change, current_password=PASSWORD)
        )


async def test_an_admin_changes_someone_elses_email_without_their_password(
    world: UserWorld,
) -> None:
    root = await admin(world)
    user = await register(world)
    theirs = caller_of(await login(world)).session_id
    updated = await world.handlers.update_user(
        root, str(user.id), ProfileChange(email="Moved@Example.com")
    )
    assert updated.email == "moved@example.com"
    assert world.revoked_locally == [theirs]
    assert world.sessions.live(uuid.UUID(root.user_id))


async def test_keeping_the_same_email_needs_no_password_and_changes_nothing(
    world: UserWorld,
) -> None:
    user = await register(world)
    me = caller_of(await login(world))
    same = await world.handlers.update_user(
        me, str(user.id), ProfileChange(email="ANN@example.com")
    )
    assert same == world.users.rows[user.id]
    assert not events(world, user_pb2.UserUpdated)


async def test_users_change_their_locale_and_time_zone_and_it_is_announced_whole(
    world: UserWorld,
) -> None:
    user = await register(world)
    me = caller_of(await login(world))
    updated = await world.handlers.update_user(me, str(user.id), ProfileChange(locale="ru"))
    assert (updated.locale, updated.time_zone) == ("ru", "UTC")
    updated = await world.handlers.update_user(
        me, str(user.id), ProfileChange(time_zone="Asia/Vladivostok")
    )
    assert (updated.locale, updated.time_zone) == ("ru", "Asia/Vladivostok")
    assert world.users.rows[user.id] == updated
    # Each event carries every current value, not only what changed.
    assert [
        (e.email, e.phone, e.locale, e.time_zone) for e in events(world, user_pb2.UserUpdated)
    ] == [
        ("ann@example.com", PHONE, "ru", "UTC"),
        ("ann@example.com", PHONE, "ru", "Asia/Vladivostok"),
    ]
    # No sessions end for it.
    assert not world.revoked_locally


async def test_an_admin_changes_someone_elses_locale_and_time_zone(world: UserWorld) -> None:
    root = await admin(world)
    user = await register(world)
    updated = await world.handlers.update_user(
        root, str(user.id), ProfileChange(locale="ru", time_zone="Europe/Moscow")
    )
    assert (updated.locale, updated.time_zone) == ("ru", "Europe/Moscow")
    [event] = events(world, user_pb2.UserUpdated)
    assert (event.user_id, event.locale, event.time_zone) == (str(user.id), "ru", "Europe/Moscow")


async def test_nobody_else_changes_a_users_locale(world: UserWorld) -> None:
    user = await register(world)
    await register(world, "bob@example.com")
    bob = caller_of(await login(world, "bob@example.com"))
    with pytest.raises(PermissionDenied):
        await world.handlers.update_user(bob, str(user.id), ProfileChange(locale="ru"))
    assert world.users.rows[user.id].locale == "en"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (ProfileChange(locale=""), "INVALID_LOCALE"),
        (ProfileChange(locale="de"), "INVALID_LOCALE"),
        (ProfileChange(locale="RU"), "INVALID_LOCALE"),
        (ProfileChange(time_zone=""), "INVALID_TIME_ZONE"),
        (ProfileChange(time_zone="localtime"), "INVALID_TIME_ZONE"),
        (ProfileChange(locale="ru", time_zone="Europe/Nowhere"), "INVALID_TIME_ZONE"),
    ],
)
async def test_a_bad_locale_or_time_zone_changes_nothing(
    world: UserWorld, change: ProfileChange, reason: str
) -> None:
    user = await register(world)
    me = caller_of(await login(world))
    with pytest.raises(InvalidArgument) as refused:
        await world.handlers.update_user(me, str(user.id), change)
    assert refused.value.reason == reason
    assert world.users.rows[user.id] == user
    assert not events(world, user_pb2.UserUpdated)


async def test_the_same_locale_and_time_zone_change_nothing(world: UserWorld) -> None:
    user = await register(world)
    me = caller_of(await login(world))
    same = await world.handlers.update_user(
        me, str(user.id), ProfileChange(locale="en", time_zone="UTC")
    )
    assert same == user
    assert not events(world, user_pb2.UserUpdated)


@pytest.mark.parametrize(
    "change",
    [
        ProfileChange(email="a" * 3000),
        ProfileChange(phone="+1\x00"),
        ProfileChange(phone="1" * 6000),
        ProfileChange(email="ann.new@example.com", current_password="p" * 3000),
    ],
)
async def test_oversized_profile_changes_are_refused_first(
    world: UserWorld, change: ProfileChange
) -> None:
    user = await register(world)
    me = caller_of(await login(world))
    checks = world.passwords.checks
    with pytest.raises(InvalidArgument):
        await world.handlers.update_user(me, str(user.id), change)
    assert world.passwords.checks == checks


async def test_list_users_pages_through_everyone(world: UserWorld) -> None:
    root = await admin(world)
    for n in range(4):
        world.clock.advance(seconds=1)
        await world.handlers.register(f"u{n}@example.com", PASSWORD, PHONE, OWNER)
    seen: list[str] = []
    token = ""
    while True:
        page, token = await world.handlers.list_users(root, 2, token)
        seen += [user.email for user in page]
        if not token:
            break
    assert seen == ["root@example.com"] + [f"u{n}@example.com" for n in range(4)]


async def test_the_pruner_forgets_ended_counters_and_old_retired_tokens(world: UserWorld) -> None:
    await register(world)
    for _ in range(5):
        with pytest.raises(Unauthenticated):
            await login(world, password="guess guess", client=ATTACKER)
    token = (await login(world)).tokens.refresh_token
    await world.handlers.refresh(token)
    pruner = Pruner(world.uow, timedelta(hours=1), timedelta(days=30), clock=world.clock)
    assert await pruner.prune() == 0, "everything is fresh"
    counters = len(world.throttles.rows)
    world.clock.advance(days=31)
    # Every counter's window and lock have passed; the retired token is too old.
    assert await pruner.prune() == counters + 1
    assert not world.throttles.rows
    assert not world.sessions.retired
