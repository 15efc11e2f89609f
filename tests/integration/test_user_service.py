"""The User service over gRPC, with its real database and broker."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable
from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING, TypeVar

import grpc
import pytest
from google.protobuf.message import Message
from nats.js import JetStreamContext
from warmhouse.user.v1 import user_pb2
from warmhouse.user.v1.user_pb2_grpc import UserServiceStub

from services.devstack.nats_process import NatsProcess
from services.devstack.postgres_process import PostgresProcess
from services.runtime import messaging
from services.runtime.config import RuntimeSettings
from services.runtime.request import parse_networks
from services.user.bootstrap import UserSettings, definition
from services.user.domain import LoginThrottling, ThrottlePolicy
from tests.accounts import (
    PASSWORD,
    PHONE,
    Metadata,
    bearer,
    forwarded_for,
    login,
    new_email,
    refused,
    register,
    token_of,
)
from tests.grpc_errors import error_reason
from tests.integration.conftest import ADMIN
from tests.integration.hosts import running_service
from tests.integration.households import as_service, events_about
from tests.polling import eventually

if TYPE_CHECKING:
    from warmhouse.user.v1.user_pb2_grpc import UserServiceAsyncStub

UNLIMITED = 1_000_000
# On the trusting host: the per-account ceiling of untrusted logins, low
# enough to reach from a handful of addresses.
ACCOUNT_LIMIT = 8
USER_STREAM = str(messaging.stream_config("user").name)
M = TypeVar("M", bound=Message)


@pytest.fixture(scope="module")
async def direct_channel(
    runtime_settings: RuntimeSettings, user_settings: UserSettings, postgres: PostgresProcess
) -> AsyncIterator[grpc.aio.Channel]:
    """A User service that, like a service reached without Envoy, believes no
    x-forwarded-for. Every test caller is one client (127.0.0.1) here, so the
    per-client ceilings are lifted: tests of them use the trusting host."""
    settings = replace(
        user_settings,
        throttling=replace(
            user_settings.throttling,
            client=replace(user_settings.throttling.client, max_failures=UNLIMITED),
        ),
        registrations=replace(user_settings.registrations, max_failures=UNLIMITED),
    )
    async with running_service(definition(settings), runtime_settings, postgres) as user:
        yield user.channel


@pytest.fixture(scope="module")
async def trusting_channel(
    runtime_settings: RuntimeSettings, user_settings: UserSettings, postgres: PostgresProcess
) -> AsyncIterator[grpc.aio.Channel]:
    """A User service behind a proxy at 127.0.0.1 (as Envoy is in the stack):
    it tells clients apart by x-forwarded-for. Default registration limits."""
    settings = replace(
        user_settings,
        throttling=LoginThrottling(
            account=ThrottlePolicy(ACCOUNT_LIMIT, timedelta(hours=1), timedelta(minutes=30))
        ),
    )
    async with running_service(
        definition(settings),
        runtime_settings,
        postgres,
        trusted_proxies=parse_networks("127.0.0.1"),
    ) as user:
        yield user.channel


@pytest.fixture
def users(direct_channel: grpc.aio.Channel) -> UserServiceAsyncStub:
    return UserServiceStub(direct_channel)


@pytest.fixture
def proxied(trusting_channel: grpc.aio.Channel) -> UserServiceAsyncStub:
    return UserServiceStub(trusting_channel)


def client_address() -> str:
    """A fresh client address for the trusting host."""
    return f"198.18.{uuid.uuid4().int % 256}.{uuid.uuid4().int % 254 + 1}"


async def register_via_proxy(users: UserServiceAsyncStub) -> str:
    """An account on the trusting host, registered from an address of its own."""
    email = new_email()
    await users.CreateUser(
        user_pb2.CreateUserRequest(email=email, password=PASSWORD, phone=PHONE),
        metadata=forwarded_for(client_address()),
    )
    return email


def wrong_guess(
    users: UserServiceAsyncStub, email: str, n: int = 0, metadata: Metadata = ()
) -> Awaitable[user_pb2.LoginResponse]:
    request = user_pb2.LoginRequest(email=email, password=f"wrong guess {n}")
    return users.Login(request, metadata=metadata)


async def status_of(call: Awaitable[object]) -> grpc.StatusCode:
    try:
        await call
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


async def test_register_login_and_read_own_profile(users: UserServiceAsyncStub) -> None:
    user_id, email = await register(users)
    session = await login(users, email.upper())
    assert session.user_id == user_id
    assert session.expires_in == 300
    assert session.token_type == "Bearer"
    assert session.device_token
    profile = await users.GetUser(
        user_pb2.GetUserRequest(user_id=user_id), metadata=bearer(session.access_token)
    )
    assert profile.user.email == email.lower()
    assert profile.user.role == user_pb2.USER
    assert profile.user.is_active


@pytest.mark.parametrize(
    ("email", "password", "phone", "reason"),
    [
        ("not-an-email", PASSWORD, PHONE, "INVALID_EMAIL"),
        ("a..b@example.com", PASSWORD, PHONE, "INVALID_EMAIL"),
        ("a@-example-.com", PASSWORD, PHONE, "INVALID_EMAIL"),
        ("ok@example.com", PASSWORD, "555-1234", "INVALID_PHONE"),
        ("ok@example.com", "password123", PHONE, "WEAK_PASSWORD"),
        ("ok@example.com", "short", PHONE, "WEAK_PASSWORD"),
        ("ok@example.com", "        ", PHONE, "WEAK_PASSWORD"),
        ("ok@example.com", "aaaaaaaa", PHONE, "WEAK_PASSWORD"),
        ("ok@example.com", "12345678", PHONE, "WEAK_PASSWORD"),
        ("ok\x00@example.com", PASSWORD, PHONE, "INVALID_CHARACTERS"),
        ("o" * 3000 + "@example.com", PASSWORD, PHONE, "FIELD_TOO_LONG"),
        ("ok@example.com", "p" * 3000, PHONE, "FIELD_TOO_LONG"),
        ("ok@example.com", PASSWORD, "+1" * 3000, "FIELD_TOO_LONG"),
    ],
)
async def test_registration_refuses_bad_input(
    users: UserServiceAsyncStub, email: str, password: str, phone: str, reason: str
) -> None:
    call = users.CreateUser(user_pb2.CreateUserRequest(email=email, password=password, phone=phone))
    assert await refused(call, grpc.StatusCode.INVALID_ARGUMENT) == reason


async def test_an_email_registers_once_whatever_its_case(users: UserServiceAsyncStub) -> None:
    _, email = await register(users)
    call = users.CreateUser(
        user_pb2.CreateUserRequest(email=email.swapcase(), password=PASSWORD, phone=PHONE)
    )
    assert await refused(call, grpc.StatusCode.ALREADY_EXISTS) == "EMAIL_TAKEN"


async def test_registrations_are_throttled_per_client(proxied: UserServiceAsyncStub) -> None:
    """Ten an hour from one address; another address is not affected."""
    spammer, neighbour = forwarded_for(client_address()), forwarded_for(client_address())

    def create(metadata: Metadata) -> Awaitable[user_pb2.CreateUserResponse]:
        request = user_pb2.CreateUserRequest(email=new_email(), password=PASSWORD, phone=PHONE)
        return proxied.CreateUser(request, metadata=metadata)

    statuses = await asyncio.gather(*(status_of(create(spammer)) for _ in range(12)))
    assert sorted(statuses, key=str) == sorted(
        [grpc.StatusCode.OK] * 10 + [grpc.StatusCode.RESOURCE_EXHAUSTED] * 2, key=str
    )
    assert await refused(create(spammer), grpc.StatusCode.RESOURCE_EXHAUSTED) == (
        "TOO_MANY_REGISTRATIONS"
    )
    assert (await create(neighbour)).user_id


async def test_wrong_email_and_wrong_password_look_the_same(users: UserServiceAsyncStub) -> None:
    _, email = await register(users)
    with pytest.raises(grpc.aio.AioRpcError) as wrong_password:
        await login(users, email, "not the password at all")
    with pytest.raises(grpc.aio.AioRpcError) as wrong_email:
        await login(users, new_email())
    for failure in (wrong_password.value, wrong_email.value):
        assert failure.code() == grpc.StatusCode.UNAUTHENTICATED
    assert wrong_password.value.details() == wrong_email.value.details()
    assert error_reason(wrong_password.value) == error_reason(wrong_email.value)


async def test_concurrent_wrong_guesses_get_at_most_the_limit_of_password_checks(
    users: UserServiceAsyncStub,
) -> None:
    """Each attempt is counted before its password is checked: a burst cannot
    all be checked before the first failure is recorded."""
    _, email = await register(users)
    limit = LoginThrottling().account_from_client.max_failures
    statuses = await asyncio.gather(*(status_of(wrong_guess(users, email, n)) for n in range(33)))
    checked = statuses.count(grpc.StatusCode.UNAUTHENTICATED)
    assert 1 <= checked <= limit, statuses
    assert statuses.count(grpc.StatusCode.RESOURCE_EXHAUSTED) == 33 - checked, statuses
    right_password = login(users, email)
    assert await refused(right_password, grpc.StatusCode.RESOURCE_EXHAUSTED) == (
        "TOO_MANY_LOGIN_FAILURES"
    )


async def test_the_right_password_amid_a_burst_of_guesses_does_not_get_in(
    users: UserServiceAsyncStub,
) -> None:
    _, email = await register(users)
    burst = [asyncio.ensure_future(status_of(wrong_guess(users, email, n))) for n in range(29)]
    # Once the limit is reached (the first refusals come back) ...
    await eventually(
        lambda: any(f.done() and f.result() == grpc.StatusCode.RESOURCE_EXHAUSTED for f in burst),
        what="a refusal among the guesses",
    )
    # ... the right password, still amid the burst, is refused too.
    assert await refused(login(users, email), grpc.StatusCode.RESOURCE_EXHAUSTED) == (
        "TOO_MANY_LOGIN_FAILURES"
    )
    statuses = await asyncio.gather(*burst)
    assert statuses.count(grpc.StatusCode.UNAUTHENTICATED) <= 5


async def test_forged_forwarded_for_from_an_untrusted_peer_is_ignored(
    users: UserServiceAsyncStub,
) -> None:
    """A caller that is not a trusted proxy is known by its own address,
    whatever x-forwarded-for it writes: varying it buys no more guesses."""
    _, email = await register(users)
    for n in range(5):
        call = wrong_guess(users, email, n, metadata=forwarded_for(f"203.0.113.{n + 1}"))
        assert await refused(call, grpc.StatusCode.UNAUTHENTICATED) == "INVALID_CREDENTIALS"
    sixth = login(users, email, metadata=forwarded_for("203.0.113.99"))
    assert await refused(sixth, grpc.StatusCode.RESOURCE_EXHAUSTED) == "TOO_MANY_LOGIN_FAILURES"


async def test_behind_a_trusted_proxy_failures_lock_that_client_only(
    proxied: UserServiceAsyncStub,
) -> None:
    email = await register_via_proxy(proxied)
    attacker = forwarded_for(client_address())
    for n in range(5):
        call = wrong_guess(proxied, email, n, metadata=attacker)
        assert await refused(call, grpc.StatusCode.UNAUTHENTICATED) == "INVALID_CREDENTIALS"
    from_attacker = login(proxied, email, metadata=attacker)
    assert await refused(from_attacker, grpc.StatusCode.RESOURCE_EXHAUSTED) == (
        "TOO_MANY_LOGIN_FAILURES"
    )
    owner = await login(proxied, email, metadata=forwarded_for(client_address()))
    assert owner.access_token


async def test_a_stranger_cannot_lock_the_owners_device_out(proxied: UserServiceAsyncStub) -> None:
    email = await register_via_proxy(proxied)
    device_token = (
        await login(proxied, email, metadata=forwarded_for(client_address()))
    ).device_token
    # Guessers from many addresses reach the per-account ceiling ...
    guesses = [
        status_of(wrong_guess(proxied, email, n, metadata=forwarded_for(client_address())))
        for n in range(ACCOUNT_LIMIT)
    ]
    assert set(await asyncio.gather(*guesses)) == {grpc.StatusCode.UNAUTHENTICATED}
    # ... so every login without a device token is refused, the attacker's ...
    stranger = login(proxied, email, metadata=forwarded_for(client_address()))
    assert await refused(stranger, grpc.StatusCode.RESOURCE_EXHAUSTED) == (
        "TOO_MANY_LOGIN_FAILURES"
    )
    # ... but the owner's device presenting its token gets in, during the lock.
    owner = await login(
        proxied, email, device_token=device_token, metadata=forwarded_for(client_address())
    )
    assert owner.access_token
    assert owner.device_token


async def test_oversized_and_nul_input_is_refused_not_a_server_error(
    proxied: UserServiceAsyncStub,
) -> None:
    email = await register_via_proxy(proxied)
    for request in (
        user_pb2.LoginRequest(email="a" * 3000 + "@example.com", password=PASSWORD),
        user_pb2.LoginRequest(email="a\x00@example.com", password=PASSWORD),
        user_pb2.LoginRequest(email=email, password="p" * 6000),
        user_pb2.LoginRequest(email=email, password=PASSWORD, device_token="d" * 3000),
        user_pb2.LoginRequest(email=email, password=PASSWORD, auth_method=7),  # type: ignore[arg-type]
    ):
        await refused(proxied.Login(request), grpc.StatusCode.INVALID_ARGUMENT)
    # A 3,000-character x-forwarded-for is not believed; the peer counts instead.
    padded = forwarded_for(",".join(["203.0.113.1"] * 250))
    call = wrong_guess(proxied, email, metadata=padded)
    assert await refused(call, grpc.StatusCode.UNAUTHENTICATED) == "INVALID_CREDENTIALS"


async def test_calls_without_a_valid_token_are_refused(users: UserServiceAsyncStub) -> None:
    user_id, _ = await register(users)
    request = user_pb2.GetUserRequest(user_id=user_id)
    assert await refused(users.GetUser(request), grpc.StatusCode.UNAUTHENTICATED) == "TOKEN_MISSING"
    garbage = users.GetUser(request, metadata=bearer("not.a.jwt"))
    assert await refused(garbage, grpc.StatusCode.UNAUTHENTICATED) == "TOKEN_INVALID"


async def test_users_reach_only_their_own_profile(users: UserServiceAsyncStub) -> None:
    _, my_email = await register(users)
    theirs, _ = await register(users)
    token = await token_of(users, my_email)
    other = users.GetUser(user_pb2.GetUserRequest(user_id=theirs), metadata=token)
    assert await refused(other, grpc.StatusCode.PERMISSION_DENIED) == "NOT_OWNER"
    missing = users.GetUser(user_pb2.GetUserRequest(user_id=str(uuid.uuid4())), metadata=token)
    assert await refused(missing, grpc.StatusCode.PERMISSION_DENIED) == "NOT_OWNER"
    malformed = users.GetUser(user_pb2.GetUserRequest(user_id="42"), metadata=token)
    assert await refused(malformed, grpc.StatusCode.INVALID_ARGUMENT) == "INVALID_ID"
    deactivate = users.DeleteUser(user_pb2.DeleteUserRequest(user_id=theirs), metadata=token)
    assert await refused(deactivate, grpc.StatusCode.PERMISSION_DENIED) == "NOT_OWNER"
    admin = await token_of(users, ADMIN.email, ADMIN.password)
    untouched = await users.GetUser(user_pb2.GetUserRequest(user_id=theirs), metadata=admin)
    assert untouched.user.is_active, "a refused deactivation must change nothing"


async def test_admins_read_change_and_list_anyone(users: UserServiceAsyncStub) -> None:
    user_id, email = await register(users)
    admin = await token_of(users, ADMIN.email, ADMIN.password)
    read = await users.GetUser(user_pb2.GetUserRequest(user_id=user_id), metadata=admin)
    assert read.user.email == email.lower()
    missing = users.GetUser(user_pb2.GetUserRequest(user_id=str(uuid.uuid4())), metadata=admin)
    assert await refused(missing, grpc.StatusCode.NOT_FOUND) == "USER_NOT_FOUND"
    promoted = await users.UpdateUser(
        user_pb2.UpdateUserRequest(user_id=user_id, role=user_pb2.ADMIN), metadata=admin
    )
    assert promoted.user.role == user_pb2.ADMIN
    seen: list[str] = []
    page_token = ""
    while True:
        page = await users.ListUsers(
            user_pb2.ListUsersRequest(page_size=2, page_token=page_token), metadata=admin
        )
        assert len(page.users) <= 2
        seen.extend(user.user_id for user in page.users)
        page_token = page.next_page_token
        if not page_token:
            break
    assert user_id in seen
    assert len(seen) == len(set(seen))
    for bad in (user_pb2.ROLE_UNSPECIFIED, 7):
        call = users.UpdateUser(
            user_pb2.UpdateUserRequest(user_id=user_id, role=bad),  # type: ignore[arg-type]
            metadata=admin,
        )
        assert await refused(call, grpc.StatusCode.INVALID_ARGUMENT) == "INVALID_ROLE"


async def test_users_update_their_profile_but_not_their_role(users: UserServiceAsyncStub) -> None:
    user_id, email = await register(users)
    token = await token_of(users, email)
    updated = await users.UpdateUser(
        user_pb2.UpdateUserRequest(user_id=user_id, phone="+442071838750"), metadata=token
    )
    assert updated.user.phone == "+442071838750"
    assert updated.user.email == email.lower()
    escalate = users.UpdateUser(
        user_pb2.UpdateUserRequest(user_id=user_id, role=user_pb2.ADMIN), metadata=token
    )
    assert await refused(escalate, grpc.StatusCode.PERMISSION_DENIED) == "ADMIN_REQUIRED"
    bad_phone = users.UpdateUser(
        user_pb2.UpdateUserRequest(user_id=user_id, phone="12"), metadata=token
    )
    await refused(bad_phone, grpc.StatusCode.INVALID_ARGUMENT)
    listing = users.ListUsers(user_pb2.ListUsersRequest(), metadata=token)
    assert await refused(listing, grpc.StatusCode.PERMISSION_DENIED) == "ADMIN_REQUIRED"


async def test_a_demoted_admin_is_refused_at_once_and_cannot_promote_itself(
    users: UserServiceAsyncStub,
) -> None:
    user_id, email = await register(users)
    root = await token_of(users, ADMIN.email, ADMIN.password)
    await users.UpdateUser(
        user_pb2.UpdateUserRequest(user_id=user_id, role=user_pb2.ADMIN), metadata=root
    )
    second_admin = await token_of(users, email)
    assert (await users.ListUsers(user_pb2.ListUsersRequest(), metadata=second_admin)).users
    await users.UpdateUser(
        user_pb2.UpdateUserRequest(user_id=user_id, role=user_pb2.USER), metadata=root
    )
    # No waiting: the service that demoted it refuses its token right away.
    listing = users.ListUsers(user_pb2.ListUsersRequest(), metadata=second_admin)
    assert await refused(listing, grpc.StatusCode.UNAUTHENTICATED) == "TOKEN_REVOKED"
    promote_self = users.UpdateUser(
        user_pb2.UpdateUserRequest(user_id=user_id, role=user_pb2.ADMIN), metadata=second_admin
    )
    assert await refused(promote_self, grpc.StatusCode.UNAUTHENTICATED) == "TOKEN_REVOKED"
    as_user = await token_of(users, email)
    read = await users.GetUser(user_pb2.GetUserRequest(user_id=user_id), metadata=as_user)
    assert read.user.role == user_pb2.USER


async def test_two_admins_demoting_each_other_at_once_leave_one_admin(
    users: UserServiceAsyncStub,
) -> None:
    """Rights are checked against the caller's row as the change commits, not
    against the role its token was issued with: the second demotion in line is
    made by someone who is no longer an admin."""
    root = await token_of(users, ADMIN.email, ADMIN.password)
    admins = [await register(users) for _ in range(2)]
    for user_id, _ in admins:
        promote = user_pb2.UpdateUserRequest(user_id=user_id, role=user_pb2.ADMIN)
        await users.UpdateUser(promote, metadata=root)
    (first_id, first_email), (second_id, second_email) = admins
    first, second = await token_of(users, first_email), await token_of(users, second_email)

    async def demote(target: str, caller: Metadata) -> grpc.StatusCode:
        request = user_pb2.UpdateUserRequest(user_id=target, role=user_pb2.USER)
        try:
            await users.UpdateUser(request, metadata=caller)
        except grpc.aio.AioRpcError as error:
            return error.code()
        return grpc.StatusCode.OK

    for _ in range(5):
        outcomes = await asyncio.gather(demote(second_id, first), demote(first_id, second))
        assert sorted(code.name for code in outcomes) != ["OK", "OK"]
        roles = {
            (await users.GetUser(user_pb2.GetUserRequest(user_id=user_id), metadata=root)).user.role
            for user_id in (first_id, second_id)
        }
        assert user_pb2.ADMIN in roles
        # Both admins again, with fresh tokens, for the next round.
        for user_id, _ in admins:
            promote = user_pb2.UpdateUserRequest(user_id=user_id, role=user_pb2.ADMIN)
            await users.UpdateUser(promote, metadata=root)
        first, second = await token_of(users, first_email), await token_of(users, second_email)


async def test_refresh_rotates_the_refresh_token(users: UserServiceAsyncStub) -> None:
    user_id, email = await register(users)
    first = await login(users, email)
    rotated = await users.RefreshSession(
        user_pb2.RefreshSessionRequest(refresh_token=first.refresh_token)
    )
    assert rotated.user_id == user_id
    assert rotated.refresh_token != first.refresh_token
    profile = await users.GetUser(
        user_pb2.GetUserRequest(user_id=user_id), metadata=bearer(rotated.access_token)
    )
    assert profile.user.user_id == user_id


async def test_a_reused_refresh_token_ends_the_whole_session(users: UserServiceAsyncStub) -> None:
    """Someone replays a rotated-out refresh token: the session ends for the
    thief and the owner alike, its access tokens at once."""
    user_id, email = await register(users)
    first = await login(users, email)
    rotated = await users.RefreshSession(
        user_pb2.RefreshSessionRequest(refresh_token=first.refresh_token)
    )
    reuse = users.RefreshSession(user_pb2.RefreshSessionRequest(refresh_token=first.refresh_token))
    assert await refused(reuse, grpc.StatusCode.UNAUTHENTICATED) == "REFRESH_TOKEN_INVALID"
    latest = users.RefreshSession(
        user_pb2.RefreshSessionRequest(refresh_token=rotated.refresh_token)
    )
    assert await refused(latest, grpc.StatusCode.UNAUTHENTICATED) == "REFRESH_TOKEN_INVALID"
    read = users.GetUser(
        user_pb2.GetUserRequest(user_id=user_id), metadata=bearer(rotated.access_token)
    )
    assert await refused(read, grpc.StatusCode.UNAUTHENTICATED) == "TOKEN_REVOKED"


async def test_logout_refuses_the_token_at_once_every_time(users: UserServiceAsyncStub) -> None:
    """No window between logout and refusal at the issuing service."""
    user_id, email = await register(users)
    request = user_pb2.GetUserRequest(user_id=user_id)
    for _ in range(50):
        session = bearer((await login(users, email)).access_token)
        await users.Logout(user_pb2.LogoutRequest(), metadata=session)
        assert await refused(
            users.GetUser(request, metadata=session), grpc.StatusCode.UNAUTHENTICATED
        ) == ("TOKEN_REVOKED")


async def test_logout_ends_one_session_only(users: UserServiceAsyncStub) -> None:
    user_id, email = await register(users)
    session = await login(users, email)
    other_session = await login(users, email)
    await users.Logout(user_pb2.LogoutRequest(), metadata=bearer(session.access_token))
    still = await users.GetUser(
        user_pb2.GetUserRequest(user_id=user_id), metadata=bearer(other_session.access_token)
    )
    assert still.user.user_id == user_id
    refresh = users.RefreshSession(
        user_pb2.RefreshSessionRequest(refresh_token=session.refresh_token)
    )
    await refused(refresh, grpc.StatusCode.UNAUTHENTICATED)


async def test_changing_the_email_takes_the_password_and_ends_other_sessions(
    users: UserServiceAsyncStub,
) -> None:
    user_id, email = await register(users)
    mine = await token_of(users, email)
    elsewhere = await token_of(users, email)
    new = new_email()
    without = users.UpdateUser(
        user_pb2.UpdateUserRequest(user_id=user_id, email=new), metadata=mine
    )
    assert await refused(without, grpc.StatusCode.INVALID_ARGUMENT) == "CURRENT_PASSWORD_REQUIRED"
    wrong = users.UpdateUser(
        user_pb2.UpdateUserRequest(user_id=user_id, email=new, current_password="not it!"),
        metadata=mine,
    )
    assert await refused(wrong, grpc.StatusCode.PERMISSION_DENIED) == "CURRENT_PASSWORD_INCORRECT"
    changed = await users.UpdateUser(
        user_pb2.UpdateUserRequest(user_id=user_id, email=new, current_password=PASSWORD),
        metadata=mine,
    )
    assert changed.user.email == new.lower()
    request = user_pb2.GetUserRequest(user_id=user_id)
    assert (await users.GetUser(request, metadata=mine)).user.email == new.lower()
    other = users.GetUser(request, metadata=elsewhere)
    assert await refused(other, grpc.StatusCode.UNAUTHENTICATED) == "TOKEN_REVOKED"
    # An administrator changes someone else's email without their password.
    admin = await token_of(users, ADMIN.email, ADMIN.password)
    by_admin = await users.UpdateUser(
        user_pb2.UpdateUserRequest(user_id=user_id, email=email), metadata=admin
    )
    assert by_admin.user.email == email.lower()
    assert await refused(users.GetUser(request, metadata=mine), grpc.StatusCode.UNAUTHENTICATED)


async def test_deactivation_ends_login_and_existing_tokens(users: UserServiceAsyncStub) -> None:
    user_id, email = await register(users)
    session = await login(users, email)
    await users.DeleteUser(
        user_pb2.DeleteUserRequest(user_id=user_id), metadata=bearer(session.access_token)
    )
    read = users.GetUser(
        user_pb2.GetUserRequest(user_id=user_id), metadata=bearer(session.access_token)
    )
    assert await refused(read, grpc.StatusCode.UNAUTHENTICATED) == "TOKEN_REVOKED"
    assert await refused(login(users, email), grpc.StatusCode.UNAUTHENTICATED) == (
        "INVALID_CREDENTIALS"
    )
    admin = await token_of(users, ADMIN.email, ADMIN.password)
    kept = await users.GetUser(user_pb2.GetUserRequest(user_id=user_id), metadata=admin)
    assert not kept.user.is_active


async def test_unsupported_auth_methods_are_a_client_error(users: UserServiceAsyncStub) -> None:
    call = users.Login(
        user_pb2.LoginRequest(auth_method=user_pb2.SMS, email="a@example.com", password="x")
    )
    assert await refused(call, grpc.StatusCode.INVALID_ARGUMENT) == "AUTH_METHOD_NOT_SUPPORTED"


async def test_the_jwks_is_public(users: UserServiceAsyncStub) -> None:
    jwks = await users.GetJwks(user_pb2.GetJwksRequest())
    assert [key.alg for key in jwks.keys] == ["ES256"]
    assert jwks.keys[0].kid


async def test_an_admin_change_and_deactivation_apply_together(users: UserServiceAsyncStub) -> None:
    user_id, email = await register(users)
    session = await login(users, email)
    admin = await token_of(users, ADMIN.email, ADMIN.password)
    changed = await users.UpdateUser(
        user_pb2.UpdateUserRequest(user_id=user_id, phone="+33142685300", is_active=False),
        metadata=admin,
    )
    assert changed.user.phone == "+33142685300"
    assert not changed.user.is_active
    read = users.GetUser(
        user_pb2.GetUserRequest(user_id=user_id), metadata=bearer(session.access_token)
    )
    assert await refused(read, grpc.StatusCode.UNAUTHENTICATED) == "TOKEN_REVOKED"
    reactivated = await users.UpdateUser(
        user_pb2.UpdateUserRequest(user_id=user_id, is_active=True), metadata=admin
    )
    assert reactivated.user.is_active
    fresh = await login(users, email)
    profile = await users.GetUser(
        user_pb2.GetUserRequest(user_id=user_id), metadata=bearer(fresh.access_token)
    )
    assert profile.user.is_active


async def test_an_update_that_changes_nothing_keeps_the_update_time(
    users: UserServiceAsyncStub,
) -> None:
    user_id, email = await register(users)
    token = await token_of(users, email)
    before = await users.GetUser(user_pb2.GetUserRequest(user_id=user_id), metadata=token)
    same = await users.UpdateUser(
        user_pb2.UpdateUserRequest(user_id=user_id, phone=before.user.phone), metadata=token
    )
    assert same.user.update_time == before.user.update_time


async def test_other_services_learn_whether_an_account_is_active(
    users: UserServiceAsyncStub, runtime_settings: RuntimeSettings
) -> None:
    space = as_service(runtime_settings, "space")
    user_id, email = await register(users)
    status = await users.GetUserStatus(
        user_pb2.GetUserStatusRequest(user_id=user_id), metadata=space
    )
    assert (status.user_id, status.is_active) == (user_id, True)
    await users.DeleteUser(
        user_pb2.DeleteUserRequest(user_id=user_id), metadata=await token_of(users, email)
    )
    status = await users.GetUserStatus(
        user_pb2.GetUserStatusRequest(user_id=user_id), metadata=space
    )
    assert not status.is_active
    unknown = users.GetUserStatus(
        user_pb2.GetUserStatusRequest(user_id=str(uuid.uuid4())), metadata=space
    )
    assert await refused(unknown, grpc.StatusCode.NOT_FOUND) == "USER_NOT_FOUND"
    # End users cannot probe accounts with it, not even an ADMIN.
    admin = await token_of(users, ADMIN.email, ADMIN.password)
    as_admin = users.GetUserStatus(user_pb2.GetUserStatusRequest(user_id=user_id), metadata=admin)
    await refused(as_admin, grpc.StatusCode.UNAUTHENTICATED)


@pytest.fixture
async def jetstream(nats_server: NatsProcess) -> AsyncIterator[JetStreamContext]:
    client = await messaging.connect(nats_server.url, "user-tests")
    try:
        yield client.jetstream()
    finally:
        await client.close()


async def user_events(jetstream: JetStreamContext, kind: type[M], user_id: str) -> list[M]:
    return await events_about(jetstream, USER_STREAM, kind, "user_id", user_id)


async def test_locale_and_time_zone_are_kept_returned_and_announced(
    users: UserServiceAsyncStub, jetstream: JetStreamContext
) -> None:
    email = new_email()
    created = await users.CreateUser(
        user_pb2.CreateUserRequest(
            email=email, password=PASSWORD, phone=PHONE, locale="ru", time_zone="Europe/Moscow"
        )
    )
    user_id = created.user_id
    token = await token_of(users, email)
    read = await users.GetUser(user_pb2.GetUserRequest(user_id=user_id), metadata=token)
    assert (read.user.locale, read.user.time_zone) == ("ru", "Europe/Moscow")
    admin = await token_of(users, ADMIN.email, ADMIN.password)
    listed = await every_user(users, admin)
    assert (listed[user_id].locale, listed[user_id].time_zone) == ("ru", "Europe/Moscow")

    [registered] = await eventually(
        lambda: user_events(jetstream, user_pb2.UserRegistered, user_id),
        what="UserRegistered on the stream",
    )
    assert (registered.locale, registered.time_zone) == ("ru", "Europe/Moscow")

    changed = await users.UpdateUser(
        user_pb2.UpdateUserRequest(user_id=user_id, locale="en"), metadata=token
    )
    assert (changed.user.locale, changed.user.time_zone) == ("en", "Europe/Moscow")
    changed = await users.UpdateUser(
        user_pb2.UpdateUserRequest(user_id=user_id, time_zone="Asia/Vladivostok"), metadata=admin
    )
    assert (changed.user.locale, changed.user.time_zone) == ("en", "Asia/Vladivostok")
    read = await users.GetUser(user_pb2.GetUserRequest(user_id=user_id), metadata=token)
    assert read.user == changed.user

    async def both_updates() -> list[user_pb2.UserUpdated]:
        updates = await user_events(jetstream, user_pb2.UserUpdated, user_id)
        return updates if len(updates) == 2 else []

    updates = await eventually(both_updates, what="two UserUpdated on the stream")
    # Each carries every current value, not only what changed.
    assert [(u.email, u.phone, u.locale, u.time_zone) for u in updates] == [
        (email.lower(), PHONE, "en", "Europe/Moscow"),
        (email.lower(), PHONE, "en", "Asia/Vladivostok"),
    ]


async def every_user(users: UserServiceAsyncStub, admin: Metadata) -> dict[str, user_pb2.User]:
    seen: dict[str, user_pb2.User] = {}
    page_token = ""
    while True:
        page = await users.ListUsers(
            user_pb2.ListUsersRequest(page_size=100, page_token=page_token), metadata=admin
        )
        seen.update((user.user_id, user) for user in page.users)
        page_token = page.next_page_token
        if not page_token:
            return seen


async def test_a_user_registered_without_them_is_en_and_utc(
    users: UserServiceAsyncStub, jetstream: JetStreamContext
) -> None:
    user_id, email = await register(users)
    token = await token_of(users, email)
    read = await users.GetUser(user_pb2.GetUserRequest(user_id=user_id), metadata=token)
    assert (read.user.locale, read.user.time_zone) == ("en", "UTC")
    [registered] = await eventually(
        lambda: user_events(jetstream, user_pb2.UserRegistered, user_id),
        what="UserRegistered on the stream",
    )
    assert (registered.locale, registered.time_zone) == ("en", "UTC")


SECRET = "Secret/Zone_" + "x" * 6000


@pytest.mark.parametrize(
    ("locale", "time_zone", "reason"),
    [
        ("de", "", "INVALID_LOCALE"),
        ("EN", "", "INVALID_LOCALE"),
        ("ru\x00", "", "INVALID_LOCALE"),
        ("", "localtime", "INVALID_TIME_ZONE"),
        ("", "posix/Europe/Moscow", "INVALID_TIME_ZONE"),
        ("", "europe/moscow", "INVALID_TIME_ZONE"),
        ("", SECRET, "INVALID_TIME_ZONE"),
    ],
)
async def test_bad_locales_and_time_zones_are_refused_without_echo(
    users: UserServiceAsyncStub, locale: str, time_zone: str, reason: str
) -> None:
    email = new_email()
    create = users.CreateUser(
        user_pb2.CreateUserRequest(
            email=email, password=PASSWORD, phone=PHONE, locale=locale, time_zone=time_zone
        )
    )
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await create
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_reason(failure.value) == reason
    # The rule, never the input.
    assert failure.value.details() in (
        'locale must be "en" or "ru" (lower case)',
        "timeZone must be an IANA time zone such as Europe/Moscow",
    )
    # Nothing was stored: the address is still free.
    await register(users, email)


async def test_updates_refuse_empty_and_bad_values_and_strangers(
    users: UserServiceAsyncStub,
) -> None:
    user_id, email = await register(users)
    token = await token_of(users, email)
    for request, reason in (
        (user_pb2.UpdateUserRequest(user_id=user_id, locale=""), "INVALID_LOCALE"),
        (user_pb2.UpdateUserRequest(user_id=user_id, locale="Ru"), "INVALID_LOCALE"),
        (user_pb2.UpdateUserRequest(user_id=user_id, time_zone=""), "INVALID_TIME_ZONE"),
        (user_pb2.UpdateUserRequest(user_id=user_id, time_zone=SECRET), "INVALID_TIME_ZONE"),
        (
            user_pb2.UpdateUserRequest(user_id=user_id, locale="ru", time_zone="right/UTC"),
            "INVALID_TIME_ZONE",
        ),
    ):
        call = users.UpdateUser(request, metadata=token)
        assert await refused(call, grpc.StatusCode.INVALID_ARGUMENT) == reason
    _, stranger_email = await register(users)
    stranger = await token_of(users, stranger_email)
    call = users.UpdateUser(
        user_pb2.UpdateUserRequest(user_id=user_id, locale="ru"), metadata=stranger
    )
    assert await refused(call, grpc.StatusCode.PERMISSION_DENIED) == "NOT_OWNER"
    read = await users.GetUser(user_pb2.GetUserRequest(user_id=user_id), metadata=token)
    assert (read.user.locale, read.user.time_zone) == ("en", "UTC")
