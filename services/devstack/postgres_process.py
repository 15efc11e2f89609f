"""PostgreSQL from the pgserver wheel's binaries, run in the foreground as our child.

We use only the binaries: pgserver's own Python server daemonizes through
pg_ctl, registers atexit hooks and takes global lock files, so we could not hold
postgres' PID or run two independent servers.
"""

import importlib.util
import os
import pwd
import signal
import stat
import subprocess
from pathlib import Path

from services.devstack.child_process import ChildProcess, StartupError, run_to_completion
from services.devstack.ports import LOOPBACK, free_port

SUPERUSER = "postgres"
# postgres refuses to run as root; as root we run it as this system user.
SYSTEM_USER = "warmhouse-postgres"
STARTUP_TIMEOUT_SECONDS = 60.0
# Creates the database only when missing; \gexec runs the generated statement.
CREATE_DATABASE_SQL = (
    "SELECT 'CREATE DATABASE ' || quote_ident(:'name') "
    "WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'name')\\gexec\n"
)


def bin_dir() -> Path:
    # find_spec locates the package without importing it: importing pgserver
    # warns about XDG_RUNTIME_DIR, and our tests turn warnings into errors.
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the pgserver package is not installed (make venv)")
    return Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"


class PostgresProcess:
    """A PostgreSQL server on 127.0.0.1:`port` keeping its data under `root`."""

    def __init__(self, root: Path, port: int | None = None) -> None:
        self.root = root.resolve()
        self.port = port or free_port()
        self.data_dir = self.root / "pgdata"
        # postgres always opens a Unix socket too; keep it out of shared /tmp.
        self.socket_dir = self.root / "sockets"
        # SIGINT is postgres' "fast" shutdown: SIGTERM ("smart") would wait for
        # every client, e.g. a test's open connection pool, to disconnect first.
        self.process = ChildProcess("postgres", self.root / "postgres.log", signal.SIGINT)

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://{SUPERUSER}@{LOOPBACK}:{self.port}/{database}"

    def start(self) -> None:
        user = _unprivileged_user()
        self._prepare_directories(user)
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb(user)
        command = [
            str(bin_dir() / "postgres"),
            *("-D", str(self.data_dir)),
            *("-h", LOOPBACK),
            *("-p", str(self.port)),
            *("-k", str(self.socket_dir)),
        ]
        self.process.start(
            command, is_ready=self._is_ready, timeout=STARTUP_TIMEOUT_SECONDS, user=user
        )

    def stop(self) -> None:
        self.process.stop()

    def create_database(self, name: str) -> None:
        """Create database `name` unless it exists."""
        result = subprocess.run(
            [
                str(bin_dir() / "psql"),
                *("-h", LOOPBACK, "-p", str(self.port), "-U", SUPERUSER, "-d", "postgres"),
                # No ~/.psqlrc, never prompt for a password, stop at the first error.
                *("-X", "-w", "-q", "-v", "ON_ERROR_STOP=1", "-v", f"name={name}"),
            ],
            input=CREATE_DATABASE_SQL,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"creating database {name!r} failed:\n{result.stderr}")

    def _is_ready(self) -> bool:
        probe = [str(bin_dir() / "pg_isready"), "-h", LOOPBACK, "-p", str(self.port)]
        return run_to_completion([*probe, "-U", SUPERUSER]).returncode == 0

    def _prepare_directories(self, user: str | None) -> None:
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.socket_dir.mkdir(exist_ok=True)
        if user is not None:
            entry = pwd.getpwnam(user)
            for directory in (self.data_dir, self.socket_dir):
                os.chown(directory, entry.pw_uid, entry.pw_gid)
            _allow_traversal(self.data_dir)

    def _initdb(self, user: str | None) -> None:
        command = [
            str(bin_dir() / "initdb"),
            *("-D", str(self.data_dir)),
            *("-U", SUPERUSER, "--auth=trust", "--encoding=UTF8", "--no-locale"),
        ]
        result = run_to_completion(command, user=user, cwd=self.root)
        with self.process.log_file.open("a") as log:
            log.write(result.stdout + result.stderr)
        if result.returncode != 0:
            raise StartupError(f"initdb failed in {self.data_dir}:\n{result.stdout}{result.stderr}")


def _unprivileged_user() -> str | None:
    """The system user to run postgres as, created if missing; None unless we are root."""
    if os.geteuid() != 0:
        return None
    if not _user_exists(SYSTEM_USER):
        created = run_to_completion(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SYSTEM_USER]
        )
        # Another stack starting at the same moment may have just created it.
        if created.returncode != 0 and not _user_exists(SYSTEM_USER):
            raise RuntimeError(f"useradd {SYSTEM_USER} failed: {created.stderr}")
    return SYSTEM_USER


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _allow_traversal(path: Path) -> None:
    """Let other users pass through every directory above `path`.

    postgres, running as its own user, must reach its data directory; private
    parents such as pytest's /tmp/pytest-of-root (0700) would stop it. Only the
    search bit is added: nobody else gains the right to list or read anything.
    """
    for directory in path.parents:
        mode = directory.stat().st_mode
        if not mode & stat.S_IXOTH:
            directory.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)
