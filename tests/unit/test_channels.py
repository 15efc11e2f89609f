"""Calls from one service to another: identity, forwarded user, deadline, retries."""

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from services.runtime.auth import RevokedTokens, TokenVerifier, current_caller
from services.runtime.authentication import Authenticators
from services.runtime.channels import open_channel
from services.runtime.grpc_types import ServicerContext
from services.runtime.interceptors import GuardInterceptor
from services.runtime.internal_auth import ServiceCredentials, current_service
from services.runtime.service import ServiceDescription, method_paths
from services.user.signing_keys import ensure_signing_key, load_private_key
from services.user.tokens import TokenIssuer
from tests import raw_grpc

CALLEE = "warmhouse.test.v1.CalleeService"
CALLER = "warmhouse.test.v1.CallerService"
MESH_KEY = b"k" * 32
DESCRIPTION = ServiceDescription(
    name="callee",
    grpc_services=(CALLEE, CALLER),
    internal_methods=method_paths(CALLEE, "WhoCalls", "Slow", "Flaky"),
)


class Mesh:
    """One server hosting a callee and a caller that relays to the callee."""

    def __init__(self) -> None:
        self.flaky_attempts = 0
        self.channel: grpc.aio.Channel | None = None

    async def who_calls(self, request: bytes, context: ServicerContext) -> bytes:
        user = current_caller().user_id if request == b"as-user" else "-"
        return f"{current_service()}/{user}".encode()

    async def slow(self, request: bytes, context: ServicerContext) -> bytes:
        await asyncio.sleep(5)  # longer than the channel's default deadline
        return b"late"

    async def flaky(self, request: bytes, context: ServicerContext) -> bytes:
        self.flaky_attempts += 1
        if self.flaky_attempts == 1:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "warming up")
        return b"ok"

    async def relay(self, request: bytes, context: ServicerContext) -> bytes:
        assert self.channel is not None
        reply: bytes = await raw_grpc.unary(self.channel, f"/{CALLEE}/WhoCalls")(b"as-user")
        return reply


@pytest.fixture
async def mesh(tmp_path: Path) -> AsyncIterator[tuple[Mesh, grpc.aio.Channel, TokenIssuer]]:
    ensure_signing_key(tmp_path / "key.pem", tmp_path / "jwks.json")
    verifier = TokenVerifier.from_file(
        tmp_path / "jwks.json", RevokedTokens(remember_seconds=60), max_lifetime_seconds=300
    )
    authenticators = Authenticators(verifier, ServiceCredentials(MESH_KEY, "callee"))
    server = grpc.aio.server(interceptors=[GuardInterceptor(DESCRIPTION.access, authenticators)])
    state = Mesh()
    callee = {
        "WhoCalls": raw_grpc.handler(state.who_calls),
        "Slow": raw_grpc.handler(state.slow),
        "Flaky": raw_grpc.handler(state.flaky),
    }
    caller = {"Relay": raw_grpc.handler(state.relay)}
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(CALLEE, callee),
            grpc.method_handlers_generic_handler(CALLER, caller),
        )
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = open_channel(
        f"127.0.0.1:{port}",
        ServiceCredentials(MESH_KEY, "billing"),
        idempotent_methods=method_paths(CALLEE, "Flaky"),
        deadline_seconds=0.5,
    )
    state.channel = channel
    issuer = TokenIssuer(load_private_key(tmp_path / "key.pem"), 60)
    yield state, channel, issuer
    await channel.close()
    await server.stop(None)


async def test_a_call_carries_the_calling_service(
    mesh: tuple[Mesh, grpc.aio.Channel, TokenIssuer],
) -> None:
    _, channel, _ = mesh
    assert await raw_grpc.unary(channel, f"/{CALLEE}/WhoCalls")(b"") == b"billing/-"


async def test_a_call_made_for_a_user_forwards_the_users_token(
    mesh: tuple[Mesh, grpc.aio.Channel, TokenIssuer],
) -> None:
    _, channel, issuer = mesh
    token = issuer.access_token("user-42", "USER", "s-1")
    relay = raw_grpc.unary(channel, f"/{CALLER}/Relay")
    reply = await relay(b"", metadata=(("authorization", f"Bearer {token}"),))
    assert reply == b"billing/user-42"


async def test_calls_get_a_default_deadline(
    mesh: tuple[Mesh, grpc.aio.Channel, TokenIssuer],
) -> None:
    _, channel, _ = mesh
    with pytest.raises(grpc.aio.AioRpcError) as late:
        await raw_grpc.unary(channel, f"/{CALLEE}/Slow")(b"")
    assert late.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


async def test_idempotent_calls_are_retried_when_unavailable(
    mesh: tuple[Mesh, grpc.aio.Channel, TokenIssuer],
) -> None:
    state, channel, _ = mesh
    assert await raw_grpc.unary(channel, f"/{CALLEE}/Flaky")(b"") == b"ok"
    assert state.flaky_attempts == 2
