"""One process we started: its log file, its start-up wait and its stop.

Every stop targets the PID we hold, never a process name, so two stacks (or a
stack and a test run) on one machine never touch each other's processes.
"""

import pwd
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, NoReturn

STOP_TIMEOUT_SECONDS = 15.0
POLL_INTERVAL_SECONDS = 0.05
LOG_TAIL_LINES = 40


class StartupError(RuntimeError):
    """A process exited or never became ready; the message ends with its log tail."""


class ChildProcess:
    """A child process whose output goes to `log_file`."""

    def __init__(
        self, name: str, log_file: Path, stop_signal: signal.Signals = signal.SIGTERM
    ) -> None:
        self.name = name
        self.log_file = log_file
        self._stop_signal = stop_signal
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        # Where this run's output begins: the log keeps earlier runs above it.
        self._log_offset = 0

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def exit_code(self) -> int | None:
        """None while running (or never started); the exit status once it ended."""
        return None if self._process is None else self._process.poll()

    def start(
        self,
        argv: Sequence[str],
        *,
        is_ready: Callable[[], bool],
        timeout: float,
        env: Mapping[str, str] | None = None,
        user: str | None = None,
    ) -> None:
        """Launch the process and return once `is_ready()`; on failure stop it and raise."""
        if self.running:
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_file.open("ab")
        self._log_offset = self._log.tell()
        self._log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(argv)}\n".encode())
        self._log.flush()
        self._process = subprocess.Popen(
            [*self._tied_to_us(), *argv],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            user=user,
            group=_primary_group(user),
            extra_groups=None if user is None else [],
            # Its own session: Ctrl-C in the terminal reaches only us, and we stop
            # the children in a deliberate order instead of all at once.
            start_new_session=True,
        )
        try:
            self._wait_until(is_ready, timeout)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Ask the process to stop, wait, then kill it; a no-op once it has exited."""
        process = self._process
        if process is not None and process.poll() is None:
            process.send_signal(self._stop_signal)
            try:
                process.wait(STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def kill(self) -> None:
        """SIGKILL, as a crash would end it: no clean-up of its own runs."""
        process = self._process
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()
        self.stop()

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The last lines the latest run wrote."""
        try:
            with self.log_file.open("rb") as log:
                log.seek(self._log_offset)
                text = log.read().decode(errors="replace")
        except FileNotFoundError:
            return "(no log written)"
        return "\n".join(text.splitlines()[-lines:])

    def _tied_to_us(self) -> list[str]:
        """A prefix that sends the child its stop signal if we die without stopping it.

        Without it a killed test run or `make run` leaves servers behind. util-linux'
        setpriv sets the parent-death signal, then execs the command in place, so
        the PID we hold stays the child's. Linux sends that signal when the thread
        that started the child ends: start processes from a long-lived thread.
        """
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            return []
        return [setpriv, "--pdeathsig", self._stop_signal.name.removeprefix("SIG"), "--"]

    def _wait_until(self, is_ready: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not is_ready():
            if self.exit_code is not None:
                self._fail(f"exited with status {self.exit_code} during start-up")
            if time.monotonic() > deadline:
                self._fail(f"was not ready after {timeout:g}s")
            time.sleep(POLL_INTERVAL_SECONDS)

    def _fail(self, what: str) -> NoReturn:
        raise StartupError(
            f"{self.name} (pid {self.pid}) {what}; last lines of {self.log_file}:\n"
            f"{self.log_tail()}"
        )


def run_to_completion(
    argv: Sequence[str], *, user: str | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a short command, as `user` if given, and return its captured output."""
    return subprocess.run(
        argv,
        capture_output=True,
        text=True,
        cwd=cwd,
        user=user,
        group=_primary_group(user),
        extra_groups=None if user is None else [],
        check=False,
    )


def _primary_group(user: str | None) -> int | None:
    # Popen(user=...) alone keeps root's groups, and root's group membership
    # would decide access to root-owned directories instead of "other".
    return None if user is None else pwd.getpwnam(user).pw_gid
