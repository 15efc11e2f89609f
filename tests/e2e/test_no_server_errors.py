"""Whatever a client sends, a mistake is refused as the client's: a stated 4xx
through Envoy, the matching status straight over gRPC. Never a 5xx, INTERNAL
or UNKNOWN, and never a 200 for garbage."""

import base64
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from google.protobuf.message import Message
from warmhouse.user.v1 import user_pb2
from warmhouse.user.v1.user_pb2_grpc import UserServiceStub

from services.devstack.stack import Stack
from services.runtime.auth import AUDIENCE, ISSUER
from services.runtime.pagination import Cursor, PageTokens
from tests import raw_grpc
from tests.e2e.accounts import PASSWORD, PHONE, new_email, register, token_of
from tests.e2e.conftest import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.e2e.rest import Reply, Rest
from tests.polling import wait_until

NUL = "nul\x00byte"
LONG = "x" * 3000
HUGE = "y" * 6 * 1024
BAD_TEXT = {"NUL": NUL, "3000 chars": LONG, "6 KB": HUGE}
REGISTRATION = {"email": "sweep@example.com", "password": PASSWORD, "phone": PHONE}
CREDENTIALS = {"email": "sweep@example.com", "password": PASSWORD}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


FORGED_PAGE_TOKENS = {
    "id-only JSON": b64(json.dumps({"id": 123}).encode()),
    "year-1 createdAt": b64(
        json.dumps({"createdAt": "0001-01-01T00:00:00+14:00", "id": str(uuid.uuid4())}).encode()
    ),
    "year-1 cursor list": b64(
        json.dumps(["0001-01-01T00:00:00+14:00", str(uuid.uuid4())]).encode()
    ),
    "signed with another key": PageTokens(b"not the service's key, 32 bytes+").encode(
        Cursor(datetime(1, 1, 2, tzinfo=UTC), uuid.uuid4())
    ),
    "not base64": "%%%",
    "too short": "bm9wZQ",
}


@dataclass(frozen=True)
class Tokens:
    """Access tokens: genuine ones, and ones no service may accept."""

    user_id: str
    user: str
    admin: str
    other_key: str
    unsigned: str

    def of(self, name: str | None) -> str | None:
        return None if name is None else str(getattr(self, name))


def forged_tokens(api: Rest, user_id: str) -> tuple[str, str]:
    """A token with our key id but signed by another key, and an unsigned one."""
    kid = api.call("GET", "/.well-known/jwks.json").body["keys"][0]["kid"]
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": user_id,
        "role": "ADMIN",
        "sid": str(uuid.uuid4()),
        "iat": now,
        "exp": now + 300,
    }
    other_key = jwt.encode(
        claims, ec.generate_private_key(ec.SECP256R1()), algorithm="ES256", headers={"kid": kid}
    )
    unsigned = jwt.encode(claims, "", algorithm="none", headers={"kid": kid})
    return other_key, unsigned


@pytest.fixture(scope="module")
def tokens(base_url: str) -> Tokens:
    api = Rest(base_url)
    user_id, email = register(api)
    other_key, unsigned = forged_tokens(api, user_id)
    return Tokens(
        user_id,
        token_of(api, email),
        token_of(api, ADMIN_EMAIL, ADMIN_PASSWORD),
        other_key,
        unsigned,
    )


# Through Envoy (REST)


@dataclass(frozen=True)
class RestCase:
    name: str
    method: str
    path: str  # "{self}" stands for the caller's own user id
    body: object  # JSON-encoded unless bytes; None sends no body
    token: str | None  # a Tokens attribute
    expect: int


def rest_cases() -> Iterator[RestCase]:
    body: object
    caller: str | None
    for label, bad in BAD_TEXT.items():
        for field in ("email", "password", "phone"):
            body = {**REGISTRATION, field: bad}
            yield RestCase(f"register {field} {label}", "POST", "/users", body, None, 400)
        for field in ("email", "password", "deviceToken"):
            body = {**CREDENTIALS, field: bad}
            yield RestCase(f"login {field} {label}", "POST", "/auth/login", body, None, 400)
        body = {"refreshToken": bad}
        yield RestCase(f"refresh {label}", "POST", "/auth/refresh", body, None, 400)
        changes: list[dict[str, str]] = [
            {"email": bad},
            {"phone": bad},
            {"email": new_email(), "currentPassword": bad},
        ]
        for change in changes:
            name = f"update {'/'.join(change)} {label}"
            yield RestCase(name, "PUT", "/users/{self}", change, "user", 400)
        for method in ("GET", "PUT", "DELETE"):
            body = {} if method == "PUT" else None
            path = "/users/" + quote(bad, safe="")
            yield RestCase(f"{method} id {label}", method, path, body, "user", 400)
        path = "/users?pageToken=" + quote(bad, safe="")
        yield RestCase(f"page token {label}", "GET", path, None, "admin", 400)
    # Percent-escapes that decode to bytes no UTF-8 string holds.
    for escaped in ("%ff%fe", "%c3%28"):
        for method in ("GET", "PUT", "DELETE"):
            body = {} if method == "PUT" else None
            name = f"{method} id {escaped}"
            yield RestCase(name, method, f"/users/{escaped}", body, "user", 400)
        path = f"/users?pageToken={escaped}"
        yield RestCase(f"page token {escaped}", "GET", path, None, "admin", 400)
    for name, page_token in FORGED_PAGE_TOKENS.items():
        path = "/users?pageToken=" + quote(page_token, safe="")
        yield RestCase(f"page token {name}", "GET", path, None, "admin", 400)
    yield RestCase("negative page size", "GET", "/users?pageSize=-5", None, "admin", 400)
    yield RestCase("text page size", "GET", "/users?pageSize=abc", None, "admin", 400)
    for caller in ("user", "admin"):
        for role in (7, -1, "ROOT", "ROLE_UNSPECIFIED"):
            body = {"role": role}
            yield RestCase(f"role {role} by {caller}", "PUT", "/users/{self}", body, caller, 400)
    for auth_method in (7, "TELEPATHY", "OAUTH", "SMS"):
        body = {**CREDENTIALS, "authMethod": auth_method}
        yield RestCase(f"auth method {auth_method}", "POST", "/auth/login", body, None, 400)
    for forged in ("other_key", "unsigned"):
        for method, path, body in (
            ("GET", "/users/{self}", None),
            ("GET", "/users", None),
            ("PUT", "/users/{self}", {"phone": PHONE}),
            ("DELETE", "/users/{self}", None),
            ("POST", "/auth/logout", {}),
        ):
            yield RestCase(f"{method} {path} with {forged}", method, path, body, forged, 401)
    malformed: list[tuple[bytes, str]] = [
        (b"[]", "a list"),
        (b'"text"', "a string"),
        (b"{", "broken JSON"),
        (b'{"email": 123, "password": ["x"], "phone": {}}', "wrong types"),
    ]
    for raw, what in malformed:
        for path in ("/users", "/auth/login", "/auth/refresh"):
            yield RestCase(f"{what} to {path}", "POST", path, raw, None, 400)
        yield RestCase(f"{what} to PUT", "PUT", "/users/{self}", raw, "user", 400)
        if what != "wrong types":  # LogoutRequest has none of those fields: ignored
            yield RestCase(f"{what} to logout", "POST", "/auth/logout", raw, "user", 400)
    for path in ("/users", "/auth/login", "/auth/refresh"):
        yield RestCase(f"no body to {path}", "POST", path, b"", None, 400)
        yield RestCase(f"null to {path}", "POST", path, b"null", None, 400)


def patiently(call: Callable[[], Reply]) -> Reply:
    """Call again when Envoy's rate limit (a 429 without a service's reason)
    refused it: the sweep is faster than the public RPCs' token buckets."""

    def not_rate_limited() -> Reply | None:
        reply = call()
        return None if reply.status == 429 and not reply.reason else reply

    reply = wait_until(not_rate_limited, timeout=20, interval=0.5, what="a call past the limit")
    assert reply is not None
    return reply


@pytest.mark.parametrize("case", list(rest_cases()), ids=lambda case: case.name)
def test_rest_mistakes_are_the_stated_client_error(
    api: Rest, tokens: Tokens, case: RestCase
) -> None:
    path = case.path.replace("{self}", tokens.user_id)
    raw = case.body if isinstance(case.body, bytes) else None
    body = None if isinstance(case.body, bytes) else case.body
    reply = patiently(
        lambda: api.call(case.method, path, body, token=tokens.of(case.token), raw=raw)
    )
    assert reply.status == case.expect, (case.name, reply)
    assert LONG not in json.dumps(reply.body), "the answer repeats what was sent"


# Straight to the User service over gRPC


@dataclass(frozen=True)
class GrpcCase:
    name: str
    method: str
    request: Message  # a user_id of SELF stands for the caller's own id
    token: str | None  # a Tokens attribute
    expect: grpc.StatusCode


SELF = "{self}"
INVALID = grpc.StatusCode.INVALID_ARGUMENT


def _grpc_field_cases(label: str, bad: str) -> Iterator[GrpcCase]:
    for field in ("email", "password", "phone"):
        fields: dict[str, Any] = {**REGISTRATION, field: bad}
        registration = user_pb2.CreateUserRequest(**fields)
        yield GrpcCase(f"CreateUser {field} {label}", "CreateUser", registration, None, INVALID)
    for field in ("email", "password", "device_token"):
        fields = {**CREDENTIALS, field: bad}
        credentials = user_pb2.LoginRequest(**fields)
        yield GrpcCase(f"Login {field} {label}", "Login", credentials, None, INVALID)
    refresh = user_pb2.RefreshSessionRequest(refresh_token=bad)
    yield GrpcCase(f"RefreshSession {label}", "RefreshSession", refresh, None, INVALID)
    changes: list[dict[str, Any]] = [
        {"email": bad},
        {"phone": bad},
        {"email": new_email(), "current_password": bad},
    ]
    for change in changes:
        update = user_pb2.UpdateUserRequest(user_id=SELF, **change)
        name = f"UpdateUser {'/'.join(change)} {label}"
        yield GrpcCase(name, "UpdateUser", update, "user", INVALID)
    by_id: list[tuple[str, Message]] = [
        ("GetUser", user_pb2.GetUserRequest(user_id=bad)),
        ("UpdateUser", user_pb2.UpdateUserRequest(user_id=bad, phone=PHONE)),
        ("DeleteUser", user_pb2.DeleteUserRequest(user_id=bad)),
    ]
    for rpc, request in by_id:
        yield GrpcCase(f"{rpc} id {label}", rpc, request, "user", INVALID)
    listing = user_pb2.ListUsersRequest(page_token=bad)
    yield GrpcCase(f"ListUsers page token {label}", "ListUsers", listing, "admin", INVALID)


def grpc_cases() -> Iterator[GrpcCase]:
    for label, bad in BAD_TEXT.items():
        yield from _grpc_field_cases(label, bad)
    for name, page_token in FORGED_PAGE_TOKENS.items():
        listing = user_pb2.ListUsersRequest(page_token=page_token)
        yield GrpcCase(f"ListUsers page token {name}", "ListUsers", listing, "admin", INVALID)
    negative = user_pb2.ListUsersRequest(page_size=-5)
    yield GrpcCase("ListUsers negative page size", "ListUsers", negative, "admin", INVALID)
    for caller in ("user", "admin"):
        for role in (7, -1, user_pb2.ROLE_UNSPECIFIED):
            update = user_pb2.UpdateUserRequest(user_id=SELF, role=role)  # type: ignore[arg-type]
            yield GrpcCase(
                f"UpdateUser role {role} by {caller}", "UpdateUser", update, caller, INVALID
            )
    for auth_method in (7, -3, user_pb2.OAUTH):
        login = user_pb2.LoginRequest(auth_method=auth_method, **CREDENTIALS)  # type: ignore[arg-type]
        yield GrpcCase(f"Login auth method {auth_method}", "Login", login, None, INVALID)
    authenticated: list[tuple[str, Message]] = [
        ("GetUser", user_pb2.GetUserRequest(user_id=SELF)),
        ("ListUsers", user_pb2.ListUsersRequest()),
        ("UpdateUser", user_pb2.UpdateUserRequest(user_id=SELF, phone=PHONE)),
        ("DeleteUser", user_pb2.DeleteUserRequest(user_id=SELF)),
        ("Logout", user_pb2.LogoutRequest()),
    ]
    for forged in ("other_key", "unsigned"):
        for rpc, request in authenticated:
            unauthenticated = grpc.StatusCode.UNAUTHENTICATED
            yield GrpcCase(f"{rpc} with {forged}", rpc, request, forged, unauthenticated)


@pytest.fixture(scope="module")
async def direct(stack: Stack) -> AsyncIterator[UserServiceStub]:
    async with grpc.aio.insecure_channel(stack.grpc_address("user")) as channel:
        yield UserServiceStub(channel)


@pytest.mark.parametrize("case", list(grpc_cases()), ids=lambda case: case.name)
async def test_grpc_mistakes_are_the_stated_client_error(
    direct: UserServiceStub, tokens: Tokens, case: GrpcCase
) -> None:
    token = tokens.of(case.token)
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    request = type(case.request)()
    request.CopyFrom(case.request)
    if getattr(request, "user_id", None) == SELF:
        request.user_id = tokens.user_id  # type: ignore[attr-defined]
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await getattr(direct, case.method)(request, metadata=metadata)
    code = refused.value.code()
    assert code not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN), case.name
    assert code == case.expect, (case.name, refused.value.details())
    assert LONG not in (refused.value.details() or ""), "the answer repeats what was sent"


# Messages that do not parse (a string field holding bytes that are not UTF-8,
# a truncated field) are refused as INVALID_ARGUMENT once the caller is known,
# never UNKNOWN with the parser's words.
UNPARSABLE = (b"\x0a\x02\xff\xfe", b"\x12\x03\xff\xfe\xfd\x1a\x08abcdefgh", b"\xff\xff\xff")


@pytest.mark.parametrize(
    ("method", "token", "expect"),
    [
        ("CreateUser", None, grpc.StatusCode.INVALID_ARGUMENT),
        ("Login", None, grpc.StatusCode.INVALID_ARGUMENT),
        ("GetUser", None, grpc.StatusCode.UNAUTHENTICATED),
        ("GetUser", "user", grpc.StatusCode.INVALID_ARGUMENT),
        ("UpdateUser", "user", grpc.StatusCode.INVALID_ARGUMENT),
    ],
)
async def test_unparsable_messages_are_refused_not_unknown(
    stack: Stack, tokens: Tokens, method: str, token: str | None, expect: grpc.StatusCode
) -> None:
    caller_token = tokens.of(token)
    metadata = (("authorization", f"Bearer {caller_token}"),) if caller_token else ()
    async with grpc.aio.insecure_channel(stack.grpc_address("user")) as channel:
        call = raw_grpc.unary(channel, f"/warmhouse.user.v1.UserService/{method}")
        for payload in UNPARSABLE:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await call(payload, metadata=metadata)
            assert refused.value.code() == expect, refused.value.details()
            assert "DecodeError" not in (refused.value.details() or "")
