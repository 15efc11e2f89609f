"""Device secrets: issued once, kept only as a keyed hash.

A device presents its secret on every (re)connection, and a whole fleet
reconnects after an outage: the check must be cheap. The secrets are 256
random bits, so a fast keyed hash (HMAC-SHA256) is as strong as a slow one
would be for a password; the key lives outside the database, so a stolen
table does not let anyone test guesses offline.
"""

import hashlib
import hmac
import secrets
import uuid

# Ours are 43 characters; anything far longer is refused before hashing.
SECRET_MAX_LENGTH = 128
_SECRET_BYTES = 32


class DeviceSecrets:
    def __init__(self, key: bytes) -> None:
        self._key = key

    @staticmethod
    def new() -> str:
        return secrets.token_urlsafe(_SECRET_BYTES)

    def hash(self, device_id: uuid.UUID, secret: str) -> bytes:
        # The device id is hashed in: a hash copied onto another row does not match there.
        return hmac.new(self._key, device_id.bytes + secret.encode(), hashlib.sha256).digest()

    def matches(self, device_id: uuid.UUID, secret: str, stored: bytes) -> bool:
        if not secret or len(secret) > SECRET_MAX_LENGTH:
            return False
        return hmac.compare_digest(self.hash(device_id, secret), stored)
