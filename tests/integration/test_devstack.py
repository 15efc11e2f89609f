"""The local stack's process wrappers against the real servers."""

import logging
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import nats
import pytest

from services.devstack.child_process import StartupError
from services.devstack.nats_process import NatsProcess
from services.devstack.postgres_process import (
    INSTALL_CACHE,
    PostgresProcess,
    external_home,
    remove_orphaned_data,
)
from services.devstack.service_process import ServiceProcess
from tests.polling import wait_until
from tests.processes import descendants, is_alive

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="only root runs postgres as another user")


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


@pytest.fixture
def scratch_postgres(tmp_path: Path) -> Iterator[PostgresProcess]:
    """A PostgresProcess of this test's own, not started; stopped and deleted afterwards."""
    server = PostgresProcess(tmp_path)
    yield server
    server.stop()
    server.remove_data()


async def test_postgres_keeps_data_across_restart(scratch_postgres: PostgresProcess) -> None:
    server = scratch_postgres
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


def test_stopping_postgres_ends_it_and_every_backend(scratch_postgres: PostgresProcess) -> None:
    server = scratch_postgres
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
        time.sleep(60)  # alive, holding its server, until the test kills it
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

    wait_until(lambda: not is_alive(pid), what=f"nats-server (pid {pid}) ending")


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


def modes_from(directory: Path) -> dict[Path, int]:
    """The permission bits of `directory` and of every directory above it."""
    return {path: stat.S_IMODE(path.stat().st_mode) for path in (directory, *directory.parents)}


@as_root
async def test_postgres_under_a_private_directory_runs_and_changes_no_permissions(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A checkout cloned by root into `mktemp -d` or /root: its system user cannot pass.
    private = tmp_path / "private"
    private.mkdir()
    private.chmod(0o700)
    modes_before = modes_from(private)
    server = PostgresProcess(private / "checkout" / ".warmhouse" / "postgres")
    home = external_home(server.data_dir)
    caplog.set_level(logging.INFO, "services.devstack")
    try:
        server.start()
        server.create_database("private")
        connection = await asyncpg.connect(asyncpg_dsn(server.url("private")))
        assert await connection.fetchval("SELECT current_database()") == "private"
        await connection.close()

        assert server.data_dir.is_symlink()
        assert server.real_data_dir == home / "pgdata"
        assert str(server.real_data_dir) in caplog.text, "the console says where the data is"
        postgres_binary = os.readlink(f"/proc/{server.process.pid}/exe")
        assert postgres_binary.startswith(f"{INSTALL_CACHE}/"), "not from the private venv"
    finally:
        server.stop()
        modes_after = modes_from(private)
        server.remove_data()

    assert modes_after == modes_before
    assert not home.exists(), "the files kept outside the private tree are removed"
    assert not server.data_dir.is_symlink()


@as_root
def test_postgres_under_a_reachable_directory_keeps_its_data_there() -> None:
    # pytest's own tmp dirs are private; this one is ours and open.
    reachable = Path(tempfile.mkdtemp(prefix="warmhouse-test-"))
    reachable.chmod(0o755)
    server = PostgresProcess(reachable / "postgres")
    try:
        server.start()
        server.create_database("in_place")
        assert server.real_data_dir == server.data_dir
        assert not server.data_dir.is_symlink()
        assert (server.data_dir / "PG_VERSION").is_file()
        assert not external_home(server.data_dir).exists()
    finally:
        server.stop()
        server.remove_data()
        shutil.rmtree(reachable)


@as_root
def test_data_whose_link_is_gone_is_removed_and_linked_data_is_kept(tmp_path: Path) -> None:
    # As when a test session is killed before its teardown, then pytest deletes its tmp dir.
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    orphaned, alive = PostgresProcess(private / "orphaned"), PostgresProcess(private / "alive")
    try:
        for server in (orphaned, alive):
            server.start()
            server.stop()
        orphaned.data_dir.unlink()

        removed = remove_orphaned_data(tmp_path)

        assert removed == [external_home(orphaned.data_dir)]
        assert not external_home(orphaned.data_dir).exists()
        assert (alive.real_data_dir / "PG_VERSION").is_file()
        assert remove_orphaned_data(tmp_path / "elsewhere") == []
    finally:
        alive.remove_data()
        shutil.rmtree(external_home(orphaned.data_dir), ignore_errors=True)
