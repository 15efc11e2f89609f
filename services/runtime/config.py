"""Typed configuration read once from environment variables.

A missing or malformed value stops the process at start-up with a message
naming the variable, never later with a confusing stack trace.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


class ConfigError(Exception):
    """A required environment variable is missing or malformed."""


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

    def existing_file(self, name: str) -> Path:
        path = Path(self.string(name))
        if not path.is_file():
            raise ConfigError(f"{name} points to {path}, which is not a readable file")
        return path


@dataclass(frozen=True)
class RuntimeSettings:
    """What every service needs to run, whatever its domain."""

    grpc_address: str
    database_url: str
    nats_url: str
    jwks_file: Path
    access_token_ttl_seconds: int
    drain_seconds: int
    log_level: str

    @classmethod
    def from_environment(cls, env: Environment) -> "RuntimeSettings":
        return cls(
            grpc_address=env.string("WARMHOUSE_GRPC_ADDRESS", "127.0.0.1:50051"),
            database_url=env.string("WARMHOUSE_DATABASE_URL"),
            nats_url=env.string("WARMHOUSE_NATS_URL", "nats://127.0.0.1:4222"),
            jwks_file=env.existing_file("WARMHOUSE_JWKS_FILE"),
            access_token_ttl_seconds=env.integer(
                "WARMHOUSE_ACCESS_TOKEN_TTL_SECONDS", 300, minimum=10
            ),
            drain_seconds=env.integer("WARMHOUSE_DRAIN_SECONDS", 10, minimum=0),
            log_level=env.string("WARMHOUSE_LOG_LEVEL", "INFO").upper(),
        )
