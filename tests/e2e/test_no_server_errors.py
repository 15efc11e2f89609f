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
from google.protobuf import timestamp_pb2
from google.protobuf.message import Message
from warmhouse.space.v1 import space_pb2
from warmhouse.space.v1.space_pb2_grpc import SpaceServiceStub
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
        Cursor(datetime(1, 1, 2, tzinfo=UTC), uuid.uuid4()), listing="users"
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
    ("service", "method", "token", "expect"),
    [
        ("user", "UserService/CreateUser", None, grpc.StatusCode.INVALID_ARGUMENT),
        ("user", "UserService/Login", None, grpc.StatusCode.INVALID_ARGUMENT),
        ("user", "UserService/GetUser", None, grpc.StatusCode.UNAUTHENTICATED),
        ("user", "UserService/GetUser", "user", grpc.StatusCode.INVALID_ARGUMENT),
        ("user", "UserService/UpdateUser", "user", grpc.StatusCode.INVALID_ARGUMENT),
        ("space", "SpaceService/CreateSpace", "user", grpc.StatusCode.INVALID_ARGUMENT),
        ("space", "SpaceService/AddSpaceUser", "user", grpc.StatusCode.INVALID_ARGUMENT),
        ("device", "DeviceService/RegisterDevice", "user", grpc.StatusCode.INVALID_ARGUMENT),
        ("device", "DeviceService/UpdateDeviceStatus", "user", grpc.StatusCode.INVALID_ARGUMENT),
    ],
)
async def test_unparsable_messages_are_refused_not_unknown(
    stack: Stack,
    tokens: Tokens,
    service: str,
    method: str,
    token: str | None,
    expect: grpc.StatusCode,
) -> None:
    caller_token = tokens.of(token)
    metadata = (("authorization", f"Bearer {caller_token}"),) if caller_token else ()
    async with grpc.aio.insecure_channel(stack.grpc_address(service)) as channel:
        call = raw_grpc.unary(channel, f"/warmhouse.{service}.v1.{method}")
        for payload in UNPARSABLE:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await call(payload, metadata=metadata)
            assert refused.value.code() == expect, refused.value.details()
            assert "DecodeError" not in (refused.value.details() or "")


# Space and Device through Envoy


@dataclass(frozen=True)
class Places:
    """Ids the Space and Device cases stand in for: `{name}` in a path or body."""

    home: str
    room: str
    device: str
    guest: str  # a GUEST of home
    other: str  # a user in no space

    def fill(self, text: str, tokens: Tokens) -> str:
        for name in ("home", "room", "device", "guest", "other"):
            text = text.replace("{" + name + "}", getattr(self, name))
        return text.replace("{self}", tokens.user_id)


@pytest.fixture(scope="module")
def places(base_url: str, tokens: Tokens) -> Places:
    """A home of the sweep's user (tokens.user, its only OWNER), with a room and a device."""
    api = Rest(base_url)
    home = api.call("POST", "/spaces", {"name": "Sweep"}, token=tokens.user)
    assert home.status == 200, home
    home_id = str(home.body["spaceId"])
    room = api.call("POST", "/spaces", {"name": "Room", "parentSpaceId": home_id}, tokens.user)
    assert room.status == 200, room
    guest, _ = register(api)
    added = api.call(
        "POST", f"/spaces/{home_id}/users", {"userId": guest, "role": "GUEST"}, tokens.user
    )
    assert added.status == 200, added
    device = api.call(
        "POST", "/devices", {"spaceId": home_id, "type": "HEATER", "name": "Heater"}, tokens.user
    )
    assert device.status == 200, device
    return Places(
        home_id,
        str(room.body["spaceId"]),
        str(device.body["device"]["deviceId"]),
        guest,
        register(api)[0],
    )


BAD_NAMES = {**BAD_TEXT, "empty": "", "101 chars": "z" * 101, "tab": "a\tb", "bell": "a\u0007b"}
# Not UTF-8 once decoded; Envoy or the service must refuse them as the client's.
NOT_UTF8 = ("%ff%fe", "%c3%28")
GARBAGE_TIMES: dict[str, object] = {
    "words": "soon",
    "month 13": "2030-13-45T00:00:00Z",
    "a number": 12345,
    "empty": "",
    "year 10000": "10000-01-01T00:00:00Z",
    "the last instant of 9999": "9999-12-31T23:59:59.999999999Z",
    "year 1": "0001-01-01T00:00:00Z",
    "the epoch": "1970-01-01T00:00:00Z",
    "before the epoch": "1969-12-31T23:59:59Z",
    "yesterday-ish": "2001-01-01T00:00:00Z",
}
# Routes of a resource by id, each with a body that would be fine but for the id.
SPACE_ROUTES: list[tuple[str, str, object]] = [
    ("GET", "/spaces/{id}", None),
    ("PATCH", "/spaces/{id}", {"name": "ok"}),
    ("DELETE", "/spaces/{id}", None),
    ("GET", "/spaces/{id}/users", None),
    ("POST", "/spaces/{id}/users", {"userId": "{other}", "role": "GUEST"}),
    ("GET", "/spaces/{id}/devices", None),
    ("GET", "/spaces/{id}/users/{guest}", None),
    ("PATCH", "/spaces/{id}/users/{guest}", {"role": "MAINTAINER"}),
    ("DELETE", "/spaces/{id}/users/{guest}", None),
]
MEMBER_ROUTES: list[tuple[str, str, object]] = [
    ("GET", "/spaces/{home}/users/{id}", None),
    ("PATCH", "/spaces/{home}/users/{id}", {"role": "MAINTAINER"}),
    ("DELETE", "/spaces/{home}/users/{id}", None),
]
DEVICE_ROUTES: list[tuple[str, str, object]] = [
    ("GET", "/devices/{id}", None),
    ("PATCH", "/devices/{id}", {"name": "ok"}),
    ("DELETE", "/devices/{id}", None),
    ("PATCH", "/devices/{id}/status", {"status": "ONLINE"}),
    ("GET", "/devices/{id}/logs", None),
    ("POST", "/devices/{id}/secret", {}),
    ("POST", "/devices/{id}/command", {"kind": "TURN_ON"}),
    ("GET", "/devices/{id}/commands/{device}", None),
    ("GET", "/devices/{device}/commands/{id}", None),
    ("GET", "/devices/{id}/commands", None),
    ("GET", "/devices/{id}/readings", None),
    ("GET", "/devices/{id}/heating", None),
    ("PATCH", "/devices/{id}/heating/desired", {"version": 1, "targetCelsius": 21}),
]
# Support's and Notification's routes by id (a ticket, a notification, a user).
SUPPORT_NOTIFICATION_ROUTES: list[tuple[str, str, object]] = [
    ("GET", "/tickets/{id}", None),
    ("PATCH", "/tickets/{id}", {"status": "CLOSED"}),
    ("POST", "/tickets/{id}/comments", {"message": "ok"}),
    ("GET", "/tickets/{id}/comments", None),
    ("POST", "/notifications/{id}:markRead", {}),
    ("GET", "/users/{id}/notification-preferences", None),
    (
        "PUT",
        "/users/{id}/notification-preferences",
        {"categories": [{"category": "SAFETY", "channels": ["SMS"]}]},
    ),
]
LISTINGS = (
    "/spaces",
    "/tickets",
    "/notifications",
    "/spaces/{home}/users",
    "/spaces/{home}/devices",
    "/devices/{device}/logs",
    "/devices/{device}/commands",
)
# Every route with a JSON body, and a body that is fine for it.
BODY_ROUTES: list[tuple[str, str, dict[str, object]]] = [
    ("POST", "/spaces", {"name": "ok"}),
    ("PATCH", "/spaces/{home}", {"name": "ok"}),
    ("POST", "/spaces/{home}/users", {"userId": "{other}", "role": "GUEST"}),
    ("PATCH", "/spaces/{home}/users/{guest}", {"role": "GUEST"}),
    ("POST", "/devices", {"spaceId": "{home}", "type": "HEATER", "name": "ok"}),
    ("PATCH", "/devices/{device}", {"name": "ok"}),
    ("PATCH", "/devices/{device}/status", {"status": "ONLINE"}),
    ("POST", "/devices/{device}/secret", {}),
    ("POST", "/devices/{device}/command", {"kind": "TURN_ON"}),
    ("PATCH", "/devices/{device}/heating/desired", {"version": 1, "targetCelsius": 21}),
]
WRONG_TYPES = {
    "name": 123,
    "ownerId": ["x"],
    "parentSpaceId": {},
    "userId": 7,
    "role": {},
    "spaceId": {},
    "type": 1.5,
    "status": [],
    "expireTime": True,
    "kind": [],
    "targetTemperatureCelsius": "hot",
    "deadlineSeconds": {},
    "version": {},
    "mode": [],
    "targetCelsius": "hot",
    "schedule": 7,
}


def _bad_id_cases(label: str, bad: str) -> Iterator[RestCase]:
    for routes, placeholder in (
        (SPACE_ROUTES, "{id}"),
        (DEVICE_ROUTES, "{id}"),
        (SUPPORT_NOTIFICATION_ROUTES, "{id}"),
    ):
        for method, route, body in routes:
            path = route.replace(placeholder, bad)
            yield RestCase(f"{method} {route} id {label}", method, path, body, "user", 400)
    for method, route, body in MEMBER_ROUTES:
        path = route.replace("{id}", bad)
        yield RestCase(f"{method} {route} user id {label}", method, path, body, "user", 400)


def space_device_rest_cases() -> Iterator[RestCase]:
    body: object
    for label, bad in BAD_TEXT.items():
        yield from _bad_id_cases(label, quote(bad, safe=""))
        in_bodies: list[tuple[str, str, dict[str, object], str | None]] = [
            ("POST", "/spaces", {"name": "ok", "ownerId": bad}, "user"),
            ("POST", "/spaces", {"name": "ok", "ownerId": bad}, "admin"),
            ("POST", "/spaces", {"name": "ok", "parentSpaceId": bad}, "user"),
            ("POST", "/spaces/{home}/users", {"userId": bad, "role": "GUEST"}, "user"),
            ("POST", "/devices", {"spaceId": bad, "type": "HEATER", "name": "ok"}, "user"),
            ("PATCH", "/devices/{device}", {"spaceId": bad}, "user"),
            ("POST", "/tickets", {"subject": "ok", "description": "ok", "spaceId": bad}, "user"),
            ("POST", "/tickets", {"subject": "ok", "description": "ok", "deviceId": bad}, "user"),
            ("POST", "/tickets", {"subject": "ok", "description": "ok", "userId": bad}, "admin"),
            ("POST", "/tickets", {"subject": bad, "description": "ok"}, "user"),
        ]
        for method, path, body, caller in in_bodies:
            field = next(name for name, value in body.items() if value == bad)
            name = f"{method} {path} {field} {label} by {caller}"
            yield RestCase(name, method, path, body, caller, 400)
        for query, caller in (("userId", "admin"), ("ownerId", "admin"), ("parentSpaceId", "user")):
            path = f"/spaces?{query}=" + quote(bad, safe="")
            yield RestCase(f"list spaces {query} {label}", "GET", path, None, caller, 400)
        for listing in LISTINGS:
            path = f"{listing}?pageToken=" + quote(bad, safe="")
            yield RestCase(f"{listing} page token {label}", "GET", path, None, "user", 400)
    for escaped in NOT_UTF8:
        yield from _bad_id_cases(escaped, escaped)
        for listing in LISTINGS:
            path = f"{listing}?pageToken={escaped}"
            yield RestCase(f"{listing} page token {escaped}", "GET", path, None, "user", 400)
    for label, bad in BAD_NAMES.items():
        named: list[tuple[str, str, dict[str, object]]] = [
            ("POST", "/spaces", {"name": bad}),
            ("POST", "/spaces", {"name": bad, "parentSpaceId": "{home}"}),
            ("PATCH", "/spaces/{home}", {"name": bad}),
            ("PATCH", "/spaces/{room}", {"name": bad}),
            ("POST", "/devices", {"spaceId": "{room}", "type": "SENSOR", "name": bad}),
            ("PATCH", "/devices/{device}", {"name": bad}),
        ]
        for method, path, body in named:
            where = " of a room" if "parentSpaceId" in body else ""
            name = f"{method} {path}{where} name {label}"
            yield RestCase(name, method, path, body, "user", 400)
    for listing in LISTINGS:
        for name, page_token in FORGED_PAGE_TOKENS.items():
            path = f"{listing}?pageToken=" + quote(page_token, safe="")
            yield RestCase(f"{listing} page token {name}", "GET", path, None, "user", 400)
        for size in ("-5", "abc", "-2147483649"):
            path = f"{listing}?pageSize={size}"
            yield RestCase(f"{listing} page size {size}", "GET", path, None, "user", 400)
    enums: list[tuple[str, str, str, dict[str, object], tuple[object, ...]]] = [
        (
            "role",
            "POST",
            "/spaces/{home}/users",
            {"userId": "{other}"},
            ("SPACE_USER_ROLE_UNSPECIFIED",),
        ),
        ("role", "PATCH", "/spaces/{home}/users/{guest}", {}, ("SPACE_USER_ROLE_UNSPECIFIED",)),
        (
            "type",
            "POST",
            "/devices",
            {"spaceId": "{home}", "name": "ok"},
            ("DEVICE_TYPE_UNSPECIFIED",),
        ),
        ("status", "PATCH", "/devices/{device}/status", {}, ("DEVICE_STATUS_UNSPECIFIED",)),
        ("kind", "POST", "/devices/{device}/command", {}, ("COMMAND_KIND_UNSPECIFIED",)),
    ]
    for field, method, path, rest, unspecified in enums:
        for value in (7, -1, 2**31, "ROOT", "owner", *unspecified):
            body = {**rest, field: value}
            yield RestCase(f"{method} {path} {field} {value}", method, path, body, "user", 400)
    for kind in ("99", "-1", "TELEPATHY", "status_changed"):
        path = f"/devices/{{device}}/logs?kind={kind}"
        yield RestCase(f"log kind {kind}", "GET", path, None, "user", 400)
        path = f"/devices/{{device}}/commands?status={kind}"
        yield RestCase(f"command status {kind}", "GET", path, None, "user", 400)
    command = "/devices/{device}/command"
    target = "targetTemperatureCelsius"
    for celsius in (4.9, 30.5, -273, "NaN", "Infinity", "-Infinity", 1e308):
        body = {"kind": "SET_TARGET_TEMPERATURE", target: celsius}
        yield RestCase(f"target {celsius}", "POST", command, body, "user", 400)
    yield RestCase(
        "target with TURN_ON", "POST", command, {"kind": "TURN_ON", target: 20}, "user", 400
    )
    for seconds in (0, -1, 604801, 2**31):
        body = {"kind": "TURN_ON", "deadlineSeconds": seconds}
        yield RestCase(f"deadline {seconds}", "POST", command, body, "user", 400)
    readings = "/devices/{device}/readings"
    not_instants = ("soon", "2030-13-45T00:00:00Z", "12345", "10000-01-01T00:00:00Z", "2026-01-01")
    for instant in not_instants:
        for bound in ("from", "to"):
            path = f"{readings}?{bound}=" + quote(instant, safe="")
            yield RestCase(f"readings {bound} {instant}", "GET", path, None, "user", 400)
    backwards = "?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z"
    yield RestCase("readings backwards", "GET", readings + backwards, None, "user", 400)
    too_long = "?from=2020-01-01T00:00:00Z&to=2026-01-01T00:00:00Z"
    yield RestCase("readings over 400 days", "GET", readings + too_long, None, "user", 400)
    for points in ("-1", "abc"):
        path = f"{readings}?maxPoints={points}"
        yield RestCase(f"readings max points {points}", "GET", path, None, "user", 400)
    for label, when in GARBAGE_TIMES.items():
        timed: list[tuple[str, str, dict[str, object]]] = [
            ("POST", "/spaces/{home}/users", {"userId": "{other}", "role": "GUEST"}),
            ("PATCH", "/spaces/{home}/users/{guest}", {"role": "GUEST"}),
        ]
        for method, path, fine in timed:
            body = {**fine, "expireTime": when}
            yield RestCase(f"{method} {path} expiry {label}", method, path, body, "user", 400)
    nothing = RestCase("update device with nothing", "PATCH", "/devices/{device}", {}, "user", 400)
    yield nothing
    # Every route of Space and Device, commands included: Envoy refuses a forged token itself.
    routes: list[tuple[str, str, object]] = [
        ("POST", "/spaces", {"name": "ok"}),
        ("GET", "/spaces", None),
        *[(method, route.replace("{id}", "{home}"), body) for method, route, body in SPACE_ROUTES],
        ("POST", "/devices", {"spaceId": "{home}", "type": "HEATER", "name": "ok"}),
        *[
            (method, route.replace("{id}", "{device}"), body)
            for method, route, body in DEVICE_ROUTES
        ],
    ]
    for forged in ("other_key", "unsigned", None):
        for method, path, body in routes:
            name = f"{method} {path} with {forged or 'no token'}"
            yield RestCase(name, method, path, body, forged, 401)
    malformed: list[tuple[bytes, str]] = [
        (b"[]", "a list"),
        (b'"text"', "a string"),
        (b"{", "broken JSON"),
        (b"\xff\xfe", "not UTF-8"),
        (json.dumps(WRONG_TYPES).encode(), "wrong types"),
    ]
    for raw, what in malformed:
        for method, path, _ in BODY_ROUTES:
            if what == "wrong types" and path.endswith("/secret"):
                continue  # RotateDeviceSecretRequest has none of those fields: ignored
            yield RestCase(f"{what} to {method} {path}", method, path, raw, "user", 400)
    for path in ("/spaces", "/devices"):
        yield RestCase(f"no body to {path}", "POST", path, b"", "user", 400)
        yield RestCase(f"null to {path}", "POST", path, b"null", "user", 400)
    yield from heating_rest_cases()


def _slot(start: object = "07:00", day: object = "MONDAY", celsius: object = 21) -> object:
    return {"day": day, "startTime": start, "targetCelsius": celsius}


# Changes to the sweep's heater (at desired version 1), each refused.
HEATING_MISTAKES: dict[str, dict[str, object]] = {
    "no version": {"targetCelsius": 21},
    "version 0": {"version": 0, "targetCelsius": 21},
    "version -1": {"version": -1, "targetCelsius": 21},
    "version text": {"version": "abc", "targetCelsius": 21},
    "nothing to change": {"version": 1},
    "target NaN": {"version": 1, "targetCelsius": "NaN"},
    "target Infinity": {"version": 1, "targetCelsius": "Infinity"},
    "target below the frost floor": {"version": 1, "targetCelsius": 6.9},
    "target above the maximum": {"version": 1, "targetCelsius": 31},
    "mode unknown": {"version": 1, "mode": "BOIL"},
    "mode unspecified": {"version": 1, "mode": "HEATING_MODE_UNSPECIFIED"},
    "preset unspecified": {"version": 1, "preset": "PRESET_UNSPECIFIED"},
    "preset ended": {"version": 1, "preset": "BOOST", "presetEndTime": "2020-01-01T00:00:00Z"},
    "end without preset": {"version": 1, "presetEndTime": "2030-01-01T00:00:00Z"},
    "slot 24:00": {"version": 1, "schedule": {"slots": [_slot("24:00")]}},
    "slot 6 KB": {"version": 1, "schedule": {"slots": [_slot("0" * 6000)]}},
    "slot NUL": {"version": 1, "schedule": {"slots": [_slot("07:00\u0000")]}},
    "slot day unknown": {"version": 1, "schedule": {"slots": [_slot(day="FUNDAY")]}},
    "slot no day": {"version": 1, "schedule": {"slots": [_slot(day="DAY_OF_WEEK_UNSPECIFIED")]}},
    "slot below the frost floor": {"version": 1, "schedule": {"slots": [_slot(celsius=5)]}},
    "13 slots a day": {
        "version": 1,
        "schedule": {"slots": [_slot(f"{hour:02}:00") for hour in range(13)]},
    },
    "time zone unknown": {"version": 1, "timeZone": "Mars/Olympus"},
    "time zone path": {"version": 1, "timeZone": "../../../etc/passwd"},
    "time zone 6 KB": {"version": 1, "timeZone": LONG},
    "time zone NUL": {"version": 1, "timeZone": "UTC\u0000"},
    "limits upside down": {
        "version": 1,
        "limits": {"minTargetCelsius": 20, "maxTargetCelsius": 10, "frostFloorCelsius": 7},
    },
    "frost floor 4": {
        "version": 1,
        "limits": {"minTargetCelsius": 5, "maxTargetCelsius": 30, "frostFloorCelsius": 4},
    },
    "window pause 0": {
        "version": 1,
        "windowDetection": {
            "enabled": True,
            "dropCelsius": 1.5,
            "withinSeconds": 300,
            "pauseSeconds": 0,
        },
    },
}


def heating_rest_cases() -> Iterator[RestCase]:
    path = "/devices/{device}/heating/desired"
    for label, body in HEATING_MISTAKES.items():
        yield RestCase(f"heating {label}", "PATCH", path, body, "user", 400)
    # Larger than Envoy lets through to a service: 413 Payload Too Large.
    flood = {"version": 1, "schedule": {"slots": [_slot(f"{n % 24:02}:00") for n in range(10_000)]}}
    yield RestCase("heating 10,000 slots", "PATCH", path, flood, "user", 413)
    for version in (2, 10**15):
        stale = {"version": version, "targetCelsius": 21}
        yield RestCase(f"heating version {version}", "PATCH", path, stale, "user", 409)


@pytest.mark.parametrize("case", list(space_device_rest_cases()), ids=lambda case: case.name)
def test_space_and_device_mistakes_are_the_stated_client_error(
    api: Rest, tokens: Tokens, places: Places, case: RestCase
) -> None:
    path = places.fill(case.path, tokens)
    if isinstance(case.body, bytes):
        raw: bytes | None = case.body
    else:
        raw = None if case.body is None else places.fill(json.dumps(case.body), tokens).encode()
    reply = api.call(case.method, path, token=tokens.of(case.token), raw=raw)
    assert reply.status == case.expect, (case.name, reply)
    assert LONG not in json.dumps(reply.body), "the answer repeats what was sent"


def test_the_sweep_changed_nothing(api: Rest, tokens: Tokens, places: Places) -> None:
    """Every mistake above was refused: the home, its member and its device are as made."""
    members = api.call("GET", f"/spaces/{places.home}/users", token=tokens.user)
    assert members.status == 200
    roles = {member["userId"]: member["role"] for member in members.body["spaceUsers"]}
    assert roles == {tokens.user_id: "OWNER", places.guest: "GUEST"}
    device = api.call("GET", f"/devices/{places.device}", token=tokens.user)
    assert device.status == 200
    assert (device.body["device"]["name"], device.body["device"]["status"]) == ("Heater", "OFFLINE")
    space = api.call("GET", f"/spaces/{places.home}", token=tokens.user)
    assert space.body["space"]["name"] == "Sweep"
    heating = api.call("GET", f"/devices/{places.device}/heating", token=tokens.user)
    assert heating.status == 200
    assert heating.body["desired"]["plan"]["version"] == "1"


# Timestamps REST cannot even spell, straight to the Space service.


@pytest.mark.parametrize(
    ("seconds", "nanos"),
    [(-(10**11), 0), (10**13, 0), (2**62, 0), (4_000_000_000, -1), (4_000_000_000, 2 * 10**9)],
)
@pytest.mark.parametrize("method", ["AddSpaceUser", "UpdateSpaceUser"])
async def test_out_of_range_expiry_is_invalid_argument(
    stack: Stack, tokens: Tokens, places: Places, method: str, seconds: int, nanos: int
) -> None:
    # Built field by field: Timestamp's own setters refuse these values.
    expire = timestamp_pb2.Timestamp()
    expire.seconds, expire.nanos = seconds, nanos
    target = places.other if method == "AddSpaceUser" else places.guest
    request_type = getattr(space_pb2, f"{method}Request")
    request = request_type(space_id=places.home, user_id=target, role=space_pb2.GUEST)
    request.expire_time.CopyFrom(expire)
    metadata = (("authorization", f"Bearer {tokens.user}"),)
    async with grpc.aio.insecure_channel(stack.grpc_address("space")) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await getattr(SpaceServiceStub(channel), method)(request, metadata=metadata)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, refused.value.details()
