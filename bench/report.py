"""The run's figures: a table for people, JSON for tools."""

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.argon2_cost import HashFigures
from bench.figures import LoadFigures, ratio


@dataclass(frozen=True)
class Phase:
    # Row label in the table; `key` names it in the JSON.
    label: str
    key: str
    concurrency: int
    warmup: LoadFigures
    measured: LoadFigures

    @property
    def errors(self) -> int:
        return self.warmup.errors + self.measured.errors

    def as_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "concurrency": self.concurrency,
            **self.measured.as_json(),
            "warmup": self.warmup.as_json(),
        }


@dataclass(frozen=True)
class Report:
    started_at: datetime
    cpus: int
    http_load: str
    grpc_load: str
    envoy: Phase
    direct: Phase
    registration: Phase
    hashing: HashFigures

    @property
    def phases(self) -> tuple[Phase, ...]:
        return (self.envoy, self.direct, self.registration)

    @property
    def errors(self) -> int:
        return sum(phase.errors for phase in self.phases)

    @property
    def throughput_ratio(self) -> float | None:
        """Envoy's requests/s over direct gRPC's; below 1 means Envoy costs throughput."""
        return ratio(
            self.envoy.measured.requests_per_second, self.direct.measured.requests_per_second
        )

    @property
    def p50_ratio(self) -> float | None:
        """Envoy's median latency over direct gRPC's; above 1 means Envoy adds latency."""
        return ratio(self.envoy.measured.p50_ms, self.direct.measured.p50_ms)

    def table(self) -> str:
        header = (
            f"{'':<36} {'conc':>4} {'requests':>9} {'errors':>6} "
            f"{'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}"
        )
        rows = [_row(phase) for phase in self.phases]
        hashing = self.hashing
        lines = [
            f"WarmHouse bench, {self.started_at:%Y-%m-%d %H:%M:%S %Z}, {self.cpus} CPUs",
            f"HTTP load: {self.http_load}",
            f"gRPC load: {self.grpc_load}",
            "",
            header,
            "-" * len(header),
            *rows,
            "",
            f"Envoy / direct gRPC: throughput {_times(self.throughput_ratio)}, "
            f"p50 latency {_times(self.p50_ratio)}",
            f"argon2id hash_password in-process ({hashing.parameters}), {hashing.hashes} hashes "
            f"one at a time: mean {hashing.mean_ms:.1f} ms "
            f"(min {hashing.min_ms:.1f}, max {hashing.max_ms:.1f})",
            f"Errors: {self.errors}",
        ]
        for phase in self.phases:
            for stage, figures in (("warm-up", phase.warmup), ("measured", phase.measured)):
                lines += [f"  {phase.label} ({stage}): {s}" for s in figures.error_samples]
        return "\n".join(lines)

    def as_json(self) -> dict[str, Any]:
        return {
            "started_at": self.started_at.isoformat(timespec="seconds"),
            "cpus": self.cpus,
            "http_load": self.http_load,
            "grpc_load": self.grpc_load,
            "phases": {phase.key: phase.as_json() for phase in self.phases},
            "envoy_over_direct": {
                "throughput": _rounded(self.throughput_ratio),
                "p50_latency": _rounded(self.p50_ratio),
            },
            "argon2id_hash": self.hashing.as_json(),
            "errors": self.errors,
        }

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.as_json(), indent=2) + "\n")


def _row(phase: Phase) -> str:
    figures = phase.measured
    return (
        f"{phase.label:<36} {phase.concurrency:>4} {figures.requests:>9} {figures.errors:>6} "
        f"{figures.requests_per_second:>9.1f} {_ms(figures.p50_ms):>8} {_ms(figures.p99_ms):>8}"
    )


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _times(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
