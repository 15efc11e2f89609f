"""The raw cost of one argon2id hash, in this process, one hash at a time."""

import statistics
import time
from dataclasses import dataclass
from typing import Any

from bench.account import PASSWORD
from services.user.passwords import Argon2Passwords


@dataclass(frozen=True)
class HashFigures:
    hashes: int
    mean_ms: float
    min_ms: float
    max_ms: float
    # The hash's own parameter string, e.g. "m=65536,t=3,p=4".
    parameters: str

    def as_json(self) -> dict[str, Any]:
        return {
            "hashes": self.hashes,
            "mean_ms": round(self.mean_ms, 3),
            "min_ms": round(self.min_ms, 3),
            "max_ms": round(self.max_ms, 3),
            "parameters": self.parameters,
        }


async def time_hashes(count: int) -> HashFigures:
    """Hash `count` times, each awaited before the next; one warm-up hash first."""
    hash_password = Argon2Passwords().hash
    encoded = await hash_password(PASSWORD)
    durations_ms: list[float] = []
    for _ in range(count):
        started = time.perf_counter()
        await hash_password(PASSWORD)
        durations_ms.append((time.perf_counter() - started) * 1000)
    return HashFigures(
        hashes=count,
        mean_ms=statistics.fmean(durations_ms),
        min_ms=min(durations_ms),
        max_ms=max(durations_ms),
        parameters=_parameters(encoded),
    )


def _parameters(encoded: str) -> str:
    # $argon2id$v=19$m=65536,t=3,p=4$salt$hash
    fields = encoded.split("$")
    return fields[3] if len(fields) > 3 else "unknown"
