"""PostgreSQL from the pgserver wheel's binaries, run in the foreground as our child.

We use only the binaries: pgserver's own Python server daemonizes through
pg_ctl, registers atexit hooks and takes global lock files, so we could not hold
postgres' PID or run two independent servers.

postgres refuses to run as root, so as root we run it as a system user. That
user must reach both the binaries and the data directory, and a checkout may sit
under a private directory (/root, `mktemp -d`) it cannot pass. We never change
the permissions of directories we did not create; instead, as root:

- the binaries run from a copy in a public directory of our own
  (`INSTALL_CACHE/pgserver-<version>`), made once;
- when the system user cannot reach `<root>`, PostgreSQL's files live in a
  directory it owns under `EXTERNAL_DATA` and `<root>/pgdata` links there.
"""

import hashlib
import importlib.metadata
import importlib.util
import logging
import os
import pwd
import shutil
import signal
import stat
import subprocess
import tempfile
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
# As root only: public copies of pgserver's binaries, one per pgserver version.
INSTALL_CACHE = Path("/var/cache/warmhouse")
# As root only: data of roots the system user cannot reach, one directory each.
EXTERNAL_DATA = Path("/var/lib/warmhouse/postgres")
# Written in each external directory: the path that links to it.
LINKED_FROM_FILE = "linked-from"
PUBLIC_DIR_MODE = 0o755

log = logging.getLogger(__name__)


def bin_dir() -> Path:
    """The binaries inside the installed pgserver package."""
    # find_spec locates the package without importing it: importing pgserver
    # warns about XDG_RUNTIME_DIR, and our tests turn warnings into errors.
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the pgserver package is not installed (make venv)")
    return Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"


def external_home(data_dir: Path) -> Path:
    """Where PostgreSQL's files for `data_dir` go when the system user cannot reach it."""
    return EXTERNAL_DATA / hashlib.sha256(str(data_dir).encode()).hexdigest()[:16]


class PostgresProcess:
    """A PostgreSQL server on 127.0.0.1:`port` keeping its data under `root`.

    `data_dir` (`<root>/pgdata`) is the data directory or, as root when the
    system user cannot reach `root`, a link to it; `real_data_dir` is where the
    files are once started.
    """

    def __init__(self, root: Path, port: int | None = None) -> None:
        self.root = root.resolve()
        self.port = port or free_port()
        self.data_dir = self.root / "pgdata"
        self.real_data_dir = self.data_dir
        # SIGINT is postgres' "fast" shutdown: SIGTERM ("smart") would wait for
        # every client, e.g. a test's open connection pool, to disconnect first.
        self.process = ChildProcess("postgres", self.root / "postgres.log", signal.SIGINT)
        self._bin_dir: Path | None = None

    @property
    def socket_dir(self) -> Path:
        # postgres always opens a Unix socket too; keep it out of shared /tmp,
        # next to the data, where postgres' user can reach it.
        return self.real_data_dir.parent / "sockets"

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://{SUPERUSER}@{LOOPBACK}:{self.port}/{database}"

    def start(self) -> None:
        user = _unprivileged_user()
        self.root.mkdir(parents=True, exist_ok=True)
        self.real_data_dir = self._place_data(user)
        if not (self.real_data_dir / "PG_VERSION").exists():
            self._initdb(user)
        command = [
            str(self._binary("postgres")),
            *("-D", str(self.real_data_dir)),
            *("-h", LOOPBACK),
            *("-p", str(self.port)),
            *("-k", str(self.socket_dir)),
        ]
        self.process.start(
            command, is_ready=self._is_ready, timeout=STARTUP_TIMEOUT_SECONDS, user=user
        )

    def stop(self) -> None:
        self.process.stop()

    def remove_data(self) -> None:
        """Delete every file of this server, also those kept outside `root`; stop first."""
        if self.process.running:
            raise RuntimeError(f"postgres (pid {self.process.pid}) is still running")
        if self.data_dir.is_symlink():
            target = self.data_dir.resolve()
            self.data_dir.unlink()
            if target.parent.parent == EXTERNAL_DATA:
                shutil.rmtree(target.parent, ignore_errors=True)
        shutil.rmtree(self.data_dir, ignore_errors=True)
        shutil.rmtree(self.root / "sockets", ignore_errors=True)
        self.real_data_dir = self.data_dir

    def create_database(self, name: str) -> None:
        """Create database `name` unless it exists."""
        result = subprocess.run(
            [
                str(self._binary("psql")),
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

    def _binary(self, name: str) -> Path:
        if self._bin_dir is None:
            self._bin_dir = bin_dir() if os.geteuid() != 0 else _public_install() / "bin"
        return self._bin_dir / name

    def _is_ready(self) -> bool:
        probe = [str(self._binary("pg_isready")), "-h", LOOPBACK, "-p", str(self.port)]
        return run_to_completion([*probe, "-U", SUPERUSER]).returncode == 0

    def _place_data(self, user: str | None) -> Path:
        """Prepare the data and socket directories; return the real data directory."""
        if user is None:
            real = self.data_dir
            real.mkdir(mode=0o700, exist_ok=True)
        elif self.data_dir.exists() or self.data_dir.is_symlink():
            real = self.data_dir.resolve()
            if not _reachable(real.parent, user):
                raise StartupError(
                    f"{user} cannot reach {real}: {_private_ancestor(real)} is private. "
                    f"Move {self.data_dir} away to start afresh outside it."
                )
        elif _reachable(self.root, user):
            real = self.data_dir
            _make_owned_dir(real, user)
        else:
            real = self._link_external(user)
        if real != self.data_dir:
            log.warning(
                "PostgreSQL keeps the data of %s in %s: %s, which runs it, cannot reach %s "
                "(%s is private) and we leave permissions alone",
                self.data_dir,
                real,
                user,
                self.root,
                _private_ancestor(self.root),
            )
        sockets = real.parent / "sockets"
        if user is None:
            sockets.mkdir(exist_ok=True)
        else:
            _make_owned_dir(sockets, user)
        return real

    def _link_external(self, user: str) -> Path:
        home = external_home(self.data_dir)
        _make_public_dir(EXTERNAL_DATA)
        if not _reachable(EXTERNAL_DATA, user):
            raise StartupError(f"{user} cannot reach {EXTERNAL_DATA}; make it searchable")
        _make_owned_dir(home, user)
        real = home / "pgdata"
        _make_owned_dir(real, user)
        self.data_dir.symlink_to(real, target_is_directory=True)
        # Last: a home with this file has its link (see remove_orphaned_data).
        (home / LINKED_FROM_FILE).write_text(f"{self.data_dir}\n")
        return real

    def _initdb(self, user: str | None) -> None:
        command = [
            str(self._binary("initdb")),
            *("-D", str(self.real_data_dir)),
            *("-U", SUPERUSER, "--auth=trust", "--encoding=UTF8", "--no-locale"),
        ]
        result = run_to_completion(command, user=user, cwd=self.real_data_dir.parent)
        with self.process.log_file.open("a") as log_file:
            log_file.write(result.stdout + result.stderr)
        if result.returncode != 0:
            raise StartupError(
                f"initdb failed in {self.real_data_dir}:\n{result.stdout}{result.stderr}"
            )


def remove_orphaned_data(under: Path) -> list[Path]:
    """Remove the external data linked from below `under` whose link is gone; return it.

    For test runs, whose temporary directories vanish: a session killed before
    its teardown leaves PostgreSQL's files behind in EXTERNAL_DATA.
    """
    removed: list[Path] = []
    if not EXTERNAL_DATA.is_dir():
        return removed
    for home in EXTERNAL_DATA.iterdir():
        try:
            linked_from = Path((home / LINKED_FROM_FILE).read_text().strip())
        except OSError:
            continue  # being made right now, or not ours to judge
        if not linked_from.is_relative_to(under):
            continue
        if linked_from.is_symlink() and linked_from.resolve() == (home / "pgdata").resolve():
            continue
        shutil.rmtree(home, ignore_errors=True)
        removed.append(home)
    return removed


def _public_install() -> Path:
    """A copy of pgserver's installation that every user can read and run.

    Made once per pgserver version: copied to a temporary sibling, then renamed
    into place, so a half-made copy is never used and concurrent starts agree.
    The binaries find their shared libraries at `$ORIGIN/../../../pgserver.libs`,
    so the copy keeps site-packages' layout: pgserver/pginstall and pgserver.libs.
    """
    installation = bin_dir().parent
    package = installation.parent
    target = INSTALL_CACHE / f"pgserver-{importlib.metadata.version('pgserver')}"
    if not target.is_dir():
        _make_public_dir(INSTALL_CACHE)
        log.info("copying PostgreSQL's binaries to %s, where %s can run them", target, SYSTEM_USER)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=INSTALL_CACHE))
        try:
            shutil.copytree(installation, staging / package.name / installation.name, symlinks=True)
            libraries = package.parent / f"{package.name}.libs"
            if libraries.is_dir():
                shutil.copytree(libraries, staging / libraries.name, symlinks=True)
            _make_readable(staging)
            staging.rename(target)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
            if not target.is_dir():  # not just another start renaming its copy first
                raise
    return target / package.name / installation.name


def _make_readable(tree: Path) -> None:
    """Directories 0755, files 0644, or 0755 when executable: whatever the umask was."""
    for directory, _, files in os.walk(tree):
        os.chmod(directory, PUBLIC_DIR_MODE)
        for name in files:
            path = Path(directory, name)
            if not path.is_symlink():
                executable = path.stat().st_mode & 0o111
                path.chmod(0o755 if executable else 0o644)


def _make_public_dir(path: Path) -> None:
    """Create `path` (and missing parents) searchable by all; existing ones are left as they are."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for directory in reversed(missing):
        try:
            directory.mkdir()
        except FileExistsError:
            continue
        directory.chmod(PUBLIC_DIR_MODE)  # mkdir's mode is filtered by the umask


def _make_owned_dir(path: Path, user: str) -> None:
    path.mkdir(mode=0o700, exist_ok=True)
    entry = pwd.getpwnam(user)
    os.chown(path, entry.pw_uid, entry.pw_gid)


def _reachable(directory: Path, user: str) -> bool:
    """Whether `user` can pass through `directory` and every directory above it."""
    return run_to_completion(["test", "-x", str(directory)], user=user).returncode == 0


def _private_ancestor(path: Path) -> Path:
    """The topmost directory on the way to `path` that others may not pass, for messages."""
    for directory in [*reversed(path.parents), path]:
        if directory.exists() and not directory.stat().st_mode & stat.S_IXOTH:
            return directory
    return path


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
