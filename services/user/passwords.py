"""argon2id password hashing, off the event loop (argon2 releases the GIL)."""

import asyncio
from typing import Protocol

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError


class Passwords(Protocol):
    """How use cases hash and check passwords (unit tests pass a cheap fake)."""

    async def hash(self, password: str) -> str: ...

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """False for a wrong password, and for no hash at all (unknown account)."""


class Argon2Passwords:
    def __init__(self) -> None:
        self._hasher = PasswordHasher()  # argon2id with the library's (RFC 9106) defaults
        # Compared against when the account does not exist, so a wrong email costs as
        # long as a wrong password and the two cannot be told apart by timing.
        self._dummy_hash = self._hasher.hash("warmhouse-not-a-password")

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        def verify() -> bool:
            try:
                return self._hasher.verify(password_hash or self._dummy_hash, password) and bool(
                    password_hash
                )
            except (VerificationError, InvalidHashError):
                return False

        return await asyncio.to_thread(verify)
