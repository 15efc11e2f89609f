"""The User service over gRPC, with its real database and broker."""

import asyncio
import uuid

import grpc
import pytest
from warmhouse.user.v1 import user_pb2
from warmhouse.user.v1.user_pb2_grpc import UserServiceStub

from tests.grpc_errors import error_reason
from tests.integration.conftest import ADMIN

PASSWORD = "correct horse battery staple"


def new_email() -> str:
    return f"user-{uuid.uuid4().hex[:10]}@Example.com"


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


async def refused(call: object, code: grpc.StatusCode) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await call  # type: ignore[misc]
    assert failure.value.code() == code, failure.value.details()
    return error_reason(failure.value)


async def register(users: UserServiceStub, email: str | None = None) -> tuple[str, str]:
    email = email or new_email()
    created = await users.CreateUser(
        user_pb2.CreateUserRequest(email=email, password=PASSWORD, phone="+15551234567")
    )
    return created.user_id, email


async def login(
    users: UserServiceStub, email: str, password: str = PASSWORD
) -> user_pb2.LoginResponse:
    response: user_pb2.LoginResponse = await users.Login(
        user_pb2.LoginRequest(email=email, password=password)
    )
    return response


async def test_register_login_and_read_own_profile(users: UserServiceStub) -> None:
    user_id, email = await register(users)
    session = await login(users, email.upper())
    assert session.user_id == user_id
    assert session.expires_in == 300
    assert session.token_type == "Bearer"
    profile = await users.GetUser(
        user_pb2.GetUserRequest(user_id=user_id), metadata=bearer(session.access_token)
    )
    assert profile.user.email == email.lower()
    assert profile.user.role == user_pb2.USER
    assert profile.user.is_active


@pytest.mark.parametrize(
    ("email", "password", "phone", "reason"),
    [
        ("not-an-email", PASSWORD, "+15551234567", "INVALID_EMAIL"),
        ("ok@example.com", PASSWORD, "555-1234", "INVALID_PHONE"),
        ("ok@example.com", "password123", "+15551234567", "WEAK_PASSWORD"),
        ("ok@example.com", "short", "+15551234567", "WEAK_PASSWORD"),
    ],
)
async def test_registration_refuses_bad_input(
    users: UserServiceStub, email: str, password: str, phone: str, reason: str
) -> None:
    call = users.CreateUser(user_pb2.CreateUserRequest(email=email, password=password, phone=phone))
    assert await refused(call, grpc.StatusCode.INVALID_ARGUMENT) == reason


async def test_an_email_registers_once_whatever_its_case(users: UserServiceStub) -> None:
    _, email = await register(users)
    call = users.CreateUser(
        user_pb2.CreateUserRequest(email=email.swapcase(), password=PASSWORD, phone="+15551234567")
    )
    assert await refused(call, grpc.StatusCode.ALREADY_EXISTS) == "EMAIL_TAKEN"


async def test_wrong_email_and_wrong_password_look_the_same(users: UserServiceStub) -> None:
    _, email = await register(users)
    with pytest.raises(grpc.aio.AioRpcError) as wrong_password:
        await login(users, email, "not the password at all")
    with pytest.raises(grpc.aio.AioRpcError) as wrong_email:
        await login(users, new_email())
    for failure in (wrong_password.value, wrong_email.value):
        assert failure.code() == grpc.StatusCode.UNAUTHENTICATED
    assert wrong_password.value.details() == wrong_email.value.details()
    assert error_reason(wrong_password.value) == error_reason(wrong_email.value)


async def test_repeated_failures_are_throttled_per_account_and_client(
    users: UserServiceStub,
) -> None:
    _, email = await register(users)
    attacker = (("x-forwarded-for", "203.0.113.77"),)
    for _ in range(5):
        call = users.Login(
            user_pb2.LoginRequest(email=email, password="guess guess"), metadata=attacker
        )
        assert await refused(call, grpc.StatusCode.UNAUTHENTICATED) == "INVALID_CREDENTIALS"
    right_password_from_attacker = users.Login(
        user_pb2.LoginRequest(email=email, password=PASSWORD), metadata=attacker
    )
    reason = await refused(right_password_from_attacker, grpc.StatusCode.RESOURCE_EXHAUSTED)
    assert reason == "TOO_MANY_LOGIN_FAILURES"
    owner = (("x-forwarded-for", "198.51.100.5"),)
    session = await users.Login(
        user_pb2.LoginRequest(email=email, password=PASSWORD), metadata=owner
    )
    assert session.access_token


async def test_concurrent_failures_are_each_counted(users: UserServiceStub) -> None:
    _, email = await register(users)
    attacker = (("x-forwarded-for", "203.0.113.78"),)
    guesses = [
        users.Login(user_pb2.LoginRequest(email=email, password=f"guess {n}"), metadata=attacker)
        for n in range(5)
    ]
    outcomes = await asyncio.gather(*guesses, return_exceptions=True)
    assert all(isinstance(o, grpc.aio.AioRpcError) for o in outcomes)
    right_password = users.Login(
        user_pb2.LoginRequest(email=email, password=PASSWORD), metadata=attacker
    )
    assert await refused(right_password, grpc.StatusCode.RESOURCE_EXHAUSTED) == (
        "TOO_MANY_LOGIN_FAILURES"
    )


async def test_calls_without_a_valid_token_are_refused(users: UserServiceStub) -> None:
    user_id, _ = await register(users)
    request = user_pb2.GetUserRequest(user_id=user_id)
    assert await refused(users.GetUser(request), grpc.StatusCode.UNAUTHENTICATED) == "TOKEN_MISSING"
    garbage = users.GetUser(request, metadata=bearer("not.a.jwt"))
    assert await refused(garbage, grpc.StatusCode.UNAUTHENTICATED) == "TOKEN_INVALID"


async def test_users_reach_only_their_own_profile(users: UserServiceStub) -> None:
    mine, my_email = await register(users)
    theirs, _ = await register(users)
    token = (await login(users, my_email)).access_token
    other = users.GetUser(user_pb2.GetUserRequest(user_id=theirs), metadata=bearer(token))
    assert await refused(other, grpc.StatusCode.PERMISSION_DENIED) == "NOT_OWNER"
    missing = users.GetUser(
        user_pb2.GetUserRequest(user_id=str(uuid.uuid4())), metadata=bearer(token)
    )
    assert await refused(missing, grpc.StatusCode.PERMISSION_DENIED) == "NOT_OWNER"
    malformed = users.GetUser(user_pb2.GetUserRequest(user_id="42"), metadata=bearer(token))
    assert await refused(malformed, grpc.StatusCode.INVALID_ARGUMENT) == "INVALID_ID"
    demote = users.DeleteUser(user_pb2.DeleteUserRequest(user_id=theirs), metadata=bearer(token))
    await refused(demote, grpc.StatusCode.PERMISSION_DENIED)
    assert mine != theirs


async def test_admins_read_change_and_list_anyone(users: UserServiceStub) -> None:
    user_id, email = await register(users)
    admin = bearer((await login(users, ADMIN.email, ADMIN.password)).access_token)
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


async def test_users_update_their_profile_but_not_their_role(users: UserServiceStub) -> None:
    user_id, email = await register(users)
    token = bearer((await login(users, email)).access_token)
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


async def test_refresh_rotates_the_refresh_token(users: UserServiceStub) -> None:
    user_id, email = await register(users)
    first = await login(users, email)
    rotated = await users.RefreshSession(
        user_pb2.RefreshSessionRequest(refresh_token=first.refresh_token)
    )
    assert rotated.user_id == user_id
    assert rotated.refresh_token != first.refresh_token
    reuse = users.RefreshSession(user_pb2.RefreshSessionRequest(refresh_token=first.refresh_token))
    assert await refused(reuse, grpc.StatusCode.UNAUTHENTICATED) == "REFRESH_TOKEN_INVALID"


async def eventually_refused(users: UserServiceStub, user_id: str, token: str) -> str:
    """Revocation travels as an event: allow it a few seconds to arrive."""
    for _ in range(100):
        try:
            await users.GetUser(user_pb2.GetUserRequest(user_id=user_id), metadata=bearer(token))
        except grpc.aio.AioRpcError as error:
            failure = error
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the token still works 10 s after revocation")
    assert failure.code() == grpc.StatusCode.UNAUTHENTICATED
    return error_reason(failure)


async def test_logout_revokes_the_sessions_tokens(users: UserServiceStub) -> None:
    user_id, email = await register(users)
    session = await login(users, email)
    other_session = await login(users, email)
    await users.Logout(user_pb2.LogoutRequest(), metadata=bearer(session.access_token))
    assert await eventually_refused(users, user_id, session.access_token) == "TOKEN_REVOKED"
    still = await users.GetUser(
        user_pb2.GetUserRequest(user_id=user_id), metadata=bearer(other_session.access_token)
    )
    assert still.user.user_id == user_id
    refresh = users.RefreshSession(
        user_pb2.RefreshSessionRequest(refresh_token=session.refresh_token)
    )
    await refused(refresh, grpc.StatusCode.UNAUTHENTICATED)


async def test_deactivation_ends_login_and_existing_tokens(users: UserServiceStub) -> None:
    user_id, email = await register(users)
    session = await login(users, email)
    await users.DeleteUser(
        user_pb2.DeleteUserRequest(user_id=user_id), metadata=bearer(session.access_token)
    )
    assert await eventually_refused(users, user_id, session.access_token) == "TOKEN_REVOKED"
    assert (
        await refused(
            users.Login(user_pb2.LoginRequest(email=email, password=PASSWORD)),
            grpc.StatusCode.UNAUTHENTICATED,
        )
        == "INVALID_CREDENTIALS"
    )
    admin = bearer((await login(users, ADMIN.email, ADMIN.password)).access_token)
    kept = await users.GetUser(user_pb2.GetUserRequest(user_id=user_id), metadata=admin)
    assert not kept.user.is_active


async def test_unsupported_auth_methods_are_a_client_error(users: UserServiceStub) -> None:
    call = users.Login(
        user_pb2.LoginRequest(auth_method=user_pb2.SMS, email="a@example.com", password="x")
    )
    assert await refused(call, grpc.StatusCode.INVALID_ARGUMENT) == "AUTH_METHOD_NOT_SUPPORTED"


async def test_the_jwks_is_public(users: UserServiceStub) -> None:
    jwks = await users.GetJwks(user_pb2.GetJwksRequest())
    assert [key.alg for key in jwks.keys] == ["ES256"]
    assert jwks.keys[0].kid


async def test_an_admin_change_and_deactivation_apply_together(users: UserServiceStub) -> None:
    user_id, email = await register(users)
    session = await login(users, email)
    admin = bearer((await login(users, ADMIN.email, ADMIN.password)).access_token)
    changed = await users.UpdateUser(
        user_pb2.UpdateUserRequest(user_id=user_id, phone="+33142685300", is_active=False),
        metadata=admin,
    )
    assert changed.user.phone == "+33142685300"
    assert not changed.user.is_active
    assert await eventually_refused(users, user_id, session.access_token) == "TOKEN_REVOKED"
    reactivated = await users.UpdateUser(
        user_pb2.UpdateUserRequest(user_id=user_id, is_active=True), metadata=admin
    )
    assert reactivated.user.is_active
    fresh = await login(users, email)
    profile = await users.GetUser(
        user_pb2.GetUserRequest(user_id=user_id), metadata=bearer(fresh.access_token)
    )
    assert profile.user.is_active


async def test_an_update_that_changes_nothing_keeps_the_update_time(users: UserServiceStub) -> None:
    user_id, email = await register(users)
    token = bearer((await login(users, email)).access_token)
    before = await users.GetUser(user_pb2.GetUserRequest(user_id=user_id), metadata=token)
    same = await users.UpdateUser(
        user_pb2.UpdateUserRequest(user_id=user_id, phone=before.user.phone), metadata=token
    )
    assert same.user.update_time == before.user.update_time
