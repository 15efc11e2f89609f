"""What the edge refuses, strips and adds, seen from both sides of a real Envoy.

Envoy runs the local configuration in front of a fake User service that records
what reaches it, so each test can tell what the client sent from what the
service received.
"""

import dataclasses
import http.client
import json
from collections.abc import Iterator, Mapping
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.message import Message
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from warmhouse.user.v1 import user_pb2, user_pb2_grpc

from services.devstack.checkout import DESCRIPTOR_SET
from services.devstack.envoy_config import (
    RESPONSE_HEADERS,
    EnvoySettings,
    PublicRateLimits,
    SocketAddress,
    TokenBucket,
    render,
)
from services.devstack.envoy_process import EnvoyProcess
from services.devstack.ports import LOOPBACK, free_port
from services.runtime.internal_auth import SERVICE_TOKEN_HEADER
from services.runtime.service import method_paths
from services.user.description import DESCRIPTION, USER_SERVICE
from services.user.signing_keys import load_private_key
from services.user.tokens import TokenIssuer

# The User service as it is, plus one method only other services may call.
INTERNAL_METHOD = "ListUsers"
USER = dataclasses.replace(
    DESCRIPTION, internal_methods=method_paths(USER_SERVICE, INTERNAL_METHOD)
)
UPSTREAM_SERVER_HEADER = "fake-user-service/1.0"
TIGHT_BUCKET = TokenBucket(per_second=1, burst=3)


class FakeUserService(user_pb2_grpc.UserServiceServicer):
    """Answers a few RPCs and records each call: method, request, metadata."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Message, dict[str, str]]] = []

    def _record(self, method: str, request: Message, context: grpc.ServicerContext) -> None:
        metadata = {
            key: value
            for key, value in context.invocation_metadata() or ()
            if isinstance(value, str)
        }
        self.calls.append((method, request, metadata))
        # A banner the edge must not pass on.
        context.send_initial_metadata((("server", UPSTREAM_SERVER_HEADER),))

    def CreateUser(
        self, request: user_pb2.CreateUserRequest, context: grpc.ServicerContext
    ) -> user_pb2.CreateUserResponse:
        self._record("CreateUser", request, context)
        if request.email == "invalid":
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "email is invalid")
        return user_pb2.CreateUserResponse(user_id="u-1", role=user_pb2.USER)

    def Login(
        self, request: user_pb2.LoginRequest, context: grpc.ServicerContext
    ) -> user_pb2.LoginResponse:
        self._record("Login", request, context)
        return user_pb2.LoginResponse(access_token="a", refresh_token="r", user_id="u-1")

    def GetUser(
        self, request: user_pb2.GetUserRequest, context: grpc.ServicerContext
    ) -> user_pb2.GetUserResponse:
        self._record("GetUser", request, context)
        return user_pb2.GetUserResponse(user=user_pb2.User(user_id=request.user_id))

    def ListUsers(
        self, request: user_pb2.ListUsersRequest, context: grpc.ServicerContext
    ) -> user_pb2.ListUsersResponse:
        self._record("ListUsers", request, context)
        return user_pb2.ListUsersResponse()

    def last(self, method: str) -> tuple[Message, dict[str, str]]:
        _, request, metadata = next(call for call in reversed(self.calls) if call[0] == method)
        return request, metadata


@dataclass(frozen=True)
class Edge:
    host: str
    port: int
    service: FakeUserService
    token: str


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Mapping[str, str]
    body: Any


def call(
    edge: Edge,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
) -> Answer:
    """One HTTP/1.1 request, sending exactly `headers` (plus Host and Content-Length)."""
    connection = http.client.HTTPConnection(edge.host, edge.port, timeout=5)
    try:
        connection.request(method, path, body=body, headers=dict(headers or {}))
        response = connection.getresponse()
        payload = response.read()
        answer_headers = {name.lower(): value for name, value in response.getheaders()}
        return Answer(response.status, answer_headers, json.loads(payload) if payload else None)
    finally:
        connection.close()


JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[FakeUserService, int]]:
    # It answers only what these tests call; the rest is UNIMPLEMENTED.
    service = FakeUserService()  # type: ignore[abstract]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    user_pb2_grpc.add_UserServiceServicer_to_server(service, server)
    health_servicer = health.HealthServicer()
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    port = server.add_insecure_port(f"{LOOPBACK}:0")
    server.start()
    try:
        yield service, port
    finally:
        server.stop(grace=None)


def start_edge(
    upstream: tuple[FakeUserService, int],
    signing_keys: tuple[Path, Path],
    work_dir: Path,
    limits: PublicRateLimits,
) -> Iterator[Edge]:
    service, port = upstream
    settings = EnvoySettings(
        listener=SocketAddress(LOOPBACK, free_port()),
        admin=SocketAddress(LOOPBACK, free_port()),
        upstreams={USER.name: SocketAddress(LOOPBACK, port)},
        descriptor_set=DESCRIPTOR_SET,
        jwks_file=signing_keys[1],
        public_rate_limits=limits,
    )
    config_file = work_dir / "envoy.json"
    config_file.write_text(json.dumps(render(settings, [USER])))
    admin = settings.admin
    envoy = EnvoyProcess(
        config_file, work_dir / "envoy.log", ready_url=f"http://{admin.host}:{admin.port}/ready"
    )
    envoy.start()
    token = TokenIssuer(load_private_key(signing_keys[0]), 300).access_token("u-1", "ADMIN", "s-1")
    try:
        yield Edge(settings.listener.host, settings.listener.port, service, token)
    finally:
        envoy.stop()


@pytest.fixture(scope="module")
def edge(
    upstream: tuple[FakeUserService, int],
    signing_keys: tuple[Path, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Edge]:
    """Envoy with the default rate limits."""
    yield from start_edge(
        upstream, signing_keys, tmp_path_factory.mktemp("edge"), PublicRateLimits()
    )


@pytest.fixture(scope="module")
def tight_edge(
    upstream: tuple[FakeUserService, int],
    signing_keys: tuple[Path, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Edge]:
    """Envoy whose public writes may burst to 3, then 1 a second."""
    limits = PublicRateLimits(writes=TIGHT_BUCKET)
    yield from start_edge(upstream, signing_keys, tmp_path_factory.mktemp("tight"), limits)


def register(edge: Edge, body: object, headers: Mapping[str, str] = JSON) -> Answer:
    return call(edge, "POST", "/users", json.dumps(body).encode(), headers)


# Unknown JSON members -----------------------------------------------------------


def test_unknown_json_members_are_dropped_before_the_service(edge: Edge) -> None:
    # Envoy's transcoder cannot refuse them (README.md says so); this pins it.
    answer = register(edge, {"email": "ann@example.com", "isAdmin": True, "role": "ADMIN"})

    assert answer.status == 200
    request, _ = edge.service.last("CreateUser")
    assert request == user_pb2.CreateUserRequest(email="ann@example.com")


# Service credential -------------------------------------------------------------


def test_a_service_token_from_a_rest_client_never_reaches_a_service(edge: Edge) -> None:
    headers = {**JSON, SERVICE_TOKEN_HEADER: "forged", "x-probe": "kept"}

    assert register(edge, {"email": "ann@example.com"}, headers).status == 200

    _, metadata = edge.service.last("CreateUser")
    assert metadata["x-probe"] == "kept"
    assert SERVICE_TOKEN_HEADER not in metadata


def test_a_service_token_from_a_grpc_client_never_reaches_a_service(edge: Edge) -> None:
    with grpc.insecure_channel(f"{edge.host}:{edge.port}") as channel:
        user_pb2_grpc.UserServiceStub(channel).CreateUser(
            user_pb2.CreateUserRequest(email="grpc@example.com"),
            metadata=(
                ("authorization", f"Bearer {edge.token}"),
                (SERVICE_TOKEN_HEADER, "forged"),
            ),
            timeout=5,
        )

    request, metadata = edge.service.last("CreateUser")
    assert request.email == "grpc@example.com"  # type: ignore[attr-defined]
    assert SERVICE_TOKEN_HEADER not in metadata


# Internal methods ---------------------------------------------------------------


def test_an_internal_method_is_not_found_over_rest(edge: Edge) -> None:
    # ListUsers is GET /users; with a valid token it would reach the service.
    calls_before = len(edge.service.calls)

    answer = call(edge, "GET", "/users", headers={"authorization": f"Bearer {edge.token}"})

    assert (answer.status, answer.body["code"]) == (404, 5)
    assert len(edge.service.calls) == calls_before


def test_an_internal_method_is_not_found_over_grpc(edge: Edge) -> None:
    calls_before = len(edge.service.calls)

    with (
        grpc.insecure_channel(f"{edge.host}:{edge.port}") as channel,
        pytest.raises(grpc.RpcError) as failure,
    ):
        user_pb2_grpc.UserServiceStub(channel).ListUsers(
            user_pb2.ListUsersRequest(),
            metadata=(("authorization", f"Bearer {edge.token}"),),
            timeout=5,
        )

    assert failure.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert len(edge.service.calls) == calls_before


# Response headers ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status"),
    [
        pytest.param("POST", "/users", b'{"email": "a@b.c"}', JSON, 200, id="service-answer"),
        pytest.param("POST", "/users", b'{"email": "invalid"}', JSON, 400, id="service-error"),
        pytest.param("POST", "/auth/login", b"{}", JSON, 200, id="token-response"),
        pytest.param("GET", "/users/u-1", None, {}, 401, id="envoy-401"),
        pytest.param("POST", "/users", b"{", JSON, 400, id="envoy-400"),
        pytest.param("POST", "/users", b"x", {"content-type": "text/plain"}, 415, id="envoy-415"),
        pytest.param("GET", "/healthz", None, {}, 200, id="envoy-health"),
    ],
)
def test_every_answer_is_uncacheable_unsniffable_and_unbranded(
    edge: Edge,
    method: str,
    path: str,
    body: bytes | None,
    headers: dict[str, str],
    status: int,
) -> None:
    answer = call(edge, method, path, body, headers)

    assert answer.status == status
    for name, value in RESPONSE_HEADERS.items():
        assert answer.headers.get(name) == value, name
    assert "server" not in answer.headers


# Request media types ------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "text/plain;charset=UTF-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/json; charset=iso-8859-1",
        None,
    ],
)
def test_a_body_that_is_not_json_is_415_and_never_reaches_a_service(
    edge: Edge, content_type: str | None
) -> None:
    calls_before = len(edge.service.calls)
    headers = {} if content_type is None else {"content-type": content_type}

    answer = call(edge, "POST", "/users", b'{"email": "a@b.c"}', headers)

    assert answer.status == 415
    assert answer.body == {
        "code": 3,
        "message": "Content-Type must be application/json",
        "details": [],
    }
    assert len(edge.service.calls) == calls_before


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", "Application/JSON"]
)
def test_a_json_body_is_accepted(edge: Edge, content_type: str) -> None:
    answer = call(edge, "POST", "/users", b'{"email": "a@b.c"}', {"content-type": content_type})

    assert answer.status == 200


def test_a_post_without_a_body_needs_no_content_type(edge: Edge) -> None:
    assert call(edge, "POST", "/users", b"").status == 200
    assert call(edge, "POST", "/users").status == 200


def test_a_put_with_a_body_that_is_not_json_is_415(edge: Edge) -> None:
    auth = {"authorization": f"Bearer {edge.token}", "content-type": "text/plain"}

    assert call(edge, "PUT", "/users/u-1", b'{"phone": "+15551234567"}', auth).status == 415


# Rate limits --------------------------------------------------------------------


def test_a_burst_beyond_the_bucket_is_429_with_retry_after(tight_edge: Edge) -> None:
    answers = [call(tight_edge, "POST", "/auth/login", b"{}", JSON) for _ in range(8)]

    statuses = [answer.status for answer in answers]
    # The bucket holds 3; at most one more token can drip in during the burst.
    assert statuses[: TIGHT_BUCKET.burst] == [200] * TIGHT_BUCKET.burst
    assert statuses.count(429) >= 8 - TIGHT_BUCKET.burst - 1
    limited = next(answer for answer in answers if answer.status == 429)
    assert limited.body["code"] == 8
    assert int(limited.headers["retry-after"]) >= 1
    assert limited.headers["x-ratelimit-limit"] == str(TIGHT_BUCKET.burst)
    assert limited.headers["cache-control"] == "no-store"


def test_each_public_rpc_has_its_own_bucket(tight_edge: Edge) -> None:
    for _ in range(TIGHT_BUCKET.burst + 2):
        call(tight_edge, "POST", "/auth/login", b"{}", JSON)

    assert call(tight_edge, "POST", "/users", b"{}", JSON).status == 200


def test_calls_with_a_token_are_not_rate_limited_at_the_edge(tight_edge: Edge) -> None:
    auth = {"authorization": f"Bearer {tight_edge.token}"}

    statuses = {
        call(tight_edge, "GET", "/users/u-1", headers=auth).status
        for _ in range(TIGHT_BUCKET.burst + 3)
    }

    assert statuses == {200}
