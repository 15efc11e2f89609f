"""`python -m bench.probe_host`: the User service plus the bench's probes, in one process.

`make bench` starts it with the environment the local stack gives the User
service, but with a database of its own. It runs the User service's real
definition (`services.user.bootstrap.build`) on the shared runtime, exactly as
`python -m services.user` does (`services.runtime.server.run`: ServiceHost,
uvloop, the tracing and guard interceptors), and adds
`warmhouse.bench.v1.ProbeService` (see `bench/probe_api.py`), so that every
direct-gRPC figure of a run is served by this one process:

- Echo: the floor of any RPC on this runtime (public, does no work).
- RawRead: the row GetUser reads, by one asyncpg `fetchrow` on a pool of the
  probe's own, behind the same access-token check as GetUser.
- RawWrite: what a registration stores, a users row and an outbox row (a
  UserRegistered), in one raw asyncpg transaction (no validation, no SQLAlchemy).
- Write: the same two rows through the service's real write path: the User
  service's unit of work (`DatabaseUnitOfWork` on the runtime's database and
  outbox relay) and repository, with the record built and validated as
  `UserHandlers.register` builds it, but with the stubbed hash and without
  the registration throttle's transaction that CreateUser also runs.
- StubbedHashes: how often the stubbed password hash ran, so the bench can
  tell that CreateUser really skipped argon2.

In this process only, the password hash the User service's handlers call is
replaced by one precomputed argon2id hash of the bench's password: CreateUser
then measures registration without argon2, and Login, which still verifies for
real, accepts the bench's password for every user created here.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import sys
import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime

import asyncpg
import grpc
from warmhouse.user.v1 import user_pb2

from bench.account import PASSWORD
from bench.probe_api import (
    ECHO,
    PROBE_SERVICE,
    PUBLIC_METHODS,
    RAW_READ,
    RAW_WRITE,
    STUBBED_HASHES,
    WRITE,
)
from services.runtime.clock import utc_now
from services.runtime.config import Environment, RuntimeSettings
from services.runtime.database import asyncpg_dsn
from services.runtime.grpc_types import ServicerContext
from services.runtime.server import Runtime, ServiceDefinition, Worker, run
from services.runtime.unit_of_work import DatabaseUnitOfWork
from services.user import domain
from services.user.bootstrap import build
from services.user.handlers import new_account, store_new_account
from services.user.ports import UserRepositories
from services.user.repository import sql_repositories

# The password hasher the User service's handlers use: its `hash` method is
# replaced on the class, so every instance, wherever built, uses the stub.
# Update these if the service moves its hashing; the probe host refuses to
# start while they name nothing.
HASHER_MODULE = "services.user.passwords"
HASHER_CLASS = "Argon2Passwords"
HASH_METHOD = "hash"
# Connections of the probe's own asyncpg pool.
POOL_SIZE = 10
POOL_CLOSE_SECONDS = 2.0

# The columns of services/user/migrations/0001_users.sql and of the runtime's
# outbox (services/runtime/migrations/0001_events.sql), as CreateUser fills them.
SELECT_USER = (
    "SELECT id, email, phone, password_hash, role, is_active, created_at, updated_at"
    " FROM users WHERE id = $1"
)
INSERT_USER = (
    "INSERT INTO users (id, email, phone, password_hash, role, is_active, created_at, updated_at)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
)
INSERT_OUTBOX = (
    "INSERT INTO outbox (event_id, subject, payload, headers) VALUES ($1, $2, $3, $4::jsonb)"
)
# What the runtime's add_event writes for a UserRegistered, minus the trace context.
REGISTERED_SUBJECT = user_pb2.UserRegistered.DESCRIPTOR.full_name
REGISTERED_HEADERS = json.dumps({})
# Separates the fields of RawRead's answer.
FIELD_SEPARATOR = "\x1f"


class ProbeSetupError(RuntimeError):
    """The probe host cannot measure what it claims to: it refuses to start."""


class StubbedHash:
    """Stands in for the service's password hash: one precomputed hash, counted calls."""

    def __init__(self, encoded: str) -> None:
        self.encoded = encoded
        self.calls = 0

    async def __call__(self, password: str) -> str:
        self.calls += 1
        return self.encoded


def stub_password_hash() -> StubbedHash:
    """Replace the hash the User service's registration calls; fail loudly if it moved."""
    module = importlib.import_module(HASHER_MODULE)
    hasher = getattr(module, HASHER_CLASS, None)
    original = getattr(hasher, HASH_METHOD, None)
    if not isinstance(hasher, type) or not inspect.iscoroutinefunction(original):
        raise ProbeSetupError(
            f"{HASHER_MODULE}.{HASHER_CLASS}.{HASH_METHOD} is {original!r}, not the async "
            "password hash the bench replaces: update HASHER_* in bench/probe_host.py"
        )
    # Hashed for real once, with the service's own parameters, so Login verifies it.
    stub = StubbedHash(asyncio.run(hasher().hash(PASSWORD)))

    async def precomputed_hash(self: object, password: str) -> str:
        return await stub(password)

    setattr(hasher, HASH_METHOD, precomputed_hash)
    return stub


class Probes:
    """The handlers of ProbeService: raw bytes in, raw bytes out."""

    def __init__(
        self, pool: asyncpg.Pool, uow: DatabaseUnitOfWork[UserRepositories], stub: StubbedHash
    ) -> None:
        self._pool = pool
        self._uow = uow
        self._stub = stub

    def generic_handler(self) -> grpc.GenericRpcHandler:
        methods: dict[str, grpc.RpcMethodHandler[bytes, bytes]] = {
            path.rsplit("/", 1)[1]: grpc.unary_unary_rpc_method_handler(behaviour)
            for path, behaviour in (
                (ECHO, self.echo),
                (RAW_READ, self.raw_read),
                (RAW_WRITE, self.raw_write),
                (WRITE, self.write),
                (STUBBED_HASHES, self.stubbed_hashes),
            )
        }
        return grpc.method_handlers_generic_handler(PROBE_SERVICE, methods)

    async def echo(self, request: bytes, context: ServicerContext) -> bytes:
        return request

    async def raw_read(self, request: bytes, context: ServicerContext) -> bytes:
        user_id = uuid.UUID(request.decode())
        row = await self._pool.fetchrow(SELECT_USER, user_id)
        if row is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no user {user_id}")
        return FIELD_SEPARATOR.join(str(value) for value in row.values()).encode()

    async def raw_write(self, request: bytes, context: ServicerContext) -> bytes:
        create = user_pb2.CreateUserRequest.FromString(request)
        user_id, now = uuid.uuid4(), datetime.now(UTC)
        email = create.email.strip().lower()
        event = user_pb2.UserRegistered(
            user_id=str(user_id),
            email=email,
            phone=create.phone,
            role=user_pb2.USER,
        )
        event.occur_time.FromDatetime(now)
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                INSERT_USER,
                user_id,
                email,
                create.phone,
                self._stub.encoded,
                "USER",
                True,
                now,
                now,
            )
            await conn.execute(
                INSERT_OUTBOX,
                uuid.uuid4(),
                REGISTERED_SUBJECT,
                event.SerializeToString(),
                REGISTERED_HEADERS,
            )
        return str(user_id).encode()

    async def write(self, request: bytes, context: ServicerContext) -> bytes:
        create = user_pb2.CreateUserRequest.FromString(request)
        email, phone = domain.valid_account(
            create.email, create.password, create.phone, domain.ROLE_USER
        )
        # As UserHandlers._create builds and stores it, but with the precomputed
        # hash taken directly: StubbedHashes counts CreateUser's calls only.
        user = new_account(email, phone, self._stub.encoded, domain.ROLE_USER, utc_now())
        await store_new_account(self._uow, user)
        return str(user.id).encode()

    async def stubbed_hashes(self, request: bytes, context: ServicerContext) -> bytes:
        return str(self._stub.calls).encode()


class PoolCloser:
    """A worker that does nothing until the host stops it, then closes the pool."""

    name = "probe-pool-closer"

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def run(self) -> None:
        try:
            await asyncio.get_running_loop().create_future()
        finally:
            try:
                async with asyncio.timeout(POOL_CLOSE_SECONDS):
                    await self._pool.close()
            except TimeoutError:
                self._pool.terminate()


def with_probes(user: ServiceDefinition, stub: StubbedHash) -> ServiceDefinition:
    """The User service's definition, also serving ProbeService."""

    async def attach(server: grpc.aio.Server, runtime: Runtime) -> Sequence[Worker]:
        workers = await user.attach(server, runtime)
        assert runtime.settings.database_url is not None, "the User service owns a database"
        pool = await asyncpg.create_pool(
            asyncpg_dsn(runtime.settings.database_url), min_size=POOL_SIZE, max_size=POOL_SIZE
        )
        # The unit of work the User service's handlers get (services/user/bootstrap.py).
        uow = DatabaseUnitOfWork(runtime.database, runtime.relay, sql_repositories)
        server.add_generic_rpc_handlers((Probes(pool, uow, stub).generic_handler(),))
        return (*workers, PoolCloser(pool))

    description = replace(
        user.description,
        grpc_services=(*user.description.grpc_services, PROBE_SERVICE),
        public_methods=user.description.public_methods | PUBLIC_METHODS,
    )
    return replace(user, description=description, attach=attach)


def main() -> None:
    try:
        stub = stub_password_hash()
    except ProbeSetupError as error:
        sys.exit(f"bench probe host: {error}")

    def build_with_probes(env: Environment) -> tuple[ServiceDefinition, RuntimeSettings]:
        user, settings = build(env)
        return with_probes(user, stub), settings

    run(build_with_probes)


if __name__ == "__main__":
    main()
