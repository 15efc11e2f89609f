"""The run's figures: a table for people, JSON for tools.

A phase is measured in one or more rounds, each a warm-up then a measurement;
the table shows, per phase, the median over its rounds. Ratios are those of
requests/s: for phases measured round for round side by side, the median of
the per-round ratios, which cancels drift that a ratio of medians would keep.
"""

import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.argon2_cost import HashFigures
from bench.figures import LoadFigures, ratio

# Targets of the hardening issue: hot paths are judged by these ratios.
GET_USER_OVER_ECHO_TARGET = 0.4
# A state change and its outbox row through the runtime's write path (the
# unit of work), against the raw asyncpg transaction doing the same INSERTs.
WRITE_OVER_RAW_WRITE_TARGET = 0.8
# Ratios shown without a target, and why.
UNTARGETED = {
    "get_user_over_raw_read": "the service's cost beyond one fetchrow",
    "create_user_over_raw_write": "includes the registration-throttle transaction",
}
# The table's first column is at least this wide, and as wide as the longest label.
LABEL_WIDTH = 36


@dataclass(frozen=True)
class Round:
    warmup: LoadFigures
    measured: LoadFigures


@dataclass(frozen=True)
class Phase:
    # Row label in the table; `key` names it in the JSON.
    label: str
    key: str
    concurrency: int
    rounds: tuple[Round, ...]

    @property
    def errors(self) -> int:
        return sum(r.warmup.errors + r.measured.errors for r in self.rounds)

    @property
    def requests(self) -> int:
        """Successful measured requests, over every round."""
        return sum(r.measured.requests for r in self.rounds)

    @property
    def succeeded(self) -> int:
        """Successful requests, warm-ups included."""
        return sum(r.warmup.requests + r.measured.requests for r in self.rounds)

    @property
    def throughputs(self) -> list[float]:
        return [r.measured.requests_per_second for r in self.rounds]

    @property
    def requests_per_second(self) -> float:
        return statistics.median(self.throughputs) if self.rounds else 0.0

    @property
    def p50_ms(self) -> float | None:
        return _median([r.measured.p50_ms for r in self.rounds])

    @property
    def p99_ms(self) -> float | None:
        return _median([r.measured.p99_ms for r in self.rounds])

    @property
    def spread(self) -> float | None:
        """(highest - lowest) / median requests/s over the rounds; None for one round."""
        if len(self.rounds) < 2:
            return None
        return ratio(max(self.throughputs) - min(self.throughputs), self.requests_per_second)

    def error_lines(self) -> list[str]:
        lines = []
        for number, measured_round in enumerate(self.rounds, 1):
            where = f"round {number}, " if len(self.rounds) > 1 else ""
            for stage, figures in (
                ("warm-up", measured_round.warmup),
                ("measured", measured_round.measured),
            ):
                lines += [f"  {self.label} ({where}{stage}): {s}" for s in figures.error_samples]
        return lines

    def as_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "concurrency": self.concurrency,
            "requests": self.requests,
            "errors": self.errors,
            "requests_per_second": round(self.requests_per_second, 1),
            "p50_ms": _rounded(self.p50_ms),
            "p99_ms": _rounded(self.p99_ms),
            "spread": _rounded(self.spread),
            "rounds": [
                {"warmup": r.warmup.as_json(), "measured": r.measured.as_json()}
                for r in self.rounds
            ],
        }


def throughput_ratio(phase: Phase, baseline: Phase) -> float | None:
    """`phase`'s requests/s over `baseline`'s: median of the per-round ratios when
    both ran the same number of rounds, else the ratio of their medians."""
    if len(phase.rounds) == len(baseline.rounds) > 1:
        return _median(
            [
                ratio(ours, theirs)
                for ours, theirs in zip(phase.throughputs, baseline.throughputs, strict=True)
            ]
        )
    return ratio(phase.requests_per_second, baseline.requests_per_second)


def p50_ratio(phase: Phase, baseline: Phase) -> float | None:
    if len(phase.rounds) == len(baseline.rounds) > 1:
        return _median(
            [
                ratio(ours.measured.p50_ms, theirs.measured.p50_ms)
                for ours, theirs in zip(phase.rounds, baseline.rounds, strict=True)
            ]
        )
    return ratio(phase.p50_ms, baseline.p50_ms)


@dataclass(frozen=True)
class Report:
    started_at: datetime
    cpus: int
    http_load: str
    grpc_load: str
    schedule: str
    echo: Phase
    raw_read: Phase
    get_user: Phase
    envoy_get_user: Phase
    raw_write: Phase
    write: Phase
    create_user: Phase
    registration: Phase
    hashing: HashFigures
    # What makes the figures wrong other than a failed request (e.g. the hash
    # stub not used); each one fails the run like a request error.
    problems: tuple[str, ...] = ()

    @property
    def phases(self) -> tuple[Phase, ...]:
        return (
            self.echo,
            self.raw_read,
            self.get_user,
            self.envoy_get_user,
            self.raw_write,
            self.write,
            self.create_user,
            self.registration,
        )

    @property
    def errors(self) -> int:
        return sum(phase.errors for phase in self.phases) + len(self.problems)

    @property
    def ratios(self) -> dict[str, float | None]:
        return {
            "get_user_over_echo": throughput_ratio(self.get_user, self.echo),
            "get_user_over_raw_read": throughput_ratio(self.get_user, self.raw_read),
            "write_over_raw_write": throughput_ratio(self.write, self.raw_write),
            "create_user_over_raw_write": throughput_ratio(self.create_user, self.raw_write),
            "envoy_over_direct_get_user": throughput_ratio(self.envoy_get_user, self.get_user),
            "envoy_over_direct_get_user_p50": p50_ratio(self.envoy_get_user, self.get_user),
        }

    def _columns(self, phase: Phase) -> tuple[float | None, float | None]:
        """The row's "x echo" and "x raw" figures; only for phases of the probe host."""
        raw_baselines = {
            self.get_user.key: self.raw_read,
            self.write.key: self.raw_write,
            self.create_user.key: self.raw_write,
        }
        probe_host = {self.raw_read.key, self.raw_write.key, *raw_baselines}
        over_echo = throughput_ratio(phase, self.echo) if phase.key in probe_host else None
        raw = raw_baselines.get(phase.key)
        return over_echo, None if raw is None else throughput_ratio(phase, raw)

    @property
    def _label_width(self) -> int:
        return max(LABEL_WIDTH, *(len(phase.label) for phase in self.phases))

    def table(self) -> str:
        width = self._label_width
        header = (
            f"{'':<{width}} {'conc':>4} {'requests':>9} {'errors':>6} {'req/s':>9} {'range':>6} "
            f"{'p50 ms':>8} {'p99 ms':>8} {'x echo':>7} {'x raw':>7}"
        )
        ratios = self.ratios
        hashing = self.hashing
        lines = [
            f"WarmHouse bench, {self.started_at:%Y-%m-%d %H:%M:%S %Z}, {self.cpus} CPUs",
            f"HTTP load: {self.http_load}",
            f"gRPC load: {self.grpc_load}",
            f"Schedule: {self.schedule}",
            "",
            header,
            "-" * len(header),
            *(self._row(phase) for phase in self.phases),
            "",
            "req/s, p50, p99: median over the rounds; range: (max - min) / median req/s.",
            "x echo: req/s over Echo's; x raw: GetUser's over RawRead's, Write's and",
            "CreateUser's over RawWrite's; each the median of the per-round ratios. Echo,",
            "RawRead, GetUser, RawWrite, Write and CreateUser are served by one probe host:",
            "the User service on the shared runtime plus bench-only probes. Envoy's phases",
            "go to the stack's service.",
            "",
            "Targets (ratios from this run; absolute figures drift about 10 % between runs):",
            _target(
                "GetUser direct over Echo",
                ratios["get_user_over_echo"],
                GET_USER_OVER_ECHO_TARGET,
            ),
            _target(
                "Write (unit of work) over RawWrite",
                ratios["write_over_raw_write"],
                WRITE_OVER_RAW_WRITE_TARGET,
            ),
            _untargeted(
                "CreateUser (hash stubbed) over RawWrite", ratios, "create_user_over_raw_write"
            ),
            _untargeted("GetUser direct over RawRead", ratios, "get_user_over_raw_read"),
            f"  Envoy / direct GetUser: throughput {_times(ratios['envoy_over_direct_get_user'])}, "
            f"p50 latency {_times(ratios['envoy_over_direct_get_user_p50'])}",
            f"argon2id hash_password in-process ({hashing.parameters}), {hashing.hashes} hashes "
            f"one at a time: mean {hashing.mean_ms:.1f} ms "
            f"(min {hashing.min_ms:.1f}, max {hashing.max_ms:.1f})",
            f"Errors: {self.errors}",
        ]
        for phase in self.phases:
            lines += phase.error_lines()
        lines += [f"  {problem}" for problem in self.problems]
        return "\n".join(lines)

    def _row(self, phase: Phase) -> str:
        over_echo, over_raw = self._columns(phase)
        spread = "" if phase.spread is None else f"{phase.spread * 100:.0f}%"
        return (
            f"{phase.label:<{self._label_width}} {phase.concurrency:>4} "
            f"{phase.requests:>9} {phase.errors:>6} "
            f"{phase.requests_per_second:>9.1f} {spread:>6} "
            f"{_ms(phase.p50_ms):>8} {_ms(phase.p99_ms):>8} "
            f"{_column(over_echo):>7} {_column(over_raw):>7}"
        ).rstrip()

    def as_json(self) -> dict[str, Any]:
        ratios = self.ratios
        return {
            "started_at": self.started_at.isoformat(timespec="seconds"),
            "cpus": self.cpus,
            "http_load": self.http_load,
            "grpc_load": self.grpc_load,
            "schedule": self.schedule,
            "phases": {phase.key: phase.as_json() for phase in self.phases},
            "ratios": {name: _rounded(value) for name, value in ratios.items()},
            "targets": {
                "get_user_over_echo": {
                    "target": GET_USER_OVER_ECHO_TARGET,
                    "met": _met(ratios["get_user_over_echo"], GET_USER_OVER_ECHO_TARGET),
                },
                "write_over_raw_write": {
                    "target": WRITE_OVER_RAW_WRITE_TARGET,
                    "met": _met(ratios["write_over_raw_write"], WRITE_OVER_RAW_WRITE_TARGET),
                },
            },
            "untargeted": dict(UNTARGETED),
            "argon2id_hash": self.hashing.as_json(),
            "errors": self.errors,
            "problems": list(self.problems),
        }

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.as_json(), indent=2) + "\n")


def _target(what: str, value: float | None, target: float) -> str:
    met = _met(value, target)
    verdict = "n/a (no figure)" if met is None else ("met" if met else "NOT met")
    return f"  {what}: {_times(value)}, target >= {target:.2f}x: {verdict}"


def _untargeted(what: str, ratios: dict[str, float | None], name: str) -> str:
    return f"  {what}: {_times(ratios[name])} (no target: {UNTARGETED[name]})"


def _met(value: float | None, target: float) -> bool | None:
    return None if value is None else value >= target


def _median(values: Sequence[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return statistics.median(present) if present else None


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _column(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}x"


def _times(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
