"""Load straight over gRPC on the probe host (`bench/probe_host.py`), skipping Envoy.

Every phase runs `concurrency` closed-loop workers sharing one grpc.aio
channel (one HTTP/2 connection), the same for the real RPCs (GetUser,
CreateUser), for the write path (Write) and for the baselines they are
compared with (Echo, RawRead, RawWrite), so the client's own cost is alike in
all of them.
"""

from __future__ import annotations

import ipaddress
import secrets

import grpc
from warmhouse.user.v1.user_pb2 import CreateUserRequest, GetUserRequest, LoginRequest
from warmhouse.user.v1.user_pb2_grpc import UserServiceStub

from bench.account import PASSWORD, Account, SetupError
from bench.closed_loop import REQUEST_TIMEOUT_SECONDS, Budget, Call, run_closed_loop
from bench.figures import LoadFigures
from bench.probe_api import ECHO, RAW_READ, RAW_WRITE, STUBBED_HASHES, WRITE

ECHO_PAYLOAD = b"warmhouse-bench-echo"


def new_client() -> tuple[tuple[str, str], ...]:
    """Metadata naming a client address of its own, as Envoy would forward it.

    The probe host believes x-forwarded-for from the bench (127.0.0.1), as the
    stack's services believe Envoy's. Registrations are throttled per client
    address: from one address they would all update one counter row, which real
    sign-ups, from many addresses, never do.
    """
    address = ipaddress.IPv4Address((10 << 24) | secrets.randbelow(1 << 24))
    return (("x-forwarded-for", str(address)),)


def new_user_request(label: str) -> CreateUserRequest:
    """A valid CreateUserRequest with an email no other call of this run uses."""
    return CreateUserRequest(
        email=f"bench-{label}-{secrets.token_hex(8)}@example.com",
        password=PASSWORD,
        phone=f"+1555{secrets.randbelow(10**7):07d}",
    )


class DirectLoad:
    """The direct-gRPC phases, all on one channel to the probe host."""

    def __init__(self, channel: grpc.aio.Channel, concurrency: int) -> None:
        self._channel = channel
        self._users = UserServiceStub(channel)
        self.concurrency = concurrency
        self.description = f"grpc.aio in Python on uvloop, {concurrency} workers on one channel"

    async def register_and_log_in(self) -> Account:
        """A user of the probe host's own database, with an access token for it."""
        try:
            request = new_user_request("owner")
            created = await self._users.CreateUser(request, timeout=REQUEST_TIMEOUT_SECONDS)
            session = await self._users.Login(
                LoginRequest(email=request.email, password=request.password),
                timeout=REQUEST_TIMEOUT_SECONDS,
            )
        except grpc.aio.AioRpcError as error:
            raise SetupError(
                f"registering on the probe host failed: {error.code().name}: {error.details()}"
            ) from None
        if session.user_id != created.user_id:
            raise SetupError(f"probe host login answered for another user: {session.user_id!r}")
        return Account(user_id=created.user_id, access_token=session.access_token)

    async def stubbed_hashes(self) -> int:
        """How often the probe host's stubbed password hash has run."""
        reply = await _raw(self._channel, STUBBED_HASHES)(b"", timeout=REQUEST_TIMEOUT_SECONDS)
        return int(reply.decode())

    async def echo(self, budget: Budget) -> LoadFigures:
        return await self._run(self._echo(), budget)

    async def raw_read(self, account: Account, budget: Budget) -> LoadFigures:
        return await self._run(self._raw_read(account), budget)

    async def get_user(self, account: Account, budget: Budget) -> LoadFigures:
        return await self._run(self._get_user(account), budget)

    async def raw_write(self, budget: Budget) -> LoadFigures:
        return await self._run(self._create_raw(RAW_WRITE, "raw"), budget)

    async def write(self, budget: Budget) -> LoadFigures:
        return await self._run(self._create_raw(WRITE, "write"), budget)

    async def create_user(self, budget: Budget) -> LoadFigures:
        return await self._run(self._create_user(), budget)

    async def _run(self, call: Call, budget: Budget) -> LoadFigures:
        return await run_closed_loop([call] * self.concurrency, budget)

    def _echo(self) -> Call:
        echo = _raw(self._channel, ECHO)

        async def call() -> str | None:
            try:
                reply = await echo(ECHO_PAYLOAD, timeout=REQUEST_TIMEOUT_SECONDS)
            except grpc.aio.AioRpcError as error:
                return _failed(error)
            return None if reply == ECHO_PAYLOAD else f"Echo answered {reply[:100]!r}"

        return call

    def _raw_read(self, account: Account) -> Call:
        raw_read = _raw(self._channel, RAW_READ)
        request = account.user_id.encode()
        metadata = (("authorization", account.authorization),)

        async def call() -> str | None:
            try:
                reply = await raw_read(request, metadata=metadata, timeout=REQUEST_TIMEOUT_SECONDS)
            except grpc.aio.AioRpcError as error:
                return _failed(error)
            return None if reply.startswith(request) else f"RawRead answered {reply[:100]!r}"

        return call

    def _get_user(self, account: Account) -> Call:
        request = GetUserRequest(user_id=account.user_id)
        metadata = (("authorization", account.authorization),)

        async def call() -> str | None:
            try:
                reply = await self._users.GetUser(
                    request, metadata=metadata, timeout=REQUEST_TIMEOUT_SECONDS
                )
            except grpc.aio.AioRpcError as error:
                return _failed(error)
            if reply.user.user_id != account.user_id:
                return f"GetUser answered with user {reply.user.user_id!r}"
            return None

        return call

    def _create_raw(self, method: str, label: str) -> Call:
        """RawWrite or Write: a new user from a serialized CreateUserRequest."""
        create = _raw(self._channel, method)
        name = method.rsplit("/", 1)[1]

        async def call() -> str | None:
            # Serialized here as the stub serializes CreateUser's: the same client work.
            request = new_user_request(label).SerializeToString()
            try:
                reply = await create(
                    request, metadata=new_client(), timeout=REQUEST_TIMEOUT_SECONDS
                )
            except grpc.aio.AioRpcError as error:
                return _failed(error)
            return None if reply else f"{name} answered no user id"

        return call

    def _create_user(self) -> Call:
        async def call() -> str | None:
            request = new_user_request("load")
            try:
                reply = await self._users.CreateUser(
                    request, metadata=new_client(), timeout=REQUEST_TIMEOUT_SECONDS
                )
            except grpc.aio.AioRpcError as error:
                return _failed(error)
            return None if reply.user_id else "CreateUser answered no user id"

        return call


def _failed(error: grpc.aio.AioRpcError) -> str:
    return f"gRPC {error.code().name}: {error.details()}"


def _raw(channel: grpc.aio.Channel, method: str) -> grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]:
    """A probe method: raw bytes each way (the probe service has no proto)."""
    return channel.unary_unary(method)
