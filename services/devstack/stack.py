"""The whole platform on one machine: Postgres, NATS, every registered service, Envoy.

State (databases, JetStream, signing key) lives in one data directory and
survives restarts; every port except Envoy's listener is picked free at start,
so two stacks can run side by side.
"""

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

from services.billing.description import DESCRIPTION as BILLING
from services.billing.description import PROVIDER_API_KEY_ENV, WEBHOOK_SECRET_ENV
from services.devstack.checkout import DESCRIPTOR_SET
from services.devstack.child_process import ChildProcess
from services.devstack.envoy_config import (
    EnvoySettings,
    PublicRateLimits,
    SocketAddress,
    render,
)
from services.devstack.envoy_process import EnvoyProcess
from services.devstack.layout import DataLayout
from services.devstack.message_sandbox_process import MessageSandboxProcess
from services.devstack.nats_process import NatsProcess
from services.devstack.payment_sandbox_process import PaymentSandboxProcess
from services.devstack.ports import LOOPBACK, free_port
from services.devstack.postgres_process import PostgresProcess
from services.devstack.secrets import ensure_secret_file
from services.devstack.service_process import ServiceProcess
from services.notification.description import DESCRIPTION as NOTIFICATION
from services.notification.description import PUSH_API_KEY_ENV, SMS_API_KEY_ENV
from services.registry import SERVICES
from services.runtime.config import service_address_variable
from services.runtime.service import ServiceDescription
from services.user.signing_keys import ensure_signing_key

# Envoy's upstream connections leave from here, so services can tell Envoy
# (whose x-forwarded-for they believe) from a local client calling directly.
ENVOY_SOURCE_ADDRESS = "127.0.0.2"
DEFAULT_RATE_LIMITS = PublicRateLimits()
# The sender of Notification's e-mail in the local stack.
NOTIFICATION_FROM_ADDRESS = "alerts@warmhouse.example"


class Stack:
    """Starts everything in dependency order; stops services first, Postgres last.

    `extra_env` reaches every service on top of this process' environment and
    the runtime's contract (WARMHOUSE_* addresses and key files).
    """

    def __init__(
        self,
        data_dir: Path,
        http_port: int,
        extra_env: Mapping[str, str] | None = None,
        services: Sequence[ServiceDescription] = SERVICES,
        rate_limits: PublicRateLimits = DEFAULT_RATE_LIMITS,
        sandbox_hang_seconds: float = 30.0,
    ) -> None:
        self.layout = DataLayout(data_dir.resolve())
        self.http_port = http_port
        self.postgres = PostgresProcess(self.layout.postgres)
        self.nats = NatsProcess(self.layout.nats)
        self._specs = tuple(services)
        self._extra_env = dict(extra_env or {})
        self._rate_limits = rate_limits
        # The payment provider Billing calls, simulated; its webhooks come through Envoy.
        self.payment_sandbox = (
            PaymentSandboxProcess(
                self.layout.root / "payment-sandbox",
                f"{self.base_url}/billing/provider-events",
                hang_seconds=sandbox_hang_seconds,
                api_key_file=self.layout.keys / BILLING.secret_files[PROVIDER_API_KEY_ENV],
                webhook_secret_file=self.layout.keys / BILLING.secret_files[WEBHOOK_SECRET_ENV],
            )
            if BILLING in self._specs
            else None
        )
        # The SMTP server and SMS and push gateways Notification uses, simulated.
        self.message_sandbox = (
            MessageSandboxProcess(
                self.layout.root / "message-sandbox",
                sms_api_key_file=self.layout.keys / NOTIFICATION.secret_files[SMS_API_KEY_ENV],
                push_api_key_file=self.layout.keys / NOTIFICATION.secret_files[PUSH_API_KEY_ENV],
            )
            if NOTIFICATION in self._specs
            else None
        )
        # Picked before any service starts: each one's environment names all.
        self._ports = {spec.name: free_port() for spec in self._specs}
        self.services = {
            spec.name: self.replica(spec.name, port=self._ports[spec.name]) for spec in self._specs
        }
        self.envoy_admin_port = free_port()
        self.envoy = EnvoyProcess(
            self.layout.envoy / "envoy.json",
            self.layout.envoy / "envoy.log",
            # Started means every service is reachable through Envoy.
            ready_url=f"{self.base_url}/healthz",
        )

    def replica(
        self,
        name: str,
        *,
        port: int | None = None,
        log_name: str = "",
        extra_env: Mapping[str, str] | None = None,
    ) -> ServiceProcess:
        """A process of service `name` configured as the stack's own (not started):
        the stack's, or another replica beside it (on a port of its own)."""
        spec = next(spec for spec in self._specs if spec.name == name)
        return ServiceProcess(
            spec.name,
            spec.module,
            {**self._service_env(spec), **(extra_env or {})},
            self.layout.service_logs / f"{log_name or spec.name}.log",
            port=port,
        )

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.http_port}"

    def grpc_address(self, service: str) -> str:
        return self.services[service].address

    @property
    def processes(self) -> list[ChildProcess]:
        return [
            self.postgres.process,
            self.nats.process,
            *(sandbox.process for sandbox in self._sandboxes),
            *(service.process for service in self.services.values()),
            self.envoy.process,
        ]

    def start(self) -> None:
        """Start everything; if anything fails, stop what already runs and raise."""
        try:
            self.postgres.start()
            for spec in self._specs:
                if spec.owns_database:
                    self.postgres.create_database(spec.database)
            self.nats.start()
            ensure_signing_key(self.layout.signing_key_file, self.layout.jwks_file)
            ensure_secret_file(self.layout.service_secret_file)
            for spec in self._specs:
                # Keys only one service holds (the signing key exists by now).
                for file_name in spec.secret_files.values():
                    ensure_secret_file(self.layout.keys / file_name)
            for sandbox in self._sandboxes:
                sandbox.start()
            for service in self.services.values():
                service.start()
            self._write_envoy_config()
            self.envoy.start()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        # Services first, so they drain while their database and broker are up.
        for service in reversed(self.services.values()):
            service.stop()
        self.envoy.stop()
        for sandbox in self._sandboxes:
            sandbox.stop()
        self.nats.stop()
        self.postgres.stop()

    def first_exited(self) -> ChildProcess | None:
        """A process of the stack that has ended, if any; all run while this is None."""
        return next((process for process in self.processes if process.exit_code is not None), None)

    def __enter__(self) -> "Stack":
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _service_env(self, spec: ServiceDescription) -> dict[str, str]:
        key_files = {var: str(self.layout.keys / name) for var, name in spec.secret_files.items()}
        database = (
            {"WARMHOUSE_DATABASE_URL": self.postgres.url(spec.database)}
            if spec.owns_database
            else {}
        )
        return {
            # Passed through so OTEL_*, WARMHOUSE_ADMIN_* and the like reach services.
            **os.environ,
            **database,
            "WARMHOUSE_NATS_URL": self.nats.url,
            "WARMHOUSE_JWKS_FILE": str(self.layout.jwks_file),
            "WARMHOUSE_SERVICE_SECRET_FILE": str(self.layout.service_secret_file),
            "WARMHOUSE_TRUSTED_PROXIES": ENVOY_SOURCE_ADDRESS,
            **self._peer_addresses(),
            **key_files,
            **self._outside_world_env().get(spec.name, {}),
            **self._extra_env,
        }

    @property
    def _sandboxes(self) -> list[PaymentSandboxProcess | MessageSandboxProcess]:
        """The outside world's stand-ins this stack runs: up before services, down after."""
        return [s for s in (self.payment_sandbox, self.message_sandbox) if s is not None]

    def _outside_world_env(self) -> dict[str, dict[str, str]]:
        """By service name: where each service reaches the outside world (here, sandboxes).
        Key files come with the service's `secret_files`."""
        env: dict[str, dict[str, str]] = {}
        if self.payment_sandbox is not None:
            env[BILLING.name] = {"WARMHOUSE_BILLING_PROVIDER_URL": self.payment_sandbox.url}
        if self.message_sandbox is not None:
            sandbox = self.message_sandbox
            env[NOTIFICATION.name] = {
                "WARMHOUSE_NOTIFICATION_SMTP_HOST": LOOPBACK,
                "WARMHOUSE_NOTIFICATION_SMTP_PORT": str(sandbox.smtp_port),
                "WARMHOUSE_NOTIFICATION_SMTP_FROM": NOTIFICATION_FROM_ADDRESS,
                "WARMHOUSE_NOTIFICATION_SMS_URL": f"{sandbox.http_url}/v1/sms",
                "WARMHOUSE_NOTIFICATION_PUSH_URL": f"{sandbox.http_url}/v1/push",
            }
        return env

    def _peer_addresses(self) -> dict[str, str]:
        """Where each service reaches the others."""
        return {
            service_address_variable(spec.name): f"{LOOPBACK}:{self._ports[spec.name]}"
            for spec in self._specs
        }

    def _write_envoy_config(self) -> None:
        settings = EnvoySettings(
            listener=SocketAddress(LOOPBACK, self.http_port),
            admin=SocketAddress(LOOPBACK, self.envoy_admin_port),
            upstreams={
                name: SocketAddress(LOOPBACK, service.port)
                for name, service in self.services.items()
            },
            descriptor_set=DESCRIPTOR_SET,
            jwks_file=self.layout.jwks_file,
            public_rate_limits=self._rate_limits,
            upstream_source=ENVOY_SOURCE_ADDRESS,
        )
        config_file = self.envoy.config_file
        config_file.parent.mkdir(parents=True, exist_ok=True)
        config_file.write_text(json.dumps(render(settings, self._specs), indent=2))
