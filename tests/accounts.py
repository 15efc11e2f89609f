"""Accounts for tests over gRPC: register, log in, call with a token, expect a refusal."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable
from typing import TYPE_CHECKING

import grpc
import pytest
from warmhouse.user.v1 import user_pb2

from tests.grpc_errors import error_reason

if TYPE_CHECKING:
    from warmhouse.user.v1.user_pb2_grpc import UserServiceAsyncStub

PASSWORD = "correct horse battery staple"
PHONE = "+15551234567"

Metadata = tuple[tuple[str, str], ...]


def new_email() -> str:
    return f"user-{uuid.uuid4().hex[:10]}@Example.com"


def bearer(token: str) -> Metadata:
    return (("authorization", f"Bearer {token}"),)


def forwarded_for(address: str) -> Metadata:
    return (("x-forwarded-for", address),)


async def refused(call: Awaitable[object], code: grpc.StatusCode) -> str:
    """Await `call`, expect it to fail with `code`; its ErrorInfo reason."""
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await call
    assert failure.value.code() == code, failure.value.details()
    return error_reason(failure.value)


async def register(users: UserServiceAsyncStub, email: str | None = None) -> tuple[str, str]:
    """A new account; (user id, email as registered)."""
    email = email or new_email()
    created = await users.CreateUser(
        user_pb2.CreateUserRequest(email=email, password=PASSWORD, phone=PHONE)
    )
    return created.user_id, email


async def login(
    users: UserServiceAsyncStub,
    email: str,
    password: str = PASSWORD,
    *,
    device_token: str = "",
    metadata: Metadata = (),
) -> user_pb2.LoginResponse:
    response: user_pb2.LoginResponse = await users.Login(
        user_pb2.LoginRequest(email=email, password=password, device_token=device_token),
        metadata=metadata,
    )
    return response


async def token_of(users: UserServiceAsyncStub, email: str, password: str = PASSWORD) -> Metadata:
    """Log in; the metadata that authenticates calls as that user."""
    return bearer((await login(users, email, password)).access_token)
