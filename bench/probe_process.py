"""The probe host (`bench/probe_host.py`) as a child of the bench, next to a running stack.

It gets the environment the stack gives the User service, so the same signing
key, JWKS, service secret, NATS and settings, except for its database (one of
its own on the stack's PostgreSQL, so its writes never touch the stack's User
service) and its trusted proxy (the bench, which calls it from 127.0.0.1).
Stopped by PID, like every process of the stack.
"""

import os
from pathlib import Path

from services.devstack.ports import LOOPBACK
from services.devstack.service_process import ServiceProcess
from services.devstack.stack import Stack
from services.user.description import DESCRIPTION as USER

DATABASE = "warmhouse_bench_probe"
MODULE = "bench.probe_host"
# The checkout: `python -m bench.probe_host` must import bench/ wherever it runs from.
CHECKOUT = Path(__file__).resolve().parent.parent


class ProbeHost:
    def __init__(self, stack: Stack) -> None:
        self._stack = stack
        self._service: ServiceProcess | None = None

    @property
    def address(self) -> str:
        assert self._service is not None, "start() first"
        return self._service.address

    @property
    def log_file(self) -> Path:
        return self._stack.layout.service_logs / "bench-probe.log"

    def start(self) -> None:
        """Create its database, start it and return once it is SERVING; raises StartupError."""
        stack = self._stack
        stack.postgres.create_database(DATABASE)
        # The stack's own recipe for the User service's environment, so the probe
        # host follows it as it changes (Stack has no public accessor for it).
        env = stack._service_env(USER)
        env["WARMHOUSE_DATABASE_URL"] = stack.postgres.url(DATABASE)
        # The bench stands where Envoy stands for the stack's services: the probe
        # host believes the x-forwarded-for it sends (bench/grpc_load.py).
        env["WARMHOUSE_TRUSTED_PROXIES"] = LOOPBACK
        paths = [str(CHECKOUT / "gen"), str(CHECKOUT), env.get("PYTHONPATH", "")]
        env["PYTHONPATH"] = os.pathsep.join(path for path in paths if path)
        self._service = ServiceProcess("bench-probe", MODULE, env, self.log_file)
        self._service.start()

    def stop(self) -> None:
        if self._service is not None:
            self._service.stop()

    @property
    def exit_code(self) -> int | None:
        return None if self._service is None else self._service.process.exit_code
