"""What one measured load phase produced, whoever generated the load."""

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

# How many distinct error messages a phase keeps to show why it failed.
ERROR_SAMPLES = 3


@dataclass(frozen=True)
class LoadFigures:
    # Requests answered successfully; only these count towards throughput.
    requests: int
    errors: int
    seconds: float
    # None when no request succeeded.
    p50_ms: float | None
    p99_ms: float | None
    error_samples: tuple[str, ...] = field(default=())

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    @classmethod
    def from_latencies(
        cls, latencies_ms: Sequence[float], errors: Iterable[str], seconds: float
    ) -> "LoadFigures":
        """Figures from the latency of every successful request and one message per error."""
        ordered = sorted(latencies_ms)
        counted = Counter(errors)
        return cls(
            requests=len(ordered),
            errors=sum(counted.values()),
            seconds=seconds,
            p50_ms=percentile(ordered, 50),
            p99_ms=percentile(ordered, 99),
            error_samples=tuple(
                f"{count}x {message}" for message, count in counted.most_common(ERROR_SAMPLES)
            ),
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "seconds": round(self.seconds, 3),
            "requests_per_second": round(self.requests_per_second, 1),
            "p50_ms": _rounded(self.p50_ms),
            "p99_ms": _rounded(self.p99_ms),
            "error_samples": list(self.error_samples),
        }


def percentile(ordered: Sequence[float], percent: float) -> float | None:
    """Nearest-rank percentile of already sorted values; None for no values."""
    if not ordered:
        return None
    rank = max(1, math.ceil(percent / 100 * len(ordered)))
    return ordered[rank - 1]


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
