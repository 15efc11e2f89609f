"""One WarmHouse service (`python -m services.<name>`) as our child."""

import sys
from collections.abc import Mapping
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.devstack.child_process import ChildProcess
from services.devstack.ports import LOOPBACK, free_port

# Generous: a service migrates its database before it reports SERVING.
STARTUP_TIMEOUT_SECONDS = 60.0
HEALTH_CHECK_TIMEOUT_SECONDS = 1.0


class ServiceProcess:
    """Runs `module` serving gRPC on 127.0.0.1:`port`; started means SERVING."""

    def __init__(
        self,
        name: str,
        module: str,
        env: Mapping[str, str],
        log_file: Path,
        port: int | None = None,
    ) -> None:
        self.module = module
        self.port = port or free_port()
        self._env = {**env, "WARMHOUSE_GRPC_ADDRESS": self.address}
        self.process = ChildProcess(name, log_file)

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def start(self) -> None:
        self.process.start(
            [sys.executable, "-m", self.module],
            is_ready=self._is_serving,
            timeout=STARTUP_TIMEOUT_SECONDS,
            env=self._env,
        )

    def stop(self) -> None:
        self.process.stop()

    def _is_serving(self) -> bool:
        with grpc.insecure_channel(self.address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            try:
                reply = health.Check(
                    health_pb2.HealthCheckRequest(service=""),
                    timeout=HEALTH_CHECK_TIMEOUT_SECONDS,
                )
            except grpc.RpcError:
                return False
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)
