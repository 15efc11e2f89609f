"""Secrets the local stack makes on first start (Kubernetes takes them from Secrets)."""

import secrets
from pathlib import Path


def ensure_secret_file(path: Path) -> None:
    """Write a random secret to `path` unless it exists; only its owner may read it."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(secrets.token_urlsafe(48))
