"""Real servers shared by the whole test session, each in its own temporary directory."""

from collections.abc import Iterator

import pytest

from services.devstack.nats_process import NatsProcess
from services.devstack.postgres_process import PostgresProcess, remove_orphaned_data


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresProcess]:
    """A PostgreSQL server on a free port: `create_database(name)`, then `url(name)`."""
    sessions = tmp_path_factory.getbasetemp().parent
    if sessions.name.startswith("pytest-of-"):
        # What killed sessions left outside their (since deleted) tmp dirs.
        remove_orphaned_data(sessions)
    server = PostgresProcess(tmp_path_factory.mktemp("postgres"))
    try:
        server.start()
        yield server
    finally:
        server.stop()
        # As root its files live outside the private tmp dir; pytest would not remove them.
        server.remove_data()


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsProcess]:
    """A NATS server with JetStream on a free port; `nats_server.url`."""
    server = NatsProcess(tmp_path_factory.mktemp("nats"))
    server.start()
    try:
        yield server
    finally:
        server.stop()
