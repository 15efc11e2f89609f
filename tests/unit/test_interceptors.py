"""The guard around every RPC: authentication and error mapping, on a real server."""

import logging
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path

import asyncpg
import grpc
import pytest
from sqlalchemy.exc import OperationalError

from services.runtime.auth import RevokedTokens, TokenVerifier, current_caller
from services.runtime.authentication import Authenticators
from services.runtime.errors import AlreadyExists, NotFound, PermissionDenied, Throttled
from services.runtime.grpc_types import ServicerContext
from services.runtime.interceptors import GuardInterceptor
from services.runtime.internal_auth import (
    SERVICE_TOKEN_HEADER,
    ServiceCredentials,
    current_service,
)
from services.runtime.service import ServiceDescription, method_paths
from services.user.signing_keys import ensure_signing_key, load_private_key
from services.user.tokens import TokenIssuer
from tests import raw_grpc
from tests.grpc_errors import error_reason

SERVICE = "warmhouse.test.v1.ProbeService"
PROBE = ServiceDescription(
    name="probe",
    grpc_services=(SERVICE,),
    public_methods=method_paths(SERVICE, "Fail", "FailStreaming"),
    internal_methods=method_paths(SERVICE, "WhichService"),
)
MESH_KEY = b"m" * 32
FAILURES: dict[str, Exception] = {
    "exists": AlreadyExists("EMAIL_TAKEN", "taken"),
    "missing": NotFound("NO_SUCH_THING", "gone"),
    "denied": PermissionDenied("NOT_OWNER", "not yours"),
    "throttled": Throttled("SLOW_DOWN", "later"),
    "database": OperationalError("SELECT 1", {}, ConnectionRefusedError("db down")),
    "crowded": asyncpg.TooManyConnectionsError("sorry, too many clients already"),
    "restarting": asyncpg.CannotConnectNowError("the database system is starting up"),
    "bug": RuntimeError("password=hunter2 leaked in a stack trace"),
}


async def who_am_i(request: bytes, context: ServicerContext) -> bytes:
    return current_caller().user_id.encode()


async def which_service(request: bytes, context: ServicerContext) -> bytes:
    return current_service().encode()


async def fail(request: bytes, context: ServicerContext) -> bytes:
    raise FAILURES[request.decode()]


async def fail_streaming(request: bytes, context: ServicerContext) -> AsyncIterator[bytes]:
    yield b"first"
    raise FAILURES[request.decode()]


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[tuple[grpc.aio.Channel, TokenIssuer]]:
    ensure_signing_key(tmp_path / "key.pem", tmp_path / "jwks.json")
    verifier = TokenVerifier.from_file(
        tmp_path / "jwks.json", RevokedTokens(remember_seconds=300), max_lifetime_seconds=300
    )
    authenticators = Authenticators(verifier, ServiceCredentials(MESH_KEY, "probe"))
    server = grpc.aio.server(interceptors=[GuardInterceptor(PROBE.access, authenticators)])
    handlers = {
        "WhoAmI": raw_grpc.handler(who_am_i),
        "WhichService": raw_grpc.handler(which_service),
        "Fail": raw_grpc.handler(fail),
        "FailStreaming": raw_grpc.stream_handler(fail_streaming),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    issuer = TokenIssuer(load_private_key(tmp_path / "key.pem"), 60)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield channel, issuer
    await server.stop(None)


async def test_private_methods_need_a_token_and_see_the_caller(
    server: tuple[grpc.aio.Channel, TokenIssuer],
) -> None:
    channel, issuer = server
    who_am_i = raw_grpc.unary(channel, f"/{SERVICE}/WhoAmI")
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await who_am_i(b"")
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    token = issuer.access_token("user-7", "USER", "session-1")
    assert await who_am_i(b"", metadata=(("authorization", f"Bearer {token}"),)) == b"user-7"


async def test_internal_methods_take_only_a_service_credential(
    server: tuple[grpc.aio.Channel, TokenIssuer],
) -> None:
    channel, issuer = server
    which_service = raw_grpc.unary(channel, f"/{SERVICE}/WhichService")
    user_token = issuer.access_token("user-7", "ADMIN", "session-1")
    forged = ServiceCredentials(b"x" * 32, "billing").token()
    refusals = [
        (),
        (("authorization", f"Bearer {user_token}"),),
        ((SERVICE_TOKEN_HEADER, forged),),
        ((SERVICE_TOKEN_HEADER, "a" * 6000),),
    ]
    for metadata in refusals:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await which_service(b"", metadata=metadata)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    genuine = ServiceCredentials(MESH_KEY, "billing").token()
    assert await which_service(b"", metadata=((SERVICE_TOKEN_HEADER, genuine),)) == b"billing"


@pytest.mark.parametrize(
    ("failure", "code", "reason"),
    [
        ("exists", grpc.StatusCode.ALREADY_EXISTS, "EMAIL_TAKEN"),
        ("missing", grpc.StatusCode.NOT_FOUND, "NO_SUCH_THING"),
        ("denied", grpc.StatusCode.PERMISSION_DENIED, "NOT_OWNER"),
        ("throttled", grpc.StatusCode.RESOURCE_EXHAUSTED, "SLOW_DOWN"),
        ("database", grpc.StatusCode.UNAVAILABLE, "DEPENDENCY_UNAVAILABLE"),
        ("crowded", grpc.StatusCode.UNAVAILABLE, "DEPENDENCY_UNAVAILABLE"),
        ("restarting", grpc.StatusCode.UNAVAILABLE, "DEPENDENCY_UNAVAILABLE"),
        ("bug", grpc.StatusCode.INTERNAL, "INTERNAL"),
    ],
)
async def test_errors_map_to_statuses_with_a_reason(
    server: tuple[grpc.aio.Channel, TokenIssuer], failure: str, code: grpc.StatusCode, reason: str
) -> None:
    channel, _ = server
    with pytest.raises(grpc.aio.AioRpcError) as unary:
        await raw_grpc.unary(channel, f"/{SERVICE}/Fail")(failure.encode())
    with pytest.raises(grpc.aio.AioRpcError) as streaming:
        await drain(raw_grpc.unary_stream(channel, f"/{SERVICE}/FailStreaming")(failure.encode()))
    for failed in (unary.value, streaming.value):
        assert failed.code() == code
        assert error_reason(failed) == reason


async def drain(responses: AsyncIterable[bytes]) -> None:
    async for _ in responses:
        pass


async def test_an_unexpected_error_is_logged_but_not_leaked(
    server: tuple[grpc.aio.Channel, TokenIssuer], caplog: pytest.LogCaptureFixture
) -> None:
    channel, _ = server
    with caplog.at_level(logging.ERROR), pytest.raises(grpc.aio.AioRpcError) as failed:
        await raw_grpc.unary(channel, f"/{SERVICE}/Fail")(b"bug")
    assert "hunter2" not in (failed.value.details() or "")
    assert "internal error" in (failed.value.details() or "")
    assert any("hunter2" in (record.exc_text or "") or record.exc_info for record in caplog.records)
