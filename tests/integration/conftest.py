"""Services run in-process against the session's real PostgreSQL and NATS."""

from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from warmhouse.user.v1 import user_pb2_grpc

from services.devstack.nats_process import NatsProcess
from services.devstack.postgres_process import PostgresProcess
from services.runtime.config import RuntimeSettings
from services.runtime.server import ServiceHost
from services.runtime.tracing import configure_tracing
from services.user.bootstrap import FirstAdmin, UserSettings, definition
from services.user.domain import LoginThrottling
from services.user.signing_keys import ensure_signing_key
from tests.integration.hosts import fresh_database, running_service
from tests.integration.households import household  # noqa: F401 (fixture)
from tests.integration.mesh import devices, mesh, people, spaces  # noqa: F401 (fixtures)

ADMIN = FirstAdmin("root@example.com", "an admin passphrase", "+15550000000")


@pytest.fixture(scope="session")
def signing_keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("keys")
    private, jwks = directory / "jwt-signing.pem", directory / "jwks.json"
    ensure_signing_key(private, jwks)
    return private, jwks


@pytest.fixture
def database_url(postgres: PostgresProcess) -> str:
    return fresh_database(postgres)


@pytest.fixture
def private_nats(tmp_path: Path) -> Iterator[NatsProcess]:
    """A NATS server of this test's own, for tests that stop or restart their broker.

    The session's `nats_server` is never stopped: every other test relies on it.
    """
    server = NatsProcess(tmp_path / "private-nats")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def runtime_settings(
    postgres: PostgresProcess, nats_server: NatsProcess, signing_keys: tuple[Path, Path]
) -> RuntimeSettings:
    return RuntimeSettings(
        grpc_address="127.0.0.1:0",
        database_url=fresh_database(postgres),
        nats_url=nats_server.url,
        jwks_file=signing_keys[1],
        service_secret=b"integration-tests-service-secret-0123456789",
        trusted_proxies=(),
        access_token_ttl_seconds=300,
        drain_seconds=5,
        log_level="INFO",
    )


@pytest.fixture(scope="session")
def user_settings(signing_keys: tuple[Path, Path]) -> UserSettings:
    return UserSettings(signing_keys[0], timedelta(days=1), ADMIN, LoginThrottling())


@pytest.fixture(scope="session")
async def user_host(
    runtime_settings: RuntimeSettings, user_settings: UserSettings, postgres: PostgresProcess
) -> AsyncIterator[tuple[ServiceHost, int]]:
    async with running_service(definition(user_settings), runtime_settings, postgres) as user:
        yield user.host, user.port


@pytest.fixture(scope="session")
async def user_channel(user_host: tuple[ServiceHost, int]) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{user_host[1]}") as channel:
        yield channel


@pytest.fixture
def users(user_channel: grpc.aio.Channel) -> user_pb2_grpc.UserServiceStub:
    return user_pb2_grpc.UserServiceStub(user_channel)


@pytest.fixture(scope="session")
def spans() -> InMemorySpanExporter:
    """Every span the session's in-process services record."""
    exporter = InMemorySpanExporter()
    configure_tracing("tests", SimpleSpanProcessor(exporter))
    return exporter
