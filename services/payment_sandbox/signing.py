"""The signature on every webhook delivery (the format is in the package docstring)."""

import hashlib
import hmac

SIGNATURE_HEADER = "Sandbox-Signature"


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """Hex HMAC-SHA256, keyed by `secret`, of `<timestamp>.<body>`.

    The timestamp is inside the MAC, so a receiver that rejects old timestamps
    also rejects a captured delivery replayed later.
    """
    signed_payload = str(timestamp).encode("ascii") + b"." + body
    return hmac.new(secret, signed_payload, hashlib.sha256).hexdigest()


def signature_header(secret: bytes, timestamp: int, body: bytes) -> str:
    """The value of the Sandbox-Signature header: `t=<timestamp>,v1=<signature>`."""
    return f"t={timestamp},v1={sign(secret, timestamp, body)}"
