"""Real servers shared by the whole test session, each in its own temporary directory."""

from collections.abc import Iterator

import pytest

from services.devstack.nats_process import NatsProcess
from services.devstack.postgres_process import PostgresProcess


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresProcess]:
    """A PostgreSQL server on a free port: `create_database(name)`, then `url(name)`."""
    server = PostgresProcess(tmp_path_factory.mktemp("postgres"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsProcess]:
    """A NATS server with JetStream on a free port; `nats_server.url`."""
    server = NatsProcess(tmp_path_factory.mktemp("nats"))
    server.start()
    try:
        yield server
    finally:
        server.stop()
