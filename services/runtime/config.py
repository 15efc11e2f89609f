"""Typed configuration read once from environment variables.

A missing or malformed value stops the process at start-up with a message
naming the variable, never later with a confusing stack trace.
"""

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from services.runtime.request import IpNetwork, parse_networks

MIN_SECRET_BYTES = 32
GRPC_PORT = 50051


def service_address_variable(service: str) -> str:
    """e.g. "device-adapter" → WARMHOUSE_DEVICE_ADAPTER_ADDRESS."""
    return f"WARMHOUSE_{service.upper().replace('-', '_')}_ADDRESS"


class ConfigError(Exception):
    """A required environment variable is missing or malformed."""


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


class Environment:
    """Reads typed values from an environment mapping."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def string(self, name: str, default: str | None = None) -> str:
        value = self._environ.get(name, "").strip()
        if value:
            return value
        if default is None:
            raise ConfigError(f"{name} is required but not set")
        return default

    def optional_string(self, name: str) -> str | None:
        return self._environ.get(name, "").strip() or None

    def integer(self, name: str, default: int, minimum: int = 0) -> int:
        raw = self._environ.get(name, "").strip()
        if not raw:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
        if value < minimum:
            raise ConfigError(f"{name} must be at least {minimum}, got {value}")
        return value

    def flag(self, name: str, default: bool = False) -> bool:
        raw = self._environ.get(name, "").strip().lower()
        if not raw:
            return default
        if raw not in _TRUE + _FALSE:
            raise ConfigError(f"{name} must be true or false, got {raw!r}")
        return raw in _TRUE

    def service_address(self, service: str) -> str:
        """Where another WarmHouse service listens: WARMHOUSE_<SERVICE>_ADDRESS,
        by default its Kubernetes Service name on the standard port."""
        return self.string(service_address_variable(service), f"{service}:{GRPC_PORT}")

    def networks(self, name: str) -> tuple[IpNetwork, ...]:
        raw = self._environ.get(name, "")
        try:
            return parse_networks(raw)
        except ValueError:
            raise ConfigError(
                f"{name} must be comma-separated addresses or CIDR ranges, got {raw!r}"
            ) from None

    def secret(self, name: str) -> bytes:
        """A secret from the file `name` points to (whitespace around it ignored)."""
        path = self.existing_file(name)
        secret = path.read_bytes().strip()
        if len(secret) < MIN_SECRET_BYTES:
            raise ConfigError(f"{name}: {path} must hold at least {MIN_SECRET_BYTES} bytes")
        return secret

    def existing_file(self, name: str) -> Path:
        path = Path(self.string(name))
        if not path.is_file():
            raise ConfigError(f"{name} points to {path}, which is not a readable file")
        return path


@dataclass(frozen=True)
class RuntimeSettings:
    """What every service needs to run, whatever its domain."""

    grpc_address: str
    # Unset for a service without a database of its own.
    database_url: str | None
    nats_url: str
    jwks_file: Path
    # Shared by the services: signs service credentials; keys for page tokens
    # and the like are derived from it.
    service_secret: bytes
    # Proxies whose x-forwarded-for is believed (Envoy); nobody by default.
    trusted_proxies: tuple[IpNetwork, ...]
    access_token_ttl_seconds: int
    drain_seconds: int
    log_level: str
    # Copies JetStream keeps of each stream this service creates: 1 on a
    # single broker, 3 on the production 3-node cluster.
    nats_stream_replicas: int = 1

    @classmethod
    def from_environment(
        cls, env: Environment, *, needs_database: bool = True
    ) -> "RuntimeSettings":
        return cls(
            grpc_address=env.string("WARMHOUSE_GRPC_ADDRESS", "127.0.0.1:50051"),
            database_url=(
                env.string("WARMHOUSE_DATABASE_URL")
                if needs_database
                else env.optional_string("WARMHOUSE_DATABASE_URL")
            ),
            nats_url=env.string("WARMHOUSE_NATS_URL", "nats://127.0.0.1:4222"),
            jwks_file=env.existing_file("WARMHOUSE_JWKS_FILE"),
            service_secret=env.secret("WARMHOUSE_SERVICE_SECRET_FILE"),
            trusted_proxies=env.networks("WARMHOUSE_TRUSTED_PROXIES"),
            access_token_ttl_seconds=env.integer(
                "WARMHOUSE_ACCESS_TOKEN_TTL_SECONDS", 300, minimum=10
            ),
            drain_seconds=env.integer("WARMHOUSE_DRAIN_SECONDS", 10, minimum=0),
            log_level=env.string("WARMHOUSE_LOG_LEVEL", "INFO").upper(),
            nats_stream_replicas=env.integer("WARMHOUSE_NATS_STREAM_REPLICAS", 1, minimum=1),
        )

    def derived_key(self, purpose: str) -> bytes:
        """A key for one purpose (e.g. "page-tokens"), derived from the service secret."""
        label = f"warmhouse:{purpose}".encode()
        return hmac.new(self.service_secret, label, hashlib.sha256).digest()
