"""The local stack's process wrappers against the real servers."""

import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import asyncpg
import nats
import pytest

from services.devstack.child_process import StartupError
from services.devstack.nats_process import NatsProcess
from services.devstack.postgres_process import PostgresProcess
from services.devstack.service_process import ServiceProcess
from tests.processes import descendants, is_alive


def asyncpg_dsn(url: str) -> str:
    # url() is for SQLAlchemy; asyncpg itself takes the plain scheme.
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def test_create_database_is_idempotent(postgres: PostgresProcess) -> None:
    postgres.create_database("devstack_twice")
    postgres.create_database("devstack_twice")

    connection = await asyncpg.connect(asyncpg_dsn(postgres.url("devstack_twice")))
    try:
        assert await connection.fetchval("SELECT current_database()") == "devstack_twice"
    finally:
        await connection.close()


async def test_postgres_keeps_data_across_restart(tmp_path: Path) -> None:
    server = PostgresProcess(tmp_path)
    server.start()
    try:
        server.create_database("kept")
        connection = await asyncpg.connect(asyncpg_dsn(server.url("kept")))
        await connection.execute("CREATE TABLE notes (body text); INSERT INTO notes VALUES ('hi')")
        await connection.close()

        server.stop()
        assert server.process.exit_code == 0
        server.start()

        connection = await asyncpg.connect(asyncpg_dsn(server.url("kept")))
        assert await connection.fetchval("SELECT body FROM notes") == "hi"
        await connection.close()
    finally:
        server.stop()


async def test_jetstream_keeps_messages_and_accepts_publishes_after_restart(
    tmp_path: Path,
) -> None:
    server = NatsProcess(tmp_path)
    server.start()
    try:
        client = await nats.connect(server.url)
        jetstream = client.jetstream()
        await jetstream.add_stream(name="DEVSTACK", subjects=["devstack.>"])
        await jetstream.publish("devstack.before", b"1", headers={"Nats-Msg-Id": "before"})
        await client.close()

        server.stop()
        server.start()

        client = await nats.connect(server.url)
        jetstream = client.jetstream()
        ack = await jetstream.publish("devstack.after", b"2", headers={"Nats-Msg-Id": "after"})
        info = await jetstream.stream_info("DEVSTACK")
        await client.close()
        assert ack.seq == 2
        assert info.state.messages == 2
    finally:
        server.stop()


def test_stopping_postgres_ends_it_and_every_backend(tmp_path: Path) -> None:
    server = PostgresProcess(tmp_path)
    server.start()
    postmaster = server.process.pid
    assert postmaster is not None
    backends = descendants(postmaster)
    assert backends, "postgres runs a checkpointer and other helpers as children"

    server.stop()

    assert [pid for pid in {postmaster, *backends} if is_alive(pid)] == []


def test_stopping_nats_ends_it(tmp_path: Path) -> None:
    server = NatsProcess(tmp_path)
    server.start()
    pid = server.process.pid
    assert pid is not None
    assert is_alive(pid)

    server.stop()

    assert not is_alive(pid)


def test_a_killed_parent_takes_its_servers_with_it(tmp_path: Path) -> None:
    # As when a test run or `make run` is killed before it can stop anything.
    script = textwrap.dedent(
        """
        import sys, time
        from pathlib import Path
        from services.devstack.nats_process import NatsProcess
        server = NatsProcess(Path(sys.argv[1]))
        server.start()
        print(server.process.pid, flush=True)
        time.sleep(60)
        """
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout is not None
        pid = int(parent.stdout.readline())
        assert is_alive(pid)
    finally:
        parent.kill()
        parent.wait()

    deadline = time.monotonic() + 10
    while is_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not is_alive(pid)


def test_start_failure_reports_the_log_tail(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        # Bound without listening: nats-server cannot bind, and the port refuses
        # connections, so only the process' exit can end the wait.
        squatter.bind(("127.0.0.1", 0))
        server = NatsProcess(tmp_path, port=squatter.getsockname()[1])

        with pytest.raises(StartupError, match="address already in use"):
            server.start()

    assert server.process.exit_code is not None


def test_service_that_cannot_start_reports_its_error(tmp_path: Path) -> None:
    service = ServiceProcess(
        "ghost", "services.no_such_service", env={}, log_file=tmp_path / "ghost.log"
    )

    with pytest.raises(StartupError, match=r"No module named services\.no_such_service"):
        service.start()
