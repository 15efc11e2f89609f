"""Where the local stack keeps its state inside its data directory."""

from dataclasses import dataclass
from pathlib import Path

from services.user.description import SIGNING_KEY_FILE_NAME

JWKS_FILE_NAME = "jwks.json"
SERVICE_SECRET_FILE_NAME = "service-secret"


@dataclass(frozen=True)
class DataLayout:
    root: Path

    @property
    def postgres(self) -> Path:
        return self.root / "postgres"

    @property
    def nats(self) -> Path:
        return self.root / "nats"

    @property
    def envoy(self) -> Path:
        return self.root / "envoy"

    @property
    def service_logs(self) -> Path:
        return self.root / "logs"

    @property
    def keys(self) -> Path:
        return self.root / "keys"

    @property
    def signing_key_file(self) -> Path:
        return self.keys / SIGNING_KEY_FILE_NAME

    @property
    def jwks_file(self) -> Path:
        return self.keys / JWKS_FILE_NAME

    @property
    def service_secret_file(self) -> Path:
        return self.keys / SERVICE_SECRET_FILE_NAME
