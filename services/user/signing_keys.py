"""The access-token signing key: an ES256 private key and its public JWKS.

Keys are provisioned outside the service (the local stack makes them on first
start; in Kubernetes they come from a Secret). The private key stays with the
User service; the JWKS goes to Envoy and every other service.
"""

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

ALGORITHM = "ES256"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def public_jwk(private_key: ec.EllipticCurvePrivateKey) -> dict[str, str]:
    numbers = private_key.public_key().public_numbers()
    x = _b64url(numbers.x.to_bytes(32, "big"))
    y = _b64url(numbers.y.to_bytes(32, "big"))
    # RFC 7638 thumbprint: a stable key id derived from the key itself.
    thumbprint_input = json.dumps(
        {"crv": "P-256", "kty": "EC", "x": x, "y": y}, separators=(",", ":"), sort_keys=True
    )
    kid = _b64url(hashlib.sha256(thumbprint_input.encode()).digest())
    return {"kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": kid, "use": "sig", "alg": ALGORITHM}


def load_private_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{path}: expected an EC P-256 private key")
    return key


def ensure_signing_key(private_key_file: Path, jwks_file: Path) -> None:
    """Create the key pair unless it exists; (re)write the JWKS from the private key."""
    if not private_key_file.exists():
        private_key_file.parent.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        private_key_file.touch(mode=0o600)
        private_key_file.write_bytes(pem)
    jwks: dict[str, Any] = {"keys": [public_jwk(load_private_key(private_key_file))]}
    jwks_file.parent.mkdir(parents=True, exist_ok=True)
    jwks_file.write_text(json.dumps(jwks, indent=2))
